"""The gait role."""
