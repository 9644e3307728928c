"""Role analyzers: turn per-frame perception into per-window (or per-walk) anonymised score messages."""
