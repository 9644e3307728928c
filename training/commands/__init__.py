"""Argument parsing for the training commands; handlers import torch lazily."""
