"""Real-format loaders: round trips of what the generator writes, format details, and errors that name the file."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.labels import FLEXION_LABELS, POSTURE_LABELS, XRAY_LABELS
from contract.landmarks import COCO17_TO_BLAZEPOSE, Landmark
from edgescreen.cli import main as cli_main
from training.data import load_task_data
from training.datasets import DatasetError
from training.datasets.image_folder import load_image_folder
from training.datasets.keypoints import COCO17_NAMES, load_keypoint_folder, read_keypoint_file, write_keypoint_json
from training.datasets.scoliosis1k import (
    cut_silhouettes,
    load_scoliosis1k,
    read_silhouette_pkl,
    write_silhouette_pkl,
    write_split,
)
from training.synth.writers import write_synthetic

ROUND_TRIP = [
    ("posture-images", "posture-image", 4),
    ("keypoints", "posture-keypoints", 4),
    ("flexion", "flexion", 2),
    ("gait", "gait", 4),
    ("head-shift", "head-shift", 4),
    ("xray", "xray", 4),
]


@pytest.mark.parametrize(("kind", "task", "n"), ROUND_TRIP)
def test_loader_reads_back_exactly_what_the_generator_writes(tmp_path: Path, kind: str, task: str, n: int) -> None:
    write_synthetic(kind, tmp_path, n=n, seed=7)
    from_disk = load_task_data(task, str(tmp_path))
    generated = load_task_data(task, f"synthetic:{n}", seed=7)
    a = from_disk.inputs if isinstance(from_disk.inputs, list) else [from_disk.inputs]
    b = generated.inputs if isinstance(generated.inputs, list) else [generated.inputs]
    assert len(a) == len(b) and all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b, strict=True))
    assert np.array_equal(from_disk.targets, generated.targets)
    assert from_disk.subjects.tolist() == generated.subjects.tolist()
    assert from_disk.source["sha256"] == generated.source["sha256"]
    assert from_disk.label_map == generated.label_map
    if task == "flexion":
        assert np.array_equal(from_disk.meta["proms"], generated.meta["proms"])


def test_cli_synth_writes_the_scoliosis1k_tree_and_partition(tmp_path: Path) -> None:
    assert cli_main(["synth", "gait", "--n", "4", "--seed", "1", "--out", str(tmp_path)]) == 0
    pkls = sorted(tmp_path.glob("*/*/*/*.pkl"))
    assert len(pkls) == 4
    for pkl in pkls:
        assert pkl.stem == pkl.parent.name and pkl.parent.parent.name in ("negative", "neutral", "positive")
    split = json.loads((tmp_path / "partition.json").read_text())
    assert set(split["TRAIN_SET"]) | set(split["TEST_SET"]) == {p.parents[2].name for p in pkls}
    data = load_task_data("gait", str(tmp_path))
    assert set(data.meta["split"].tolist()) <= {"TRAIN_SET", "TEST_SET"}
    assert all(seq.shape[1:] == (64, 44) for seq in data.inputs)


def _sil(t: int = 5) -> np.ndarray:
    arr = np.zeros((t, 64, 64), np.uint8)
    arr[:, 5:60, 25:40] = 255
    return arr


def test_scoliosis1k_layout_labels_and_cut(tmp_path: Path) -> None:
    write_silhouette_pkl(tmp_path / "00001" / "positive" / "000_180" / "000_180.pkl", _sil(7))
    write_silhouette_pkl(tmp_path / "00002" / "Negative" / "000_000" / "000_000.pkl", _sil(3))
    write_split(tmp_path / "Scoliosis1K_test.json", ["00001"], ["00002", "09999"])
    data = load_scoliosis1k(tmp_path)
    assert data.labels.tolist() == [2, 0]
    assert data.subjects == ["00001", "00002"] and data.views == ["000_180", "000_000"]
    assert data.split == ["TRAIN_SET", "TEST_SET"]
    cut = cut_silhouettes(data.sequences[0])
    assert cut.shape == (7, 64, 44) and np.array_equal(cut, data.sequences[0][:, :, 10:54])


def test_silhouette_pickle_that_is_not_an_array_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "1" / "positive" / "v" / "v.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DatasetError, match="only numpy arrays") as info:
        read_silhouette_pkl(path)
    assert info.value.path == path and not marker.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (pickle.dumps(np.zeros((4, 32, 32), np.uint8)), "expected shape"),
        (pickle.dumps(np.zeros((4, 64, 64), np.float32)), "expected dtype uint8"),
        (pickle.dumps({"a": 1}), "expected a numpy array"),
        (b"not a pickle at all", "not a pickled numpy array"),
        (pickle.dumps(np.zeros((4, 64, 64), np.uint8))[:40], "not a pickled numpy array"),
    ],
)
def test_corrupt_silhouette_files_name_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "00001" / "neutral" / "v1" / "v1.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=problem) as info:
        load_scoliosis1k(tmp_path)
    assert str(path) in str(info.value)


def test_scoliosis1k_structure_errors_name_the_place(tmp_path: Path) -> None:
    (tmp_path / "00001" / "sideways" / "v").mkdir(parents=True)
    with pytest.raises(DatasetError, match="unknown class folder 'sideways'") as info:
        load_scoliosis1k(tmp_path)
    assert info.value.path == tmp_path / "00001" / "sideways"
    (tmp_path / "00001" / "sideways" / "v").rmdir()
    (tmp_path / "00001" / "sideways").rmdir()
    (tmp_path / "00001" / "positive" / "v").mkdir(parents=True)
    with pytest.raises(DatasetError, match="missing silhouette file") as info:
        load_scoliosis1k(tmp_path)
    assert info.value.path == tmp_path / "00001" / "positive" / "v" / "v.pkl"
    write_silhouette_pkl(tmp_path / "00001" / "positive" / "v" / "v.pkl", _sil())
    bad_split = tmp_path / "split.json"
    bad_split.write_text('{"TRAIN_SET": ["00001"]}')
    with pytest.raises(DatasetError, match="TEST_SET") as info:
        load_scoliosis1k(tmp_path)
    assert info.value.path == bad_split
    bad_split.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_scoliosis1k(tmp_path)


def _image_folder(tmp_path: Path, rows: list[str], images: dict[str, np.ndarray | bytes]) -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    for name, content in images.items():
        target = tmp_path / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            cv2.imwrite(str(target), content)
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_image_folder_reads_class_names_and_indices_as_rgb(tmp_path: Path) -> None:
    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 2] = 255  # BGR on disk
    root = _image_folder(
        tmp_path,
        ["subject_id,image,label", "p1,img/a.png,CH", "p2,img/b.png,0"],
        {"img/a.png": red, "img/b.png": red},
    )
    data = load_image_folder(root, label_map=POSTURE_LABELS, size=16)
    assert data.images.shape == (2, 16, 16, 3)
    assert data.images[0, 8, 8].tolist() == [255, 0, 0]  # RGB in memory
    assert data.targets.tolist() == [1, 0] and data.subjects == ["p1", "p2"]
    gray = load_image_folder(root, label_map=POSTURE_LABELS, grayscale=True, size=None)
    assert gray.images.shape == (2, 20, 30, 1)


@pytest.mark.parametrize(
    ("rows", "images", "culprit", "problem"),
    [
        (["subject_id,picture,label", "p,img/a.png,ch"], {}, "labels.csv", "missing column"),
        (["subject_id,image,label", "p,img/a.png,sideways"], {"img/a.png": b""}, "labels.csv", "unknown label"),
        (["subject_id,image,label", ",img/a.png,ch"], {}, "labels.csv", "line 2: empty"),
        (["subject_id,image,label", "p,img/missing.png,ch"], {}, "img/missing.png", "image file not found"),
        (["subject_id,image,label", "p,img/a.png,ch"], {"img/a.png": b"\x89PNG broken"}, "img/a.png", "corrupt"),
        (["subject_id,image,label"], {}, "labels.csv", "no rows"),
    ],
)
def test_image_folder_errors_name_the_file(
    tmp_path: Path, rows: list[str], images: dict[str, bytes], culprit: str, problem: str
) -> None:
    root = _image_folder(tmp_path, rows, dict(images))
    with pytest.raises(DatasetError, match=problem) as info:
        load_image_folder(root, label_map=POSTURE_LABELS)
    assert info.value.path == root / culprit


def test_missing_labels_csv_and_missing_path_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="labels file not found") as info:
        load_task_data("xray", str(tmp_path))
    assert info.value.path == tmp_path / "labels.csv"
    with pytest.raises(DatasetError, match="does not exist") as info:
        load_task_data("xray", str(tmp_path / "nowhere"))
    assert info.value.path == tmp_path / "nowhere"


def test_xray_folder_is_read_as_grayscale_with_its_label_map(tmp_path: Path) -> None:
    img = np.full((50, 40), 77, np.uint8)
    root = _image_folder(tmp_path, ["subject_id,image,label", "x1,img/a.png,reversed"], {"img/a.png": img})
    data = load_task_data("xray", str(root), image_size=32)
    assert isinstance(data.inputs, np.ndarray) and data.inputs.shape == (1, 32, 32, 1)
    assert int(data.inputs[0, 10, 10, 0]) == 77
    assert data.targets.tolist() == [XRAY_LABELS["reversed"]]
    assert data.label_map == ["normal", "straightened", "reversed"]


def test_keypoints_json_in_coco_order_map_to_blazepose(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    coco = rng.uniform(0, 1, (5, 17, 3)).astype(np.float32)
    (tmp_path / "a.json").write_text(json.dumps({"order": "coco17", "fps": 30, "keypoints": coco.tolist()}))
    seq, fps = read_keypoint_file(tmp_path / "a.json")
    assert fps == 30.0 and seq.shape == (5, 33, 3)
    assert np.array_equal(seq[:, list(COCO17_TO_BLAZEPOSE)], coco)
    assert (seq[:, Landmark.LEFT_PINKY, 2] == 0).all()  # COCO has no hands: visibility 0
    # The COCO CSV header uses COCO names; the writer's JSON round-trips through BlazePose order.
    header = "frame," + ",".join(f"{n}_{a}" for n in COCO17_NAMES for a in "xyv")
    lines = [header] + [f"{t}," + ",".join(f"{v:.9g}" for v in coco[t].reshape(-1)) for t in range(5)]
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\n")
    seq_csv, _ = read_keypoint_file(tmp_path / "b.csv")
    assert np.array_equal(seq_csv, seq)
    write_keypoint_json(tmp_path / "c.json", seq, fps=30.0, order="coco17")
    again, _ = read_keypoint_file(tmp_path / "c.json")
    assert np.array_equal(again, seq)
    (tmp_path / "labels.csv").write_text("subject_id,file,label\ns1,a.json,mi\ns2,b.csv,MCI\n")
    folder = load_keypoint_folder(tmp_path, FLEXION_LABELS)
    assert folder.labels.tolist() == [1, 0] and folder.fps == [30.0, None]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("k.csv", "frame,nose_x,nose_y\n0,1,2\n", "header must be"),
        ("k.csv", "frame,foo_x,foo_y,foo_v\n0,1,2,0.5\n", "neither BlazePose-33 nor COCO-17"),
        ("k.json", "{broken", "not valid JSON"),
        ("k.json", '{"order": "openpose", "keypoints": [[[1, 2, 0.5]]]}', "unknown keypoint order"),
        ("k.json", '{"order": "coco17", "keypoints": [[[1, 2, 0.5]]]}', "COCO-17 order needs 17 points"),
        ("k.json", '{"order": "coco17", "keypoints": []}', "shape"),
        ("k.txt", "x", "must end in .csv or .json"),
    ],
)
def test_keypoint_file_errors_name_the_file(tmp_path: Path, name: str, content: str, problem: str) -> None:
    (tmp_path / name).write_text(content)
    (tmp_path / "labels.csv").write_text(f"subject_id,file,label\ns1,{name},mi\n")
    with pytest.raises(DatasetError, match=problem) as info:
        load_keypoint_folder(tmp_path, FLEXION_LABELS)
    assert info.value.path == tmp_path / name


def test_keypoint_values_out_of_range_are_rejected(tmp_path: Path) -> None:
    seq = np.zeros((2, 33, 3), np.float32)
    seq[0, 0, 2] = 1.5
    write_keypoint_json(tmp_path / "v.json", seq)
    with pytest.raises(DatasetError, match="visibility values") as info:
        read_keypoint_file(tmp_path / "v.json")
    assert info.value.path == tmp_path / "v.json"
