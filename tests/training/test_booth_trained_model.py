"""The booth's trained gait model end to end: a booth model trained on a tiny budget goes through the device
chain after training (export/device_models/chain.py: ONNX with its card, the INT8 gate, a signed gait bundle
installed into a model store), the SHIPPED gait-booth profile with only gait.model.path pointed at that store
runs as a child `edgescreen edge run` over a rendered avatar walking away down the corridor, and the one
walk-through it publishes is screened with the installed model's probabilities.

The walk is rendered at the profile's 640x480: at 320x240 the far-end detection region finds the walker twice
in about half the frames (`multiple_people`) and fewer gait cycles come through. The walker is still in view at
the clip's end (far down the corridor), so it is the end of the replay that closes the walk-through: the
runtime flushes the open walk at shutdown, as it would on a stop. About 20 s on the 2-core test machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from contract.hashing import sha256_file
from tests.edge.test_delivery import Subscriber
from tests.support.booth import BOOTH_PROFILE, only_screening, run_booth
from tests.support.booth_models import tiny_booth_model
from tests.support.broker import MosquittoBroker

DEVICE_MODEL_DIR = "/var/cache/edgescreen/models"  # the unit's EDGESCREEN_MODEL_DIR (systemd/edgescreen-edge@)
# A `back` walk along the corridor (away from the camera) that the booth screens: 93 frames, 4 gait cycles found
# at 640x480 where min_cycles is 2. Of the seeds' first back walks tried, some give too_few_cycles.
SEED, INDEX = 3, 10
SIZE = (640, 480)


def install_tiny_model(tmp: Path) -> Path:
    """Train, ship and install the booth model into tmp/models; returns the store (the unit's model dir)."""
    from export.bundle import generate_keypair
    from export.device_models.chain import bundle_and_install, ship

    model = tiny_booth_model(tmp / "train")
    shipped = ship(model, tmp / "ship")
    key = tmp / "keys" / "site-signing.pem"
    generate_keypair(key)
    store = tmp / "models"
    releases = bundle_and_install([shipped], tmp / "ship", key, store / "bundles")
    assert set(releases) == {"gait"}
    return store


def render_walk(path: Path) -> int:
    """The avatar walk as an MJPG file at the clip's frame rate; returns its number of frames."""
    from training.synth.avatar.scenes import SceneRenderer, plan_subject
    from training.synth.booth_dataset import subject_indices

    assert INDEX in subject_indices(SEED, "along", 5)  # the walk is one of the booth's own geometry
    plan = plan_subject("booth-walk", SEED, INDEX, clip=True)
    assert plan.view == "back"
    (clip,) = SceneRenderer(*SIZE).render([plan], clip=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), clip.fps, SIZE)
    assert writer.isOpened()
    for frame in clip.frames:
        writer.write(np.ascontiguousarray(frame.rgb[..., ::-1]))
    writer.release()
    return len(clip.frames)


def booth_profile(tmp: Path, store: Path) -> tuple[Path, Path]:
    """The shipped profile with gait.model.path moved from the unit's model dir to `store`, and that path."""
    data: dict[str, Any] = yaml.safe_load(BOOTH_PROFILE.read_text())
    assert data["gait"]["direction"] == "along" and data["perception"]["detection_regions"]  # kept as shipped
    named = data["gait"]["model"]["path"]
    assert named == f"{DEVICE_MODEL_DIR}/bundles/gait/current/models/gait-skeleton.onnx"
    model = Path(named.replace(DEVICE_MODEL_DIR, str(store), 1))
    data["gait"]["model"]["path"] = str(model)
    path = tmp / "gait-booth.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, model


def test_installed_bundle_gives_a_booth_replay_trained_probabilities(
    tmp_path: Path, broker: MosquittoBroker, model_dir: Path, anny_model: Any
) -> None:
    store = install_tiny_model(tmp_path)
    profile, model = booth_profile(tmp_path, store)
    assert model.is_file()  # the bundle installed the file where the shipped profile names it
    clip = tmp_path / "walk-away.avi"
    n_frames = render_walk(clip)

    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "site-secret").write_bytes(b"booth-test-site-secret\n")
    sub = Subscriber(broker)
    walk = only_screening(sub, run_booth(profile, clip, broker.url, tmp_path, model_dir))
    assert walk.outcome == "screened", (walk.outcome, walk.quality)
    assert walk.quality["gait_cycles"] >= 2 and 0 < walk.frames <= n_frames
    probs = walk.probabilities
    assert probs is not None and set(probs) == {"negative", "neutral", "positive"}
    assert abs(sum(probs.values()) - 1.0) < 1e-4 and all(0.0 <= p <= 1.0 for p in probs.values())
    assert walk.predicted == max(probs, key=lambda c: probs[c])
    refs = {m.name: m.sha256 for m in walk.models}
    assert refs.get("gait-skeleton") == sha256_file(model)  # the installed file is the one that screened
