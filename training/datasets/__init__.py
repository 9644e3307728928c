"""Loaders (and writers) for the real data formats: Scoliosis1K/OpenGait silhouettes, image folders with a labels
CSV, keypoint sequences (CSV/JSON, BlazePose or COCO-17 order) and X-ray image folders. Every error names the
file and what is wrong with it (`DatasetError`)."""

from training.datasets.errors import DatasetError

__all__ = ["DatasetError"]
