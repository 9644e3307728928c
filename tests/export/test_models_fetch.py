"""`edgescreen models fetch` / `models list` and the model store, on the real pinned wheel."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge.model_store import MANIFEST_NAME, PERCEPTION_MODELS, ModelStore, ModelStoreError, file_sha256
from edgescreen.cli import main
from export.mediapipe_models import (
    MODEL_SOURCES,
    WHEEL_CACHE,
    WHEEL_NAME,
    WHEEL_SHA256,
    ModelFetchError,
    ensure_models,
    find_wheel,
)

EDGESCREEN = Path(sys.executable).parent / "edgescreen"


@pytest.fixture(scope="module")
def wheel(model_dir: Path) -> Path:
    """The verified pinned wheel (kept in the session's store by the first fetch)."""
    return find_wheel(model_dir)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment in which pip can reach no index and has an empty cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    cache = tmp_path / "pip-cache"
    cache.mkdir()
    env |= {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": f"http://127.0.0.1:{_closed_port()}/simple",
        "PIP_CACHE_DIR": str(cache),
        "PIP_RETRIES": "0",
        "PIP_DEFAULT_TIMEOUT": "3",
    }
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("PIP_"):
            monkeypatch.setenv(key, value)
    return env


def _mtimes(directory: Path) -> dict[str, int]:
    return {name: (directory / f"{name}.onnx").stat().st_mtime_ns for name in PERCEPTION_MODELS}


def test_fetch_offline_with_wheel_then_idempotent_and_resumable(
    tmp_path: Path, wheel: Path, offline: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert main(["models", "fetch", "--dir", str(store), "--wheel", str(wheel)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("converted")] == list(PERCEPTION_MODELS)
    manifest = json.loads((store / MANIFEST_NAME).read_text())
    assert manifest["source"]["wheel"] == WHEEL_NAME and manifest["source"]["sha256"] == WHEEL_SHA256
    assert manifest["license"] == "Apache-2.0" and "Apache License, Version 2.0" in (store / "NOTICE").read_text()
    for source in MODEL_SOURCES:
        entry = manifest["models"][source.name]
        assert entry["sha256"] == file_sha256(store / entry["file"])
        assert entry["source"] == {"path": source.member, "sha256": source.sha256}
        assert entry["inputs"][0]["shape"][0] == 1 and entry["inputs"][0]["shape"][-1] == 3
    # The wheel was kept in the store, so a fetch without --wheel needs no network either.
    assert file_sha256(store / WHEEL_CACHE / WHEEL_NAME) == WHEEL_SHA256
    before = _mtimes(store)

    assert main(["models", "fetch", "--dir", str(store)]) == 0
    out = capsys.readouterr().out
    assert "converted" not in out and out.count("up to date") == len(PERCEPTION_MODELS)
    assert _mtimes(store) == before

    # Resume after a lost file: only that model is converted again, to the same bytes.
    lost = store / "face_landmark.onnx"
    lost.unlink()
    report = ensure_models(store)
    assert report.converted == ["face_landmark"]
    assert file_sha256(lost) == manifest["models"]["face_landmark"]["sha256"]
    assert {k: v for k, v in _mtimes(store).items() if k != "face_landmark"} == {
        k: v for k, v in before.items() if k != "face_landmark"
    }


def test_complete_store_needs_no_wheel(tmp_path: Path, wheel: Path, offline: dict[str, str]) -> None:
    store = tmp_path / "store"
    ensure_models(store, wheel)
    shutil.rmtree(store / WHEEL_CACHE)
    report = ensure_models(store)
    assert report.converted == [] and report.wheel is None and report.skipped == list(PERCEPTION_MODELS)


def test_corrupt_model_file_is_detected_and_repaired(
    tmp_path: Path, wheel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    ensure_models(store_dir, wheel)
    target = store_dir / "selfie_segmentation.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    with pytest.raises(ModelStoreError, match=r"'selfie_segmentation'.*corrupt"):
        ModelStore(store_dir).path("selfie_segmentation")
    assert main(["models", "list", "--dir", str(store_dir)]) == 1
    assert "corrupt" in next(line for line in capsys.readouterr().out.splitlines() if "selfie" in line)

    assert ensure_models(store_dir).converted == ["selfie_segmentation"]
    store = ModelStore(store_dir)
    ref = store.ref("selfie_segmentation")
    assert ref.name == "selfie_segmentation" and ref.sha256 == file_sha256(target)


def test_corrupt_wheel_is_a_clear_error(tmp_path: Path, wheel: Path) -> None:
    damaged = tmp_path / WHEEL_NAME
    data = bytearray(wheel.read_bytes())
    data[1000] ^= 0x01
    damaged.write_bytes(bytes(data))
    result = subprocess.run(
        [str(EDGESCREEN), "models", "fetch", "--dir", str(tmp_path / "store"), "--wheel", str(damaged)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "corrupt or a different file" in line
    ]
    assert str(damaged) in result.stderr and WHEEL_SHA256 in result.stderr
    assert not (tmp_path / "store" / MANIFEST_NAME).exists()


def test_tflite_hash_mismatch_names_the_model(tmp_path: Path, wheel: Path) -> None:
    tampered = dataclasses.replace(MODEL_SOURCES[2], sha256="0" * 64)
    with pytest.raises(ModelFetchError, match=r"face_detection_short_range: .*face_detection_short_range\.tflite"):
        ensure_models(tmp_path / "store", wheel, sources=[tampered])
    assert not (tmp_path / "store" / "face_detection_short_range.onnx").exists()


def test_no_network_and_no_wheel_gives_one_line_and_exit_1(tmp_path: Path, offline: dict[str, str]) -> None:
    result = subprocess.run(
        [str(EDGESCREEN), "models", "fetch", "--dir", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=offline,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot download " + WHEEL_NAME)
    assert "--wheel" in lines[0]
    assert result.stdout == ""


def test_fetch_on_a_device_without_the_converter_says_what_to_install(tmp_path: Path, offline: dict[str, str]) -> None:
    """A device installs only the 'edge' extra: `models fetch` there names the missing extra in one line."""
    store = tmp_path / "store"
    code = (
        "import sys; sys.modules['tflite'] = None; from edgescreen.cli import main; "
        f"raise SystemExit(main(['models', 'fetch', '--dir', {str(store)!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=offline, check=False, timeout=120
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "needs the 'export' extra (no module 'tflite')" in lines[0] and "docs/deploy.md" in lines[0]
    assert not store.exists(), "nothing downloaded or written"


def test_models_list_json_and_store_errors(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--dir", str(model_dir), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in document["models"]}
    assert set(rows) == set(PERCEPTION_MODELS)
    for row in rows.values():
        assert row["status"] == "ok" and row["sha256"] == file_sha256(Path(row["file"]))
        assert row["license"] == "Apache-2.0"
    assert rows["pose_landmark_full"]["inputs"] == [{"name": "input_1", "shape": [1, 256, 256, 3], "dtype": "float32"}]
    assert [o["shape"] for o in rows["pose_detection"]["outputs"]] == [[1, 2254, 12], [1, 2254, 1]]

    assert main(["models", "list", "--dir", str(model_dir)]) == 0
    text = capsys.readouterr().out
    assert all(f"{name} " in text for name in PERCEPTION_MODELS)

    with pytest.raises(ModelStoreError, match=r"model 'hand_landmark' is not in the store"):
        ModelStore(model_dir).path("hand_landmark")
    with pytest.raises(ModelStoreError, match="models fetch"):
        _ = ModelStore(tmp_path / "empty").manifest
    assert main(["models", "list", "--dir", str(tmp_path / "empty")]) == 1
    assert "no model store" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["http-v2", "http"])
def test_wheel_is_found_in_pips_cache_offline(
    tmp_path: Path, wheel: Path, offline: dict[str, str], layout: str
) -> None:
    """pip keeps downloads in its HTTP cache: a body file (http-v2) or a response with a small header (http)."""
    entry = Path(offline["PIP_CACHE_DIR"]) / layout / "1" / "2" / "3" / "4" / "5" / "0123456789abcdef"
    entry.parent.mkdir(parents=True)
    header = b"" if layout == "http-v2" else b"\x85\xa4body\xc6" + len(wheel.read_bytes()).to_bytes(4, "big")
    entry.with_suffix(".body" if layout == "http-v2" else "").write_bytes(header + wheel.read_bytes())
    store = tmp_path / "store"
    report = ensure_models(store, sources=MODEL_SOURCES[2:3])
    assert report.converted == ["face_detection_short_range"]
    assert report.wheel == store / WHEEL_CACHE / WHEEL_NAME and file_sha256(report.wheel) == WHEEL_SHA256


def test_fetching_some_models_keeps_the_others(tmp_path: Path, wheel: Path) -> None:
    store = tmp_path / "store"
    ensure_models(store, wheel, sources=MODEL_SOURCES[2:4])
    report = ensure_models(store, wheel, sources=MODEL_SOURCES[4:], force=True)
    assert report.converted == ["selfie_segmentation"]
    assert sorted(ModelStore(store).names()) == ["face_detection_short_range", "face_landmark", "selfie_segmentation"]
    assert ModelStore(store).ref("face_landmark").sha256 == file_sha256(store / "face_landmark.onnx")
