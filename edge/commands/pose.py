"""`edgescreen pose IMAGE`: run the perception pipeline on one image and print what it found."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.perception.types import FrameResult
    from edgescreen.cli import Groups

EXIT_BAD_INPUT = 2
EXIT_NO_PERSON = 3


def result_document(result: FrameResult, digits: int = 2) -> dict[str, Any]:
    """The JSON document of `edgescreen pose`: persons with box, 33 keypoints, 33 world points, head pose."""
    persons = []
    for person in result.persons:
        head = person.head_pose
        persons.append(
            {
                "score": round(float(person.score), 4),
                "bbox": [round(float(v), digits) for v in person.bbox],
                "keypoints": [
                    [round(float(x), digits), round(float(y), digits), round(float(v), 4)]
                    for x, y, v in person.keypoints
                ],
                "world": [[round(float(c), 4) for c in point] for point in person.world],
                "head_pose": None
                if head is None
                else {"yaw": round(head.yaw, 2), "pitch": round(head.pitch, 2), "roll": round(head.roll, 2)},
            }
        )
    return {"persons": persons}


def _fail(message: str) -> int:
    print(f"edgescreen pose: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _pose(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from edge.backends.base import BackendConfig, BackendError
    from edge.model_store import default_model_dir
    from edge.perception.draw import draw_persons
    from edge.perception.pipeline import PerceptionConfig, PerceptionPipeline

    image_path = Path(args.image)
    if not image_path.is_file():
        return _fail(f"{image_path}: no such file (or not a regular file)")
    data = np.fromfile(str(image_path), dtype=np.uint8)
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if decoded is None or decoded.size == 0:
        return _fail(f"{image_path}: empty or not an image OpenCV can read")
    image = np.asarray(decoded, dtype=np.uint8)

    config = PerceptionConfig(
        backend=BackendConfig(threads=args.threads),
        face=not args.no_face,
        smoothing={"enabled": False},
    )
    try:
        pipeline = PerceptionPipeline(config, Path(args.model_dir) if args.model_dir else default_model_dir())
        result = pipeline.process(image, 0.0)
    except BackendError as exc:
        print(f"edgescreen pose: error: {exc}", file=sys.stderr)
        return 1

    document = result_document(result)
    if args.json:
        print(json.dumps(document))
    elif not result.persons:
        print(f"no person found in {image_path}")
    else:
        for i, person in enumerate(document["persons"]):
            head = person["head_pose"]
            pose = "no face" if head is None else ", ".join(f"{k} {v:+.1f}°" for k, v in head.items())
            box = ", ".join(f"{v:.0f}" for v in person["bbox"])
            print(f"person {i}: score {person['score']:.2f}, box [{box}], head pose: {pose}")
    if args.draw:
        out = Path(args.draw)
        if not cv2.imwrite(str(out), draw_persons(image, result.persons)):
            return _fail(f"cannot write {out} (unknown image extension or unwritable folder)")
    return 0 if result.persons else EXIT_NO_PERSON


def register(groups: Groups) -> None:
    parser = groups.top.add_parser(
        "pose",
        help="find people, their 33 keypoints and head pose in one image",
        description=(
            "Run the on-device perception pipeline (pose detector, pose landmarks, face landmarks, head pose) "
            "on one image. Exit codes: 0 found, 2 unreadable image, 3 no person."
        ),
    )
    parser.add_argument("image", help="image file (any format OpenCV reads)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--draw", metavar="OUT.png", help="also write the image with the skeleton drawn")
    parser.add_argument(
        "--model-dir", help="model store (default: $EDGESCREEN_MODEL_DIR, else ~/.cache/edgescreen/models)"
    )
    parser.add_argument("--threads", type=int, default=2, help="inference threads per model (default 2)")
    parser.add_argument("--no-face", action="store_true", help="skip face landmarks and head pose")
    parser.set_defaults(func=_pose)
