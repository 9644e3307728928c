"""`edgescreen synth avatars`: images or clips plus truth.jsonl, byte-identical per seed, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import pytest

pytest.importorskip("moderngl")

from edgescreen.cli import main as cli_main
from training.synth.avatar.scenes import ROLE_METRICS

SIZE = "160x120"
COMMON = ("subject", "sex", "age_years", "view", "occluded", "keypoints", "image")


def _run(out: Path, scene: str, n: int, seed: int, *extra: str) -> None:
    argv = ["synth", "avatars", "--scene", scene, "--n", str(n), "--seed", str(seed), "--out", str(out)]
    assert cli_main([*argv, "--size", SIZE, *extra]) == 0


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_images(tmp_path: Path, anny_model: Any) -> None:
    _run(tmp_path / "a", "head-station", 3, 4)
    _run(tmp_path / "b", "head-station", 3, 4)
    _run(tmp_path / "c", "head-station", 3, 5)
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert a == b
    assert len([k for k in a if k.startswith("images/")]) == 3
    assert {k: v for k, v in a.items() if k.startswith("images/")} != {
        k: v for k, v in c.items() if k.startswith("images/")
    }


def _run_process(out: Path, scene: str, n: int, seed: int, *extra: str) -> None:
    """The command in a process of its own, as a user runs it: nothing earlier tests left in this one."""
    argv = ["synth", "avatars", "--scene", scene, "--n", str(n), "--seed", str(seed), "--out", str(out)]
    run = subprocess.run([sys.executable, "-m", "edgescreen", *argv, "--size", SIZE, *extra],
                         capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]


def test_worker_processes_write_the_same_bytes_as_one_process(tmp_path: Path, anny_model: Any) -> None:
    # 9 head-station images are two body batches (8 + 1), so two workers each render one.
    _run_process(tmp_path / "one", "head-station", 9, 2)
    _run_process(tmp_path / "two", "head-station", 9, 2, "--workers", "2")
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len([k for k in one if k.startswith("images/")]) == 9
    assert one.keys() == two.keys()
    assert [k for k in one if k != "truth.jsonl" and one[k] != two[k]] == []
    lines = zip(one["truth.jsonl"].splitlines(), two["truth.jsonl"].splitlines(), strict=True)
    for i, (a, b) in enumerate(lines):
        x, y = json.loads(a), json.loads(b)
        assert {k: (x[k], y[k]) for k in x if x[k] != y[k]} == {}, f"truth line {i}"
    assert one == two


@pytest.mark.parametrize("scene", ["office-desk", "booth-walk", "head-station", "flexion"])
def test_truth_lines_carry_every_metric_of_the_role(tmp_path: Path, anny_model: Any, scene: str) -> None:
    _run(tmp_path, scene, 2, 1)
    lines = (tmp_path / "truth.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        record = json.loads(line)
        for key in (*COMMON, *ROLE_METRICS[scene]):
            assert key in record, (scene, key)
        image = cv2.imread(str(tmp_path / record["image"]))
        assert image is not None and image.shape == (120, 160, 3)
        assert len(record["keypoints"]) == 33 and all(len(k) == 3 for k in record["keypoints"])
        assert record["sex"] in ("female", "male")
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["images"] == 2 and meta["metrics"] == list(ROLE_METRICS[scene])


def test_video_writes_one_clip_per_subject_with_a_line_per_frame(tmp_path: Path, anny_model: Any) -> None:
    sheet = tmp_path / "sheet.png"
    _run(tmp_path / "v", "head-station", 1, 2, "--video", "--contact-sheet", str(sheet))
    records = [json.loads(x) for x in (tmp_path / "v" / "truth.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(len(records)))
    assert {r["image"] for r in records} == {"clips/S00000.mp4"}
    video = cv2.VideoCapture(str(tmp_path / "v" / "clips" / "S00000.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)
    assert cv2.imread(str(sheet)) is not None


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--scene", "bus-stop", "--n", "2"], "invalid choice: 'bus-stop'"),
        (["--scene", "head-station", "--n", "0"], "argument --n: expected a whole number >= 1, got 0"),
        (["--scene", "head-station", "--n", "two"], "argument --n: expected a whole number >= 1, got 'two'"),
        (["--scene", "head-station", "--n", "1", "--size", "big"], "argument --size"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    with pytest.raises(SystemExit) as stop:
        cli_main(["synth", "avatars", *argv, "--out", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("error: edgescreen synth avatars")
    assert not any(tmp_path.iterdir())
