"""Head-pose station accuracy on synthetic subjects with known head yaw, pitch, roll and lateral/sagittal shift.

Seated subjects from the synthetic body generator (`sample_posture(rng, "cervical")`: head pose and shift spread
over a cervical-dystonia-like range) in front of a camera 0.9-1.2 m away. The station's per-frame metrics
(`edge.roles.headpose.metrics.compute_headpose`, keypoint path: no face mesh) run on what a pose estimator
would report: image keypoints with the generator's estimator noise, dropout and visibility, and world
landmarks with Gaussian noise (0.5 cm across, 1.5 cm in depth). Truth is the generator's head orientation
and shift relative to the trunk. Prints a markdown table of MAE and Pearson r per measure. Synthetic figures:
they bound what the geometry can do, not what the station does on patients.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract.landmarks import NUM_LANDMARKS  # noqa: E402
from edge.perception.types import Person  # noqa: E402
from edge.roles.headpose.metrics import compute_headpose  # noqa: E402
from training.synth.body import J, head_orientation, pose_body, sample_anthropometry  # noqa: E402
from training.synth.camera import view_camera  # noqa: E402
from training.synth.posture import sample_posture  # noqa: E402
from training.synth.render import estimator_keypoints  # noqa: E402
from training.synth.tasks import SEAT_HEIGHT, SEATED  # noqa: E402

SIZE = 640
MEASURES = (
    ("yaw_deg", "rotation (yaw)", "°"),
    ("pitch_deg", "antero/retrocollis (pitch)", "°"),
    ("roll_deg", "laterocollis (roll)", "°"),
    ("lateral_shift_cm", "lateral shift", "cm"),
    ("sagittal_shift_cm", "sagittal shift", "cm"),
)


def simulate(
    n: int, seed: int, neutral_sagittal_cm: float = 0.0
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """Measured and true values per metric over `n` synthetic subjects; also the number with no measurement."""
    measured: dict[str, list[float]] = {m: [] for m, _, _ in MEASURES}
    truth: dict[str, list[float]] = {m: [] for m, _, _ in MEASURES}
    missed = 0
    for i in range(n):
        rng = np.random.default_rng([seed, 5, i])
        anthro = sample_anthropometry(rng)
        posture = sample_posture(rng, "cervical")
        skel = pose_body(anthro, posture, SEATED, root=(0.0, SEAT_HEIGHT, 0.0), on_ground=False)
        target = skel["c7"] + np.array([0.0, 0.06 * anthro.scale, 0.0])
        height = (float(target[1]) - 0.1, float(target[1]) + 0.1)
        cam = view_camera(rng, SIZE, SIZE, view="front", target=target, distance=(0.9, 1.2), camera_height=height,
                          hfov=(38.0, 46.0))  # fmt: skip
        keypoints = estimator_keypoints(skel.joints, cam, rng, noise=0.004).reshape(NUM_LANDMARKS, 3)
        world = cam.to_camera(skel.joints[:NUM_LANDMARKS]) - cam.to_camera(skel.joints[J["pelvis"]])
        world = world + rng.normal(0.0, [0.005, 0.005, 0.015], world.shape)
        person = Person(score=0.95, bbox=(0.0, 0.0, SIZE, SIZE), keypoints=keypoints.astype(np.float32),
                        world=world.astype(np.float32))  # fmt: skip
        frame = compute_headpose(person, neutral_sagittal_cm=neutral_sagittal_cm)
        yaw, pitch, roll = head_orientation(posture)
        true = {"yaw_deg": yaw, "pitch_deg": pitch, "roll_deg": roll,
                "lateral_shift_cm": 100 * posture.head_lateral_shift,
                "sagittal_shift_cm": 100 * posture.head_sagittal_shift}  # fmt: skip
        if all(v is None for v in frame.values.values()):
            missed += 1
        for name, value in frame.values.items():
            if value is not None:
                measured[name].append(value)
                truth[name].append(true[name])
    return measured, truth, missed


def figures(measured: dict[str, list[float]], truth: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, _, _ in MEASURES:
        m, t = np.asarray(measured[name]), np.asarray(truth[name])
        if len(m) < 3:
            out[name] = {"n": float(len(m)), "mae": float("nan"), "r": float("nan"), "bias": float("nan")}
            continue
        out[name] = {
            "n": float(len(m)),
            "mae": float(np.mean(np.abs(m - t))),
            "r": float(np.corrcoef(m, t)[0, 1]),
            "bias": float(np.mean(m - t)),
            "truth_sd": float(np.std(t)),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="synthetic subjects")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration-n", type=int, default=100, help="other subjects for the sagittal neutral")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    # the station's sagittal neutral is calibrated once (headpose.neutral_sagittal_cm): here on other subjects
    cal_measured, cal_truth, _ = simulate(args.calibration_n, args.seed + 1000)
    neutral = float(np.mean(np.subtract(cal_measured["sagittal_shift_cm"], cal_truth["sagittal_shift_cm"])))
    measured, truth, missed = simulate(args.n, args.seed, neutral)
    result = figures(measured, truth)
    if args.json:
        print(json.dumps({"n": args.n, "seed": args.seed, "missed": missed, "neutral_sagittal_cm": neutral,
                          "figures": result}, indent=2))  # fmt: skip
        return 0
    print(f"synthetic subjects: {args.n} (seed {args.seed}), keypoint path, {missed} without any measurement; "
          f"sagittal neutral {neutral:+.2f} cm from {args.calibration_n} other subjects\n")  # fmt: skip
    print("| measure | n | MAE | bias | Pearson r | truth SD |")
    print("|---|---|---|---|---|---|")
    for name, label, unit in MEASURES:
        f = result[name]
        print(f"| {label} | {int(f['n'])} | {f['mae']:.2f} {unit} | {f['bias']:+.2f} {unit} | {f['r']:.2f} | "
              f"{f.get('truth_sd', float('nan')):.2f} {unit} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
