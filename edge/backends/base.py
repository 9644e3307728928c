"""The backend interface: `load`, `infer`, `warmup`, and the registry that picks one by type key."""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from contract.errors import EdgeScreenError

log = logging.getLogger(__name__)

BackendType = Literal["onnxruntime", "tensorrt"]
Provider = Literal["tensorrt", "cuda", "cpu"]


def _cpu_only() -> list[Provider]:
    return ["cpu"]


# Type key → module that defines (and registers) it. Modules are imported on demand so that
# tensorrt/pycuda are only touched when a profile asks for them.
BACKEND_MODULES: dict[str, str] = {
    "onnxruntime": "edge.backends.onnxruntime_backend",
    "tensorrt": "edge.backends.tensorrt_backend",
}

_REGISTRY: dict[str, type[Backend]] = {}
B = TypeVar("B", bound="Backend")


class BackendError(EdgeScreenError, RuntimeError):
    """A model could not be loaded or run."""


class BackendUnavailable(BackendError):
    """The runtime a backend needs is not installed on this host."""


class BackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: BackendType = Field(default="onnxruntime", description="which runtime runs the models")
    providers: list[Provider] = Field(
        default_factory=_cpu_only, description="ONNX Runtime execution providers, in order of preference"
    )
    threads: int = Field(default=2, ge=1, le=64, description="intra-op threads per model")
    precision: Literal["fp32", "fp16", "int8"] = Field(default="fp32", description="engine precision (TensorRT)")
    allow_fallback: bool = Field(
        default=False, description="if TensorRT is configured but missing, run on ONNX Runtime and report it"
    )
    engine_cache: Path | None = Field(default=None, description="folder of built TensorRT engines")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]
    dtype: str


class Backend(ABC):
    """One loaded model on one runtime."""

    type_key: ClassVar[str]

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.model_path: Path | None = None

    @abstractmethod
    def load(self, model_path: Path) -> None:
        """Load the model; raises BackendError naming the file and the cause."""

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference; outputs in the model's output order."""

    @property
    @abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @property
    @abstractmethod
    def outputs(self) -> list[TensorSpec]: ...

    @property
    def metadata(self) -> dict[str, str]:
        """The model file's own metadata (key → value); empty where the runtime keeps none."""
        return {}

    def warmup(self, runs: int = 2) -> None:
        """Run zero inputs through the model so the first real frame is not slow."""
        feeds = {}
        for spec in self.inputs:
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
            feeds[spec.name] = np.zeros(shape, dtype=np.dtype(spec.dtype))
        for _ in range(runs):
            self.infer(feeds)


def register(type_key: str) -> Callable[[type[B]], type[B]]:
    """Class decorator: make a backend available under `type_key`."""

    def wrap(cls: type[B]) -> type[B]:
        cls.type_key = type_key
        _REGISTRY[type_key] = cls
        return cls

    return wrap


def backend_class(type_key: str) -> type[Backend]:
    if type_key not in BACKEND_MODULES:
        raise BackendError(f"unknown backend type {type_key!r}; known: {', '.join(BACKEND_MODULES)}")
    if type_key not in _REGISTRY:
        try:
            importlib.import_module(BACKEND_MODULES[type_key])
        except ImportError as exc:
            raise BackendUnavailable(f"backend {type_key!r} is not available on this host: {exc}") from exc
    return _REGISTRY[type_key]


def create_backend(config: BackendConfig, model_path: Path) -> Backend:
    """Instantiate and load the configured backend for one model file."""
    backend = backend_class(config.type)(config)
    backend.load(model_path)
    return backend
