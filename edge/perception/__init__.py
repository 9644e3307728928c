"""On-device perception: pose (BlazePose two-stage), segmentation and face/head pose."""
