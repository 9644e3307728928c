"""`edgescreen pose IMAGE`: JSON output, drawing, and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from edgescreen.cli import main


@pytest.fixture
def astronaut_png(tmp_path: Path) -> Path:
    path = tmp_path / "astronaut.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_pose_json_and_drawing(
    astronaut_png: Path, tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drawn = tmp_path / "drawn.png"
    code, out, _ = run(
        ["pose", str(astronaut_png), "--json", "--draw", str(drawn), "--model-dir", str(model_dir), "--threads", "1"],
        capsys,
    )
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["persons"] and len(doc["persons"]) == 1
    person = doc["persons"][0]
    assert set(person) == {"score", "bbox", "keypoints", "world", "head_pose"}
    assert len(person["keypoints"]) == 33 and all(len(k) == 3 for k in person["keypoints"])
    assert len(person["world"]) == 33 and all(len(w) == 3 for w in person["world"])
    assert set(person["head_pose"]) == {"yaw", "pitch", "roll"}
    nose, left_eye, right_eye = person["keypoints"][0], person["keypoints"][2], person["keypoints"][5]
    assert right_eye[0] < nose[0] < left_eye[0] and nose[1] > left_eye[1]
    x0, y0, x1, y1 = person["bbox"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    # The drawing is the photo with the skeleton on it: same size, changed along the skeleton only.
    original = cv2.imread(str(astronaut_png))
    image = cv2.imread(str(drawn))
    assert image is not None and original is not None and image.shape == original.shape
    changed = np.any(image != original, axis=2)
    assert 0.005 < changed.mean() < 0.3
    sx, sy = (int(v) for v in person["keypoints"][11][:2])
    assert changed[sy - 3 : sy + 4, sx - 3 : sx + 4].any(), "left shoulder is marked"


def test_pose_human_summary(astronaut_png: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["pose", str(astronaut_png), "--model-dir", str(model_dir), "--no-face"], capsys)
    assert code == 0
    assert out.startswith("person 0: score") and "no face" in out


def test_pose_without_a_person_exits_3(tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    code, out, _ = run(["pose", str(blank), "--json", "--model-dir", str(model_dir)], capsys)
    assert code == 3
    assert json.loads(out) == {"persons": []}


@pytest.mark.parametrize("content", [b"", b"this is not an image"])
def test_pose_unreadable_image_exits_2(
    tmp_path: Path, model_dir: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    code, out, err = run(["pose", str(bad), "--json", "--model-dir", str(model_dir)], capsys)
    assert code == 2 and out == ""
    assert "bad.png" in err and "not an image" in err


def test_pose_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["pose", str(tmp_path / "nowhere.jpg")], capsys)
    assert code == 2 and "nowhere.jpg" in err
