"""Choosing the backend a profile asks for, and the one rule for falling back (the runtime's assembly,
`edge.assembly.build_pipeline`, resolves the perception backend here).

When the profile says TensorRT and TensorRT (or pycuda) is not installed, the runtime fails with a
message saying so, unless the profile sets `allow_fallback`: then it runs on ONNX Runtime and the
fallback is reported (logged, and carried by every heartbeat as `backend_fallback`). Any other
failure (a missing engine, a corrupt model) is never papered over by a fallback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edge.backends.base import Backend, BackendConfig, BackendUnavailable, backend_class

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendChoice:
    """What the runtime will run on, and whether that differs from what the profile asked."""

    config: BackendConfig  # the config actually used (type may be onnxruntime after a fallback)
    requested: str
    fallback: bool
    reason: str | None = None

    @property
    def type(self) -> str:
        return self.config.type

    def heartbeat_fields(self) -> dict[str, object]:
        """The wire fields of Heartbeat that describe the backend."""
        return {"backend": self.config.type, "backend_fallback": self.fallback}


def choose_backend(config: BackendConfig) -> BackendChoice:
    """Resolve the profile's backend once, at start-up; raises BackendUnavailable when no fallback is allowed."""
    try:
        backend_class(config.type)
    except BackendUnavailable as exc:
        if config.type != "tensorrt":
            raise
        if not config.allow_fallback:
            raise BackendUnavailable(
                "the profile asks for the TensorRT backend, but it cannot be used on this host "
                f"({exc.__cause__ or exc}). "
                "Install TensorRT and pycuda (JetPack; `pip install .[jetson]`), or set backend.type: onnxruntime, "
                "or set backend.allow_fallback: true to run on ONNX Runtime and report the fallback"
            ) from exc
        reason = f"TensorRT unavailable ({exc.__cause__ or exc}); running on ONNX Runtime"
        log.warning("backend fallback: %s", reason)
        # ONNX Runtime on the CPU: the providers a TensorRT profile names are the GPU's, which TensorRT was for.
        fallback = config.model_copy(update={"type": "onnxruntime", "providers": ["cpu"]})
        backend_class("onnxruntime")
        return BackendChoice(config=fallback, requested=config.type, fallback=True, reason=reason)
    return BackendChoice(config=config, requested=config.type, fallback=False)


def load_model(choice: BackendChoice, model_path: Path) -> Backend:
    """Instantiate and load one model on the chosen backend (the TensorRT backend warms up at load)."""
    backend = backend_class(choice.config.type)(choice.config)
    backend.load(Path(model_path))
    return backend
