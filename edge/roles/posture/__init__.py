"""The posture role."""
