"""The headpose role."""
