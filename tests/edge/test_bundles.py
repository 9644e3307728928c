"""Signed bundles: build, verify, atomic install, rollback, and every way a bad bundle is refused."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.bundles import (
    INSTALL_STEPS,
    BundleError,
    install_bundle,
    installed,
    load_public_key,
    rollback,
    verify_bundle,
)
from edgescreen.cli import main
from export.bundle import build_bundle, generate_keypair

REPO = Path(__file__).resolve().parents[2]


def _tiny_model(path: Path, scale: float) -> Path:
    """y = x * scale, with export metadata, so each version is distinguishable by its output."""
    w = numpy_helper.from_array(np.array([scale], dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {
        "task": "posture",
        "label_map": json.dumps({"neutral": 0, "risk": 1}),
        "input_spec": json.dumps({"name": "x", "shape": [None, 4], "dtype": "float32", "layout": "NC"}),
    }.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _run(path: Path) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float(session.run(None, {"x": np.ones((1, 4), np.float32)})[0][0, 0])


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private = tmp_path / "keys" / "site.pem"
    generate_keypair(private)
    return private, private.with_suffix(".pub")


def _bundle(tmp_path: Path, private: Path, scale: float, name: str) -> Path:
    folder = tmp_path / f"src-{name}"
    folder.mkdir()
    model = _tiny_model(folder / "posture_net.onnx", scale)
    out = tmp_path / f"bundle-{name}.tar"
    build_bundle("posture", [model], private, out)
    return out


def test_install_verifies_and_rollback_restores_previous(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    store = tmp_path / "store"
    pub = load_public_key(public)
    first = install_bundle(_bundle(tmp_path, private, 2.0, "a"), pub, store)
    assert first.manifest.models[0].label_map == {"neutral": 0, "risk": 1}
    assert first.manifest.models[0].inputs[0].shape == ["batch", 4]
    assert _run(installed("posture", store).model_path("posture_net")) == 2.0
    install_bundle(_bundle(tmp_path, private, 3.0, "b"), pub, store)
    assert _run(installed("posture", store).model_path("posture_net")) == 3.0
    assert _run(installed("posture", store, "previous").model_path("posture_net")) == 2.0
    rollback("posture", store)
    assert _run(installed("posture", store).model_path("posture_net")) == 2.0
    assert _run(installed("posture", store, "previous").model_path("posture_net")) == 3.0
    # a third install prunes the release that is neither current nor previous
    install_bundle(_bundle(tmp_path, private, 4.0, "c"), pub, store)
    assert len(list((store / "posture" / "releases").iterdir())) == 2


def test_wrong_key_unsigned_and_tampered_bundles_are_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    bundle = _bundle(tmp_path, private, 2.0, "a")
    other = tmp_path / "other" / "k.pem"
    generate_keypair(other)
    with pytest.raises(BundleError, match="signature does not verify"):
        verify_bundle(bundle, load_public_key(other.with_suffix(".pub")))

    members = _members(bundle)
    unsigned = _write_tar(tmp_path / "unsigned.tar", {k: v for k, v in members.items() if k != "manifest.sig"})
    with pytest.raises(BundleError, match="unsigned"):
        verify_bundle(unsigned, load_public_key(public))

    model_bytes = bytearray(members["models/posture_net.onnx"])
    model_bytes[-5] ^= 0xFF
    tampered = _write_tar(tmp_path / "tampered.tar", {**members, "models/posture_net.onnx": bytes(model_bytes)})
    store = tmp_path / "store"
    with pytest.raises(BundleError, match="tampered"):
        install_bundle(tampered, load_public_key(public), store)
    assert not (store / "posture" / "current").exists()
    assert not [p for p in (store / "posture" / "releases").iterdir()]

    manifest = json.loads(members["manifest.json"])
    manifest["models"][0]["sha256"] = "0" * 64
    edited = _write_tar(tmp_path / "edited.tar", {**members, "manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(BundleError, match="signature does not verify"):
        verify_bundle(edited, load_public_key(public))

    extra = _write_tar(tmp_path / "extra.tar", {**members, "models/extra.onnx": b"x"})
    with pytest.raises(BundleError, match="not in the signed manifest"):
        verify_bundle(extra, load_public_key(public))


@pytest.mark.parametrize("name", ["../evil.onnx", "/etc/evil", "models/../../evil"])
def test_path_traversal_is_refused(tmp_path: Path, keys: tuple[Path, Path], name: str) -> None:
    private, public = keys
    members = _members(_bundle(tmp_path, private, 2.0, "a"))
    evil = _write_tar(tmp_path / "evil.tar", {**members, name: b"payload"})
    with pytest.raises(BundleError, match="escapes the bundle"):
        install_bundle(evil, load_public_key(public), tmp_path / "store")
    assert not (tmp_path / "evil.onnx").exists()


def test_symlink_member_is_refused(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    bundle = _bundle(tmp_path, private, 2.0, "a")
    with tarfile.open(bundle, "a:") as tar:
        info = tarfile.TarInfo("models/link.onnx")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(BundleError, match="link"):
        verify_bundle(bundle, load_public_key(public))


@pytest.mark.parametrize("step", INSTALL_STEPS[:-1])
def test_exception_mid_install_keeps_old_bundle(tmp_path: Path, keys: tuple[Path, Path], step: str) -> None:
    private, public = keys
    store = tmp_path / "store"
    pub = load_public_key(public)
    install_bundle(_bundle(tmp_path, private, 2.0, "a"), pub, store)
    new = _bundle(tmp_path, private, 3.0, "b")

    def fail(at: str) -> None:
        if at == step:
            raise RuntimeError(f"power cut at {at}")

    with pytest.raises(RuntimeError, match="power cut"):
        install_bundle(new, pub, store, on_step=fail)
    # until `current` is swapped, the old bundle is the one in use, whole and with valid hashes
    assert _run(installed("posture", store).model_path("posture_net")) == 2.0
    install_bundle(new, pub, store)
    assert _run(installed("posture", store).model_path("posture_net")) == 3.0
    assert not [p for p in (store / "posture" / "releases").iterdir() if p.name.startswith(".tmp-")]


_KILLER = """
import os, signal, sys
from pathlib import Path
from edge.bundles import install_bundle, load_public_key
step = sys.argv[4]
def hook(at):
    if at == step:
        os.kill(os.getpid(), signal.SIGKILL)
install_bundle(Path(sys.argv[1]), load_public_key(Path(sys.argv[2])), Path(sys.argv[3]), on_step=hook)
"""


@pytest.mark.parametrize("step", ["extracted", "renamed", "previous_linked", "current_linked"])
def test_killed_installer_leaves_a_working_bundle(tmp_path: Path, keys: tuple[Path, Path], step: str) -> None:
    private, public = keys
    store = tmp_path / "store"
    install_bundle(_bundle(tmp_path, private, 2.0, "a"), load_public_key(public), store)
    new = _bundle(tmp_path, private, 3.0, "b")
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(new), str(public), str(store), step],
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    expected = 3.0 if step == "current_linked" else 2.0
    assert _run(installed("posture", store).model_path("posture_net")) == expected
    install_bundle(new, load_public_key(public), store)  # a retry completes
    assert _run(installed("posture", store).model_path("posture_net")) == 3.0


def test_cli_keygen_bundle_install_rollback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "site.pem"
    assert main(["export", "keygen", "--out", str(key)]) == 0
    assert key.stat().st_mode & 0o077 == 0
    assert main(["export", "keygen", "--out", str(key)]) == 1  # never overwrites a key silently
    store = tmp_path / "store"
    bundles = []
    for scale in (2.0, 5.0):
        folder = tmp_path / f"src{scale}"
        folder.mkdir()
        model = _tiny_model(folder / "posture_net.onnx", scale)
        out = tmp_path / f"b{scale}.tar"
        assert (
            main(
                ["export", "bundle", "--role", "posture", "--models", str(model), "--key", str(key), "--out", str(out)]
            )
            == 0
        )
        bundles.append(out)
    pub = key.with_suffix(".pub")
    for bundle in bundles:
        assert main(["models", "install", str(bundle), "--public-key", str(pub), "--dir", str(store)]) == 0
    assert _run(installed("posture", store).model_path("posture_net")) == 5.0
    assert main(["models", "rollback", "posture", "--dir", str(store)]) == 0
    assert _run(installed("posture", store).model_path("posture_net")) == 2.0
    other = tmp_path / "other.pem"
    generate_keypair(other)
    capsys.readouterr()
    assert (
        main(
            ["models", "install", str(bundles[1]), "--public-key", str(other.with_suffix(".pub")), "--dir", str(store)]
        )
        == 1
    )
    assert "signature does not verify" in capsys.readouterr().err


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:") as tar:
        out = {}
        for info in tar.getmembers():
            fh = tar.extractfile(info)
            assert fh is not None
            out[info.name] = fh.read()
        return out


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_bundle_of_converted_model_with_int8_variant_and_parity(
    tmp_path: Path, keys: tuple[Path, Path], model_dir: Path
) -> None:
    from export.quantize import quantize_model
    from export.verify import verify_models, write_report

    private, public = keys
    fp32 = model_dir / "face_detection_short_range.onnx"
    int8 = tmp_path / "face_detection_short_range.int8.onnx"
    quantize_model(fp32, int8, "photos:4")
    report = verify_models(fp32, int8, "photos:3")
    json_path, _ = write_report(report, tmp_path / "fd.parity")
    out = tmp_path / "headpose.tar"
    build_bundle("headpose", [fp32, int8], private, out, parity_reports=[json_path])
    result = install_bundle(out, load_public_key(public), tmp_path / "store")
    by_name = {m.name: m for m in result.manifest.models}
    assert by_name["face_detection_short_range"].precision == "fp32"
    variant = by_name["face_detection_short_range.int8"]
    assert variant.precision == "int8" and variant.variant_of == "face_detection_short_range"
    assert variant.metrics is not None and variant.metrics["passed"] == report.passed
    assert (
        variant.metrics["metrics"]["top_box_centre_error_fraction"] == report.metrics["top_box_centre_error_fraction"]
    )
    assert variant.inputs[0].shape == [1, 128, 128, 3]
    session = ort.InferenceSession(str(result.model_path("face_detection_short_range.int8")))
    assert len(session.run(None, {variant.inputs[0].name: np.zeros((1, 128, 128, 3), np.float32)})) == 2


def test_reinstalling_the_previous_bundle_reuses_it(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    store = tmp_path / "store"
    pub = load_public_key(public)
    a, b = _bundle(tmp_path, private, 2.0, "a"), _bundle(tmp_path, private, 3.0, "b")
    first = install_bundle(a, pub, store)
    install_bundle(b, pub, store)
    again = install_bundle(a, pub, store)  # `a` is `previous`: its release is reused, not rewritten
    assert again.release == first.release
    assert _run(installed("posture", store).model_path("posture_net")) == 2.0
    assert _run(installed("posture", store, "previous").model_path("posture_net")) == 3.0
    # a damaged copy of a release is replaced by a clean extraction
    model = installed("posture", store, "previous").model_path("posture_net")
    model.write_bytes(b"corrupt")
    install_bundle(b, pub, store)
    assert _run(installed("posture", store).model_path("posture_net")) == 3.0


def test_model_of_another_size_is_refused_before_extraction(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    members = _members(_bundle(tmp_path, private, 2.0, "a"))
    grown = _write_tar(
        tmp_path / "grown.tar", {**members, "models/posture_net.onnx": members["models/posture_net.onnx"] + b"\0" * 64}
    )
    store = tmp_path / "store"
    with pytest.raises(BundleError, match="bytes, the signed manifest says"):
        install_bundle(grown, load_public_key(public), store)
    assert not (store / "posture").exists()
