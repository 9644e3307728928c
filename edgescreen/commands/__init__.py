"""Argument parsing for the operations commands."""
