"""The data API of training: `load_task_data(task, data, seed)` -> TaskData, from the synthetic generator
(`synthetic` or `synthetic:N`) or a path in one of the real formats (training/datasets). Both routes give the
same arrays for the same samples: the generator writes exactly what the loaders read (docs/synthetic.md)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.labels import FLEXION_LABELS, GAIT_LABELS, POSTURE_LABELS, XRAY_LABELS, check_task, class_names

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_SHIFT_COLUMNS = ("lateral_shift", "sagittal_shift")
_SYNTHETIC = re.compile(r"^synthetic(?::(\d+))?$")


@dataclass
class TaskData:
    """One task's samples, ready for subject-grouped cross-validation.

    inputs: an array (N, ...) or, for variable-length sequences (gait, flexion), a list of N arrays.
    targets: int64 class ids (N,) or float32 regression targets (N, k).
    subjects: (N,) subject ids (str); samples of one subject must stay in one fold.
    meta: optional per-sample extras (e.g. `split`, `views`, `proms`, `fps`) and per-set facts."""

    task: str
    inputs: npt.NDArray[Any] | list[npt.NDArray[Any]]
    targets: npt.NDArray[Any]
    subjects: npt.NDArray[np.str_]
    label_map: list[str] | None
    input_spec: dict[str, Any]
    source: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index: npt.ArrayLike) -> TaskData:
        """The samples at `index` (integer positions); per-sample meta entries are subset alike."""
        idx = np.asarray(index, dtype=np.int64)
        n = len(self)

        def pick(value: Any) -> Any:
            if isinstance(value, np.ndarray) and value.shape[:1] == (n,):
                return value[idx]
            if isinstance(value, list) and len(value) == n:
                return [value[i] for i in idx]
            return value

        return replace(
            self,
            inputs=pick(self.inputs),
            targets=self.targets[idx],
            subjects=self.subjects[idx],
            meta={k: pick(v) for k, v in self.meta.items()},
        )


def _sha256(inputs: Any, targets: npt.NDArray[Any], subjects: npt.NDArray[np.str_]) -> str:
    digest = hashlib.sha256()
    arrays = inputs if isinstance(inputs, list) else [inputs]
    for arr in arrays:
        digest.update(str(arr.shape).encode())
        digest.update(np.ascontiguousarray(arr).tobytes())
    digest.update(np.ascontiguousarray(targets).tobytes())
    digest.update("\n".join(subjects.tolist()).encode())
    return digest.hexdigest()


def _image_spec(size: int, channels: int) -> dict[str, Any]:
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.25,))
    return {
        "shape": [size, size, channels],
        "dtype": "uint8",
        "layout": "NHWC",
        "channels": "RGB" if channels == 3 else "gray",
        "normalisation": {"scale": 1 / 255, "mean": list(mean), "std": list(std)},
    }


def input_spec(task: str, image_size: int = 128) -> dict[str, Any]:
    """What a model of `task` consumes (stored in checkpoints and read by export/the device)."""
    if task in ("posture-image", "head-shift"):
        return _image_spec(image_size, 3)
    if task == "xray":
        return _image_spec(image_size, 1)
    if task == "posture-keypoints":
        return {
            "shape": [33, 3],
            "dtype": "float32",
            "layout": "K,C (x px, y px, visibility)",
            "keypoint_order": "blazepose",
            "normalisation": "pixels; normalise by the person's scale",
        }
    if task == "flexion":
        return {
            "shape": [None, 33, 3],
            "dtype": "float32",
            "layout": "T,K,C (x px, y px, visibility)",
            "keypoint_order": "blazepose",
            "normalisation": "pixels; fps in meta",
        }
    if task == "gait":
        return {
            "shape": [None, 64, 44],
            "dtype": "uint8",
            "layout": "T,H,W",
            "binary": True,
            "normalisation": {"scale": 1 / 255},
            "crop": "Scoliosis1K 64x64 cut to 64x44 (10 px each side)",
        }
    raise ValueError(f"no input spec for task {task!r}")


def load_task_data(task: str, data: str, seed: int = 0, *, image_size: int = 128) -> TaskData:
    """`data`: `synthetic[:N]` (N samples generated from `seed`, default size per task) or a path in the real
    format of `task` (Scoliosis1K tree for gait; image folder + labels.csv for posture-image, head-shift and
    xray; keypoint folder + labels.csv for posture-keypoints and flexion)."""
    name = check_task(task)
    match = _SYNTHETIC.match(data.strip())
    if match:
        from training.synth.tasks import DEFAULT_SIZES

        n = int(match.group(1)) if match.group(1) else DEFAULT_SIZES[name]
        return _from_synthetic(name, n, seed, image_size)
    if data.startswith("synthetic"):
        raise ValueError(f"bad synthetic data spec {data!r}: use 'synthetic' or 'synthetic:N' (N samples)")
    return _from_path(name, Path(data), image_size)


def _finish(  # noqa: PLR0917
    task: str, inputs: Any, targets: Any, subjects: list[str], description: str, meta: dict[str, Any], image_size: int
) -> TaskData:
    subj = np.asarray(subjects, dtype=np.str_)
    kind_map = {
        "posture-image": POSTURE_LABELS,
        "posture-keypoints": POSTURE_LABELS,
        "flexion": FLEXION_LABELS,
        "gait": GAIT_LABELS,
        "xray": XRAY_LABELS,
    }
    return TaskData(
        task=task,
        inputs=inputs,
        targets=targets,
        subjects=subj,
        label_map=class_names(task) if task in kind_map else None,
        input_spec=input_spec(task, image_size),
        source={"description": description, "sha256": _sha256(inputs, targets, subj), "n": len(targets)},
        meta=meta,
    )


def _from_synthetic(task: str, n: int, seed: int, image_size: int) -> TaskData:
    from training.datasets.keypoints import posture_pose
    from training.datasets.scoliosis1k import cut_silhouettes
    from training.synth import tasks

    if task in ("posture-image", "head-shift", "xray"):
        generator = {"posture-image": tasks.posture_image, "head-shift": tasks.head_shift, "xray": tasks.xray}[task]
        raw = generator(seed, n, image_size)
    else:
        raw = tasks.generate(task, n, seed)
    inputs: Any = raw.inputs
    if task == "posture-keypoints":
        inputs = np.stack([posture_pose(w) for w in raw.inputs])
    elif task == "gait":
        inputs = [cut_silhouettes(s) for s in raw.inputs]
    meta = dict(raw.meta)
    description = f"synthetic {task}: n={n} seed={seed} image_size={image_size} (training.synth)"
    return _finish(task, inputs, raw.targets, raw.subjects, description, meta, image_size)


def _from_path(task: str, path: Path, image_size: int) -> TaskData:
    from training.datasets import DatasetError

    if not path.exists():
        raise DatasetError(path, "data path does not exist")
    meta: dict[str, Any] = {}
    if task == "gait":
        from training.datasets.scoliosis1k import cut_silhouettes, load_scoliosis1k

        sil = load_scoliosis1k(path)
        meta = {"views": sil.views, "split": np.asarray(sil.split, np.str_)}
        description = f"Scoliosis1K silhouettes at {path} (partition: {sil.split_file})"
        inputs: Any = [cut_silhouettes(s) for s in sil.sequences]
        return _finish(task, inputs, sil.labels, sil.subjects, description, meta, image_size)
    if task in ("posture-image", "head-shift", "xray"):
        from training.datasets.image_folder import load_image_folder

        images = load_image_folder(
            path,
            label_columns=HEAD_SHIFT_COLUMNS if task == "head-shift" else ("label",),
            label_map=None if task == "head-shift" else {k: v for k, v in _label_dict(task).items()},
            grayscale=task == "xray",
            size=image_size,
        )
        description = f"image folder {path} (labels.csv)"
        return _finish(task, images.images, images.targets, images.subjects, description, meta, image_size)
    from training.datasets.keypoints import load_keypoint_folder, posture_pose

    seqs = load_keypoint_folder(path, _label_dict(task))
    meta = {"fps": seqs.fps}
    if seqs.proms is not None:
        meta["proms"] = seqs.proms
        meta["prom_names"] = list(seqs.prom_names)
    description = f"keypoint sequences {path} (labels.csv)"
    inputs = np.stack([posture_pose(s) for s in seqs.sequences]) if task == "posture-keypoints" else seqs.sequences
    return _finish(task, inputs, seqs.labels, seqs.subjects, description, meta, image_size)


def _label_dict(task: str) -> dict[str, int]:
    from contract.labels import label_map

    return label_map(task)
