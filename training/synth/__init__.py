"""Synthetic training data: a parametric 3D body, posture, gait and flexion motion, a camera model, renderers
and label rules. numpy + OpenCV only, seeded and byte-reproducible. See docs/synthetic.md."""
