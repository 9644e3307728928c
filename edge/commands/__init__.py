"""Argument parsing for the device commands; handlers import their work lazily."""
