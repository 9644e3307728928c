"""`python -m edgescreen.gpu_check OUTDIR`: the GPU check's steps in order, within one time budget.

Without an NVIDIA GPU (or with one that CUDA cannot open) it prints one line saying it skipped and exits 0.
Otherwise it writes OUTDIR/gpu-report.json and OUTDIR/gpu-report.md (rewritten after every step, so a run
cut short still leaves its report), one log per step under OUTDIR/logs, engines under OUTDIR/engines and
calibrated INT8 models under OUTDIR/work (both reused by a rerun). Exit status 1 when a step failed or ran
over its budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from edgescreen.gpu_check.report import report_data, write_report
from edgescreen.gpu_check.steps import Step, StepResult, StepRunner

log = logging.getLogger("edgescreen.gpu_check")

PACKAGE = "edgescreen.gpu_check"
DEFAULT_BUDGET_S = 510.0  # the script's nine minutes, less installing and starting
BUDGET_S = {
    "environment": 60.0,
    "models": 180.0,
    "fp16": 90.0,
    "int8": 150.0,
    "runtime": 90.0,
    "training": 120.0,
    "estimate": 60.0,
}
GROUPS = ("environment", "models", "fp16", "runtime", "training", "estimate", "int8", "trained")
ROLES = ("posture", "gait", "headpose")
CLIP_S = 15.0
TRAINED_DATA = "synthetic:200"  # labelled synthetic samples of a trained model's task for its parity


class Stopped(Exception):
    """SIGTERM (the script's own time limit, or the operator)."""


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m edgescreen.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder for gpu-report.json, gpu-report.md, logs, engines")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="the whole check's time limit")
    p.add_argument("--model-dir", type=Path, default=None, help="perception models (default $EDGESCREEN_MODEL_DIR)")
    p.add_argument(
        "--trained", type=Path, default=os.environ.get("EDGESCREEN_TRAINED_DIR"),
        help="folder of trained models exported with `edgescreen export onnx` (default $EDGESCREEN_TRAINED_DIR)",
    )  # fmt: skip
    p.add_argument("--wheels", type=Path, default=None, help="wheels folder (the MediaPipe wheel for the models)")
    p.add_argument("--only", action="append", choices=GROUPS, help="run only these groups of steps (repeatable)")
    p.add_argument(
        "--force", action="store_true",
        help="run the steps even without a GPU (they fail and are recorded: a test of the check itself)",
    )  # fmt: skip
    return p.parse_args(argv)


def skip_reason() -> str | None:
    """Why this machine cannot run the check, or None if it can."""
    from edgescreen.gpu_check.environment import cuda_usable, gpu_signs

    signs = gpu_signs()
    if not signs:
        return "no NVIDIA GPU on this machine (no GPU from nvidia-smi, no /dev/nvidia0, not a Jetson)"
    usable, why = cuda_usable()
    return None if usable else f"{signs[0]} is here, but CUDA cannot be used ({why})"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.force:
        reason = skip_reason()
        if reason is not None:
            print(f"gpu-check: skipped: {reason}")
            return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    started, started_utc = time.monotonic(), dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def save(_: StepResult | None = None) -> None:
        data = report_data(runner.results, started_utc=started_utc, seconds=time.monotonic() - started,
                           budget_s=args.budget_s)  # fmt: skip
        write_report(out, data)

    runner = StepRunner(out, args.budget_s, on_result=save)
    try:
        run_check(runner, args, out)
    except (Stopped, KeyboardInterrupt) as exc:
        log.warning("stopped (%s) with %.0f s of the budget left", exc or "interrupted", runner.remaining())
    save()
    results = runner.results
    bad = [r for r in results if r.status in ("failed", "timeout")]
    counts = ", ".join(f"{sum(r.status == s for r in results)} {s}" for s in dict.fromkeys(r.status for r in results))
    print(f"gpu-check: {len(results)} steps ({counts or 'none'}); report: {out / 'gpu-report.md'}")
    return 1 if bad else 0


def run_check(runner: StepRunner, args: argparse.Namespace, out: Path) -> None:
    from edge.model_store import default_model_dir
    from edgescreen.gpu_check.training_speed import NETWORKS

    def wanted(group: str) -> bool:
        return not args.only or group in args.only

    work, cache = out / "work", out / "engines"
    model_dir = str(args.model_dir or default_model_dir())
    if wanted("environment"):
        runner.run(Step("environment", "environment", f"{PACKAGE}.environment:describe", BUDGET_S["environment"]))
    models: StepResult | None = None
    if any(wanted(g) for g in ("models", "fp16", "int8", "runtime")):
        step = Step(
            "perception models", "models", f"{PACKAGE}.engines:perception_models", BUDGET_S["models"],
            {"model_dir": model_dir, "wheels": str(args.wheels) if args.wheels else None},
        )  # fmt: skip
        models = runner.run(step)
    perception: dict[str, str] = models.figures.get("models", {}) if models and models.status == "ok" else {}
    no_models = f"no perception models ({models.status if models else 'not asked for'})"

    def engine_steps(group: str, paths: dict[str, str], source: str, data: str) -> None:
        for name, path in paths.items():
            step = Step(
                f"engine {name} {group}", "engine", f"{PACKAGE}.engines:engine_check", BUDGET_S[group],
                {"model": path, "precision": group, "cache": str(cache), "work": str(work), "data": data,
                 "calibration": data, "source": source},
            )  # fmt: skip
            runner.run(step)

    if wanted("fp16"):
        engine_steps("fp16", perception, "perception", "synthetic")
    if wanted("runtime"):
        for role in ROLES:
            step = Step(
                f"edge run {role}", "runtime", f"{PACKAGE}.runtime:edge_run", BUDGET_S["runtime"],
                {"role": role, "work": str(work), "model_dir": model_dir, "cache": str(cache), "seconds": CLIP_S},
            )  # fmt: skip
            if perception:
                runner.run(step)
            else:
                runner.skip(step, no_models)
    training: list[StepResult] = []
    if wanted("training"):
        for network in NETWORKS:
            step = Step(
                f"train {network}",
                "training",
                f"{PACKAGE}.training_speed:train_speed",
                BUDGET_S["training"],
                {"network": network},
            )
            training.append(runner.run(step))
    if wanted("estimate"):
        measured = [r.figures for r in training if r.status == "ok"]
        step = Step(
            "estimate cross-validation",
            "estimate",
            f"{PACKAGE}.estimate:estimate",
            BUDGET_S["estimate"],
            {"training": measured},
        )
        if measured:
            runner.run(step)
        else:
            runner.skip(step, "no training figures to estimate from")
    if wanted("int8"):
        engine_steps("int8", perception, "perception", "synthetic")
    if wanted("trained"):
        trained = _trained(args.trained)
        if not trained:
            where = args.trained or "(none given: --trained DIR or $EDGESCREEN_TRAINED_DIR)"
            runner.skip(Step("trained models", "engine", "", 0.0), f"no trained FP32 ONNX models in {where}")
        for group in ("fp16", "int8"):
            engine_steps(group, trained, "trained", TRAINED_DATA)


def _trained(folder: Path | None) -> dict[str, str]:
    """Trained FP32 models (ONNX carrying a task) under `folder`, by file stem."""
    if folder is None or not Path(folder).is_dir():
        return {}
    from export.calibration import CalibrationError, describe

    found = {}
    for path in sorted(Path(folder).rglob("*.onnx")):
        try:
            info = describe(path)
        except CalibrationError as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        if info.task and info.metadata.get("edgescreen.precision", "fp32") == "fp32" and ".int8" not in path.name:
            found[path.stem] = str(path)
    return found


if __name__ == "__main__":
    sys.exit(main())
