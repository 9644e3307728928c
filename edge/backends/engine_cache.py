"""Where built TensorRT engines live and how one is matched to its ONNX model (no TensorRT import).

An engine only runs on the GPU model and TensorRT version it was built with, so the cache key is
ONNX sha256 + TensorRT version + GPU name + precision (+ DLA core). Each engine file has a JSON
sidecar with the key's parts; an engine for the same model and precision whose sidecar differs is
stale (the ONNX changed, TensorRT was upgraded, or the card was swapped) and gets rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "int8"]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: Precision
    dla_core: int | None = None

    @property
    def digest(self) -> str:
        """Short stable hash of all parts of the key."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


def engine_stem(model_name: str, precision: Precision, dla_core: int | None) -> str:
    """File-name prefix shared by every engine of one model at one precision (and DLA core)."""
    dla = f".dla{dla_core}" if dla_core is not None else ""
    return f"{_slug(model_name)}.{precision}{dla}"


@dataclass(frozen=True)
class EngineLookup:
    """Result of looking a model up in the cache."""

    path: Path  # where the matching engine is (or will be written)
    found: bool  # a matching engine exists
    stale: list[Path]  # engines of the same model/precision built for another key


def engine_path(cache_dir: Path, model_name: str, key: EngineKey) -> Path:
    return Path(cache_dir) / f"{engine_stem(model_name, key.precision, key.dla_core)}.{key.digest}.engine"


def sidecar_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def lookup(cache_dir: Path, model_name: str, key: EngineKey) -> EngineLookup:
    """Find the engine that matches `key`, and any stale ones for the same model and precision."""
    cache_dir = Path(cache_dir)
    target = engine_path(cache_dir, model_name, key)
    stem = engine_stem(model_name, key.precision, key.dla_core)
    stale: list[Path] = []
    found = False
    if cache_dir.is_dir():
        for candidate in sorted(cache_dir.glob(f"{stem}.*.engine")):
            if candidate.name.count(".") != stem.count(".") + 2:
                continue  # another model whose name starts like this one
            if candidate == target and _sidecar_matches(candidate, key):
                found = True
            else:
                stale.append(candidate)
    return EngineLookup(path=target, found=found, stale=stale)


def _sidecar_matches(engine: Path, key: EngineKey) -> bool:
    try:
        recorded = json.loads(sidecar_path(engine).read_text())
    except (OSError, ValueError):
        log.warning("engine %s has no readable sidecar; treating it as stale", engine)
        return False
    return bool(recorded.get("key") == key.to_json())


def write_sidecar(engine: Path, key: EngineKey, extra: dict[str, object]) -> None:
    sidecar_path(engine).write_text(json.dumps({"key": key.to_json(), **extra}, indent=2, sort_keys=True))


def default_cache_dir(model_path: Path) -> Path:
    return Path(model_path).parent / "engines"
