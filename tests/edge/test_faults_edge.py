"""Bad input at the device's boundaries that the part tests leave open: profiles that are not YAML
mappings, a damaged model store under `edgescreen edge run`, a bad-signature bundle over an installed
one, damaged recordings through the whole runtime, and a disk that is really full under the outbox.

Covered elsewhere and not repeated here: unknown keys, bad values and YAML syntax (test_config.py), a
corrupt or missing ONNX file in the backend (test_perception_units.py), unsigned/tampered/wrong-key
bundles on a fresh store (test_bundles.py), damaged clips, a vanishing camera and corrupt frames in the
grabber (test_grabber.py, test_sources.py), the outbox's page cap (test_outbox.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.bundles import BundleError, install_bundle, installed, load_public_key
from edge.config import ProfileError, load_profile
from edge.outbox import Outbox, OutboxFull
from edgescreen.cli import main
from edgescreen.clips import make_corrupt_copy, make_posture_clip, make_truncated_copy
from export.bundle import generate_keypair
from tests.edge.test_bundles import _bundle, _run
from tests.edge.test_edge_e2e import _profile
from tests.support.broker import MosquittoBroker
from tests.support.tmpfs import mounted_tmpfs

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "firmware_config/profiles/office-posture.yaml"


# --- profiles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "top level must be a mapping"),
        (b"~\n", "top level must be a mapping"),
        (b"- device\n- role\n", "top level must be a mapping"),
        (b"role: !!python/object/apply:os.system ['touch pwned']\n", "line 1"),
        (b"device: {site: [unclosed\n", "not valid YAML"),
    ],
    ids=["empty", "null", "list", "python-tag", "unclosed"],
)
def test_profile_that_is_not_a_mapping_names_the_file(
    tmp_path: Path, content: bytes, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert not (tmp_path / "pwned").exists(), "a YAML tag ran code"


def test_profile_that_is_a_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=f"{tmp_path}: cannot read"):
        load_profile(tmp_path)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_profile_in_another_encoding_names_the_file(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(SHIPPED.read_text().replace("desk-01", "bureau-é").encode(encoding))
    with pytest.raises(ProfileError, match=str(path)):
        load_profile(path)


# --- models ----------------------------------------------------------------------------------------


def _damaged_store(model_dir: Path, target: Path, name: str, content: bytes | None) -> Path:
    """A copy of the model store (links to the real files) with one model replaced or removed."""
    target.mkdir()
    for item in model_dir.iterdir():
        if item.name == f"{name}.onnx":
            if content is not None:
                (target / item.name).write_bytes(content)
        elif item.is_file():
            (target / item.name).symlink_to(item)
    return target


@pytest.mark.parametrize(
    ("name", "content"),
    [("pose_landmark_full", b"\x08\x07garbage" * 100), ("pose_detection", None), ("pose_landmark_full", b"")],
    ids=["corrupt", "missing", "empty"],
)
def test_edge_run_with_a_damaged_model_store_fails_naming_the_file(
    tmp_path: Path,
    model_dir: Path,
    name: str,
    content: bytes | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _damaged_store(model_dir, tmp_path / "models", name, content)
    outbox_dir = tmp_path / "state"
    profile = _profile(tmp_path, "dmg", "mqtt://127.0.0.1:9", outbox_dir)
    clip = make_posture_clip(tmp_path / "c.avi", seconds=0.5, fps=10, size=(160, 120))
    argv = ["edge", "run", "--profile", str(profile), "--source", str(clip.path), "--model-dir", str(store)]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 1
    assert f"{name}.onnx" in caplog.text, caplog.text
    assert "cannot start the device runtime" in caplog.text


# --- bundles ---------------------------------------------------------------------------------------


def test_bad_signature_over_an_installed_bundle_keeps_the_old_models(tmp_path: Path) -> None:
    site = tmp_path / "keys" / "site.pem"
    generate_keypair(site)
    attacker = tmp_path / "keys" / "attacker.pem"
    generate_keypair(attacker)
    store = tmp_path / "store"
    public = load_public_key(site.with_suffix(".pub"))
    install_bundle(_bundle(tmp_path, site, 2.0, "good"), public, store)
    before = installed("posture", store)
    model_bytes = before.model_path("posture_net").read_bytes()

    forged = _bundle(tmp_path, attacker, 9.0, "forged")
    with pytest.raises(BundleError, match="signature does not verify"):
        install_bundle(forged, public, store)
    sig_flipped = tmp_path / "flipped.tar"
    data = bytearray(_bundle(tmp_path, site, 7.0, "flip").read_bytes())
    data[data.index(b"manifest.sig") + 512 + 3] ^= 0x01  # one bit of the signature itself
    sig_flipped.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        install_bundle(sig_flipped, public, store)

    after = installed("posture", store)
    assert after.release == before.release
    assert after.model_path("posture_net").read_bytes() == model_bytes
    assert _run(after.model_path("posture_net")) == 2.0
    assert len(list((store / "posture" / "releases").iterdir())) == 1, "nothing of the refused bundles was kept"


# --- damaged recordings through the whole runtime -------------------------------------------------


def test_edge_run_on_damaged_recordings_ends_cleanly_and_sends_its_scores(
    tmp_path: Path, model_dir: Path, broker: MosquittoBroker
) -> None:
    clip = make_posture_clip(tmp_path / "c.avi", seconds=1.5, fps=10, size=(320, 240))
    damaged = {
        "truncated": make_truncated_copy(clip.path, tmp_path / "cut.avi", keep=0.55),
        "noisy": make_corrupt_copy(clip.path, tmp_path / "noisy.avi", at=0.4, length=20_000),
        "header-gone": make_corrupt_copy(clip.path, tmp_path / "nohead.avi", at=0.0, length=4096),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EDGESCREEN_MODEL_DIR": str(model_dir)}
    for name, path in damaged.items():
        profile = _profile(tmp_path, name, broker.url, tmp_path / "state")
        run = subprocess.run(
            [sys.executable, "-m", "edgescreen", "edge", "run", "--profile", str(profile), "--source", str(path)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        log = run.stdout + run.stderr
        assert "Traceback" not in log, log[-3000:]
        if name == "header-gone":
            # Nothing decodable: a clear failure naming the source, not a hang or a crash.
            assert run.returncode != 0 and str(path) in log, log[-3000:]
            continue
        assert run.returncode == 0, log[-3000:]
        assert "stopped (" in log and "outbox drained" in log, log[-3000:]
        with Outbox(tmp_path / "state" / f"{name}-outbox.sqlite") as box:
            assert box.depth() == 0 and box.current_seq() >= 1, f"{name}: no score was sent"


# --- a really full disk under the outbox ------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root only); skipped where mounting is not allowed."""
    with mounted_tmpfs(
        tmp_path / "tiny", "1m", "mounting a tmpfs needs root; the page-cap variant is in test_outbox.py"
    ) as mount:
        yield mount


def test_outbox_on_a_full_disk_fails_loudly_and_keeps_what_it_had(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tiny_disk / "outbox.sqlite"
    box = Outbox(path)
    kept = [(f"t/{i}", uuid.uuid4().bytes * 64) for i in range(20)]
    for i, (topic, payload) in enumerate(kept):
        box.put(topic, payload, i)
    filler = tiny_disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass  # the disk is full now
    with caplog.at_level(logging.CRITICAL, logger="edge.outbox"), pytest.raises(OutboxFull, match=str(path)):
        for i in range(10_000):
            box.put("t/more", os.urandom(4096), 100 + i)
    assert "nothing queued was lost" in caplog.text
    assert [(m.topic, m.payload) for m in box.pending()][: len(kept)] == kept
    box.close()

    filler.unlink()  # space comes back: the same file opens with everything it had and takes more
    with Outbox(path) as box:
        pending = box.pending()
        assert [(m.topic, m.payload) for m in pending][: len(kept)] == kept
        box.put("t/after", b"x", None)
        assert box.depth() == len(pending) + 1
