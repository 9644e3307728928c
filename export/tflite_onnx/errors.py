"""The one error type of the converter: its message names the model, and the op (index and kind) where relevant."""

from __future__ import annotations

from contract.errors import EdgeScreenError


class ConversionError(EdgeScreenError, ValueError):
    """A TFLite model that this converter cannot translate faithfully."""
