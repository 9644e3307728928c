"""Argument parsing for the export commands; handlers import their work lazily."""
