"""Inference backends: one small class per runtime, registered by type key.

Importing this package never imports an optional SDK; `create_backend` imports the module of the
requested type only when it is asked for.
"""

from edge.backends.base import Backend, BackendConfig, BackendError, BackendUnavailable, create_backend

__all__ = ["Backend", "BackendConfig", "BackendError", "BackendUnavailable", "create_backend"]
