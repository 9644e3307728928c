"""EdgeScreen: the `edgescreen` command and the pieces that tie the parts together."""

__version__ = "0.1.0"
