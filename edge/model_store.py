"""Where converted models live on a host: `$EDGESCREEN_MODEL_DIR` or `~/.cache/edgescreen/models`.

A store is a folder of `<name>.onnx` files and a `manifest.json` that records, per model, its file's
sha256, where it came from and its input/output names and shapes. `ModelStore` reads it on the device
(json + hashlib only): a missing model or a file whose hash differs from the manifest is an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from contract.errors import EdgeScreenError
from contract.hashing import sha256_file as file_sha256
from contract.wire import ModelRef

MODEL_DIR_ENV = "EDGESCREEN_MODEL_DIR"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

# The five pretrained perception models taken from the pinned MediaPipe wheel.
PERCEPTION_MODELS: tuple[str, ...] = (
    "pose_detection",
    "pose_landmark_full",
    "face_detection_short_range",
    "face_landmark",
    "selfie_segmentation",
)

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def default_model_dir() -> Path:
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "edgescreen" / "models"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    name: str = Field(description="tensor name, as in the source model")
    shape: list[int] = Field(description="static shape (NHWC for images)")
    dtype: str = Field(default="float32", description="element type")


class SourceFile(_Strict):
    path: str = Field(description="path of the source model inside its package")
    sha256: Sha256Hex = Field(description="sha256 of the source model file")


class ModelEntry(_Strict):
    file: str = Field(description="file name of the converted model inside the store")
    sha256: Sha256Hex = Field(description="sha256 of the converted model file")
    source: SourceFile = Field(description="the TFLite file it was converted from")
    inputs: list[TensorSpec] = Field(description="graph inputs")
    outputs: list[TensorSpec] = Field(description="graph outputs")
    license: str = Field(default="Apache-2.0", description="SPDX licence identifier of the model")


class PackageSource(_Strict):
    package: str = Field(description="distribution the models come from")
    version: str = Field(description="its pinned version")
    wheel: str = Field(description="wheel file name")
    sha256: Sha256Hex = Field(description="sha256 of the wheel")


class ConverterInfo(_Strict):
    name: str = Field(description="converter that produced the ONNX files")
    version: int = Field(description="converter revision; a change makes fetch convert again")
    opset: int = Field(description="ONNX opset of the converted graphs")


class Manifest(_Strict):
    format: int = Field(default=MANIFEST_FORMAT, description="manifest format version")
    source: PackageSource = Field(description="the package the models were extracted from")
    converter: ConverterInfo = Field(description="how they were converted")
    license: str = Field(default="Apache-2.0", description="licence of the models (see NOTICE)")
    models: dict[str, ModelEntry] = Field(default_factory=dict, description="converted models by name")


class ModelStoreError(EdgeScreenError, RuntimeError):
    """A model store that cannot serve a model: missing, unreadable or corrupt."""


def read_manifest(directory: Path) -> Manifest | None:
    """The store's manifest, or None when there is none yet. A damaged manifest is an error."""
    path = directory / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise ModelStoreError(f"{path}: unreadable model manifest ({exc.__class__.__name__}: {exc})") from exc


class ModelStore:
    """Read access to a model store; file hashes are checked once per model and process."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_model_dir()
        self._manifest: Manifest | None = None
        self._verified: set[str] = set()

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            manifest = read_manifest(self.directory)
            if manifest is None:
                raise ModelStoreError(
                    f"no model store at {self.directory} (no {MANIFEST_NAME}); run `edgescreen models fetch`"
                )
            self._manifest = manifest
        return self._manifest

    def names(self) -> list[str]:
        return sorted(self.manifest.models)

    def entry(self, name: str) -> ModelEntry:
        models = self.manifest.models
        if name not in models:
            known = ", ".join(sorted(models)) or "none"
            raise ModelStoreError(
                f"model {name!r} is not in the store at {self.directory} (it has: {known}); "
                "run `edgescreen models fetch`"
            )
        return models[name]

    def path(self, name: str, *, verify: bool = True) -> Path:
        """Path of model `name`; with `verify`, its sha256 must match the manifest."""
        entry = self.entry(name)
        path = self.directory / entry.file
        if not path.is_file():
            raise ModelStoreError(f"model {name!r}: file {path} is missing; run `edgescreen models fetch`")
        if verify and name not in self._verified:
            actual = file_sha256(path)
            if actual != entry.sha256:
                raise ModelStoreError(
                    f"model {name!r}: {path} is corrupt (sha256 {actual[:12]}…, manifest says {entry.sha256[:12]}…); "
                    "run `edgescreen models fetch` to restore it"
                )
            self._verified.add(name)
        return path

    def ref(self, name: str) -> ModelRef:
        """The wire reference (name + sha256) of a model, after checking its file."""
        self.path(name)
        return ModelRef(name=name, sha256=self.entry(name).sha256)
