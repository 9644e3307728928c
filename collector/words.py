"""What staff read for the system's ids: metric, band, role and reason names in plain words, in one place."""

from __future__ import annotations

# Posture and head-pose metrics (docs/metrics.md) as staff would say them.
METRIC_WORDS: dict[str, str] = {
    "cva_deg": "head held forward",
    "neck_flexion_deg": "neck bent forward",
    "head_forward_ratio": "head ahead of the shoulders",
    "head_tilt_deg": "head tilted sideways",
    "shoulder_asymmetry_deg": "shoulders uneven",
    "trunk_flexion_deg": "leaning forward",
    "trunk_lateral_lean_deg": "leaning sideways",
    "yaw_deg": "head turned",
    "roll_deg": "head tilted",
    "pitch_deg": "head bent up or down",
    "lateral_shift_cm": "head shifted sideways",
    "sagittal_shift_cm": "head shifted forward",
    "risk_score": "posture risk",
}
BAND_WORDS: dict[str, str] = {"ok": "comfortable", "moderate": "moderate risk", "high": "high risk"}
BANDS: tuple[str, ...] = ("ok", "moderate", "high")
ROLE_WORDS: dict[str, str] = {"posture": "desk", "gait": "screening booth", "headpose": "head-pose station"}
SEVERITY_ITEM_WORDS: dict[str, str] = {
    "rotation": "rotation",
    "laterocollis": "sideways tilt",
    "antero_retrocollis": "forward or backward tilt",
    "total": "total score",
}


def metric_label(name: str) -> str:
    """'head held forward (cva_deg)' for 'cva_deg.mean': the plain words, with the id staff may look up."""
    base = name.split(".", 1)[0]
    words = METRIC_WORDS.get(base)
    return f"{words} ({base})" if words else base.replace("_", " ")


def unit_of(name: str) -> str:
    """The unit a metric's name ends with: degrees, cm, ratio, or '' when it has none."""
    base = name.split(".", 1)[0]
    for suffix, unit in (("_deg", "degrees"), ("_cm", "cm"), ("_ratio", "ratio")):
        if base.endswith(suffix):
            return unit
    return ""
