"""Camera sources: one module per kind of source, all behind `FrameSource`."""
