"""The GPU check on a machine without a GPU: the script skips with one line; the parts that run on a CPU (step
budgets in real processes, failures recorded while the rest go on, the report, the estimates from
docs/results.md, the training-speed and edge-run steps on the CPU, a backend behind the parity gates) work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgescreen.gpu_check.report import markdown, read_report, report_data, write_report
from edgescreen.gpu_check.steps import KILL_GRACE_S, Step, StepResult, StepRunner

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
HERE = "tests.ops.test_gpu_check"
HAS_GPU = shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


# ---- step functions the runner starts in their own processes ---------------------------------------------


def sleep_with_child(seconds: float, pids: str) -> dict[str, Any]:
    """Sleeps, with a grandchild that sleeps too: stopping the step must stop both."""
    child = subprocess.Popen(["sleep", str(seconds)])
    Path(pids).write_text(f"{os.getpid()} {child.pid}")
    time.sleep(seconds)
    return {"slept": seconds}


def answer(value: int) -> dict[str, Any]:
    return {"value": value, "pid": os.getpid()}


def raise_value_error(where: str) -> dict[str, Any]:
    raise ValueError(f"bad input at {where}")


def crash(code: int) -> dict[str, Any]:
    os._exit(code)


def report_missing() -> dict[str, Any]:
    return {"status": "missing", "detail": "nothing to check here"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that nobody reaped is not running
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


# ---- the script -------------------------------------------------------------------------------------------


def _script(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=120, env=env, check=False, cwd="/"
    )


@pytest.mark.skipif(HAS_GPU, reason="this machine has an NVIDIA GPU")
def test_script_without_a_gpu_skips_with_one_line_and_exit_0(tmp_path: Path) -> None:
    run = _script(tmp_path / "out", {**os.environ, "EDGESCREEN_TEGRA_RELEASE": str(tmp_path / "no-l4t")})
    assert run.returncode == 0
    assert run.stdout.splitlines() == [
        "gpu-check: skipped: no NVIDIA GPU on this machine (no GPU from nvidia-smi, no /dev/nvidia0, not a Jetson)"
    ]
    assert run.stderr == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(HAS_GPU, reason="this machine has an NVIDIA GPU")
@pytest.mark.parametrize("sign", ["nvidia-smi", "jetson"])
def test_a_gpu_that_cuda_cannot_open_is_skipped_by_the_check_with_one_line(tmp_path: Path, sign: str) -> None:
    """With a GPU's sign (a stand-in nvidia-smi, or a Jetson's L4T release file on this x86 machine) the script
    goes on to the Python check, which finds no usable CUDA and skips with one line naming both."""
    env = {**os.environ, "GPU_CHECK_PYTHON": sys.executable, "EDGESCREEN_TEGRA_RELEASE": str(tmp_path / "no-l4t")}
    if sign == "nvidia-smi":
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "nvidia-smi"
        fake.write_text('#!/bin/sh\n[ "$1" = "-L" ] && echo "GPU 0: NVIDIA Stand-in (UUID: GPU-0)"\nexit 0\n')
        fake.chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        expected = "nvidia-smi: GPU 0: NVIDIA Stand-in"
    else:
        release = tmp_path / "nv_tegra_release"
        release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
        env["EDGESCREEN_TEGRA_RELEASE"] = str(release)
        expected = "Jetson (R36 (release), REVISION: 4.3)"
    run = _script(tmp_path / "out", env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: skipped: "), run.stdout
    assert expected in lines[0] and "CUDA cannot be used" in lines[0] and "sees no CUDA device" in lines[0]
    assert not (tmp_path / "out" / "gpu-report.json").exists()


def test_script_refuses_an_unknown_option_and_a_missing_outdir() -> None:
    for args in ([], ["out", "--bogus"], ["out", "--wheels"]):
        run = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False)
        assert run.returncode == 2 and "usage:" in run.stderr, args


# ---- budgets and failures, in real processes --------------------------------------------------------------


def test_a_step_over_its_budget_is_stopped_with_what_it_started_and_the_next_runs(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    runner = StepRunner(tmp_path, 120)
    slow, fast = runner.run_all(
        [
            Step("slow", "training", f"{HERE}:sleep_with_child", 3, {"seconds": 60, "pids": str(pids)}),
            Step("fast", "training", f"{HERE}:answer", 30, {"value": 42}),
        ]
    )
    assert slow.status == "timeout" and "over its budget of 3 s" in (slow.error or "")
    assert 3 <= slow.seconds < 3 + 2 * KILL_GRACE_S
    step_pid, grandchild = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(step_pid) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(step_pid) and not _alive(grandchild)
    assert fast.status == "ok" and fast.figures["value"] == 42 and fast.figures["pid"] != os.getpid()
    assert [r.name for r in runner.results] == ["slow", "fast"]


def test_a_step_that_raises_or_dies_is_recorded_with_its_error_and_the_rest_go_on(tmp_path: Path) -> None:
    runner = StepRunner(tmp_path, 120)
    raised, died, missing, ok = runner.run_all(
        [
            Step("raises", "engine", f"{HERE}:raise_value_error", 30, {"where": "row 7"}),
            Step("dies", "engine", f"{HERE}:crash", 30, {"code": 3}),
            Step("missing", "models", f"{HERE}:report_missing", 30),
            Step("after", "engine", f"{HERE}:answer", 30, {"value": 1}),
        ]
    )
    assert raised.status == "failed" and raised.error == "ValueError: bad input at row 7"
    assert "Traceback" in Path(raised.log or "").read_text()  # the step's log keeps the traceback
    assert died.status == "failed" and (died.error or "").startswith("exited with status 3 and no result")
    assert missing.status == "missing" and missing.error == "nothing to check here"
    assert ok.status == "ok" and ok.figures == {"value": 1, "pid": ok.figures["pid"]}


def test_steps_share_the_whole_run_budget(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    runner = StepRunner(tmp_path, 8)
    first, second = runner.run_all(
        [
            Step("long", "training", f"{HERE}:sleep_with_child", 60, {"seconds": 60, "pids": str(pids)}),
            Step("next", "training", f"{HERE}:answer", 30, {"value": 2}),
        ]
    )
    assert first.status == "timeout" and "the whole run's budget ran out" in (first.error or "")
    assert second.status == "not run" and second.seconds == 0


# ---- the report -------------------------------------------------------------------------------------------


def _results() -> list[StepResult]:
    parity = {
        "passed": False,
        "failures": ["mean keypoint error 0.0213 of torso size > budget 0.01"],
        "checks": [{"metric": "keypoint_error_torso_fraction", "candidate": 0.0213, "limit": "≤ 0.01", "ok": False}],
    }
    return [
        StepResult("environment", "environment", "ok", 3.2, 60, {"gpu": "NVIDIA H200", "gpu_memory_mb": 143771.0,
                   "driver": "570.1", "cuda": "12.8", "tensorrt": "10.9.0", "torch": "2.13.0", "cpus": 16}),
        StepResult("engine pose_landmark_full int8", "engine", "ok", 41.0, 150, {"model": "pose_landmark_full",
                   "precision": "int8", "build_s": 18.4, "reused": False, "parity": parity,
                   "latency_ms": {"median": 0.61, "p99": 0.93}}),
        StepResult("edge run gait", "runtime", "ok", 20.0, 90, {"role": "gait", "backend": "tensorrt fp16",
                   "fps": 212.5, "gpu_mb": 830.0, "peak_rss_mb": 610.2, "frames": 450}),
        StepResult("train vgg19", "training", "ok", 30.0, 120, {"network": "vgg19", "input": "3×224×224",
                   "batch_size": 32, "steps": 15, "samples_per_s": 410.3, "epoch_s": 0.468, "peak_gpu_mb": 9120.5,
                   "device": "NVIDIA H200"}),
        StepResult("estimate cross-validation", "estimate", "ok", 2.0, 60, {"rows": [{"task": "gait",
                   "network": "sconet_mt", "data": "synthetic:240", "folds": 4, "epochs": 60, "final_fit": True,
                   "hours": 0.31, "command": "edgescreen train --task gait", "note": ""}]}),
        StepResult("train efficientnet_b5", "training", "timeout", 120.0, 120,
                   error="stopped after 120 s: over its budget of 120 s"),
        StepResult("engine face_landmark fp16", "engine", "failed", 4.1, 90,
                   error="EngineBuildError: TensorRT's ONNX parser rejected x.onnx: a | b"),
    ]  # fmt: skip


def test_report_is_written_as_json_and_a_markdown_table(tmp_path: Path) -> None:
    results = _results()
    data = report_data(results, started_utc="2026-12-03 10:00:00 UTC", seconds=222.0, budget_s=510.0)
    _, md_path = write_report(tmp_path, data)
    back = read_report(tmp_path)
    assert back == json.loads(json.dumps(data))
    assert back["counts"] == {"ok": 5, "failed": 1, "timeout": 1} and back["machine"]["gpu"] == "NVIDIA H200"
    assert [StepResult.from_json(s) for s in back["steps"]] == results
    text = md_path.read_text()
    assert text == markdown(back)
    assert "Machine: GPU NVIDIA H200 (143771 MiB), driver 570.1, CUDA 12.8, TensorRT 10.9.0" in text
    assert "222 s of a 510 s budget; 7 steps: 5 ok, 1 failed, 1 timeout." in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert "| train efficientnet_b5 | timeout | 120 | 120 | stopped after 120 s: over its budget of 120 s |" in rows
    # a | inside an error does not break the table
    assert any(r.startswith("| engine face_landmark fp16 | failed |") and "a \\| b" in r for r in rows)
    assert (
        "| pose_landmark_full | int8 | 18.4 | no | FAIL: mean keypoint error 0.0213 of torso size > budget 0.01 "
        "| keypoint_error_torso_fraction 0.0213 (limit ≤ 0.01) | 0.61 | 0.93 |" in rows
    )
    assert "| gait | tensorrt fp16 | 212 | 830 | 610 | 450 |" in rows
    assert "| vgg19 | 3×224×224 | 32 | 15 | 410 | 0.468 | 9120 | NVIDIA H200 |" in rows
    assert "| gait | sconet_mt | synthetic:240 | 4 | 60 | yes | 0.31 | `edgescreen train --task gait` |" in rows


# ---- estimates from docs/results.md -----------------------------------------------------------------------


def test_estimates_read_the_task_sizes_of_docs_results_md() -> None:
    from edgescreen.gpu_check.estimate import estimate

    measured = [
        {"network": "resnet50", "task": "posture-image", "samples_per_s": 200.0},
        {"network": "vgg19", "task": "posture-image", "samples_per_s": 100.0},
        {"network": "sconet_mt", "task": "gait", "samples_per_s": 50.0},
        {"network": "sresnet34", "task": "xray", "samples_per_s": 120.0},
    ]
    rows = {r["network"]: r for r in estimate(measured)["rows"]}
    text = (ROOT / "docs" / "results.md").read_text()
    for r in rows.values():
        assert r["command"] in " ".join(text.split())  # the sizes come from a command printed in the doc
    # the GPU command of the posture-image task: 400 photos, 4 folds, 30 epochs, final fit → 4 fits of the data
    assert (rows["resnet50"]["data"], rows["resnet50"]["folds"], rows["resnet50"]["epochs"]) == ("synthetic:400", 4, 30)
    assert rows["resnet50"]["hours"] == pytest.approx(30 * 400 * 4 / 200 / 3600, rel=1e-9)
    assert rows["vgg19"]["command"] == rows["resnet50"]["command"] and rows["vgg19"]["hours"] == pytest.approx(
        2 * rows["resnet50"]["hours"], rel=1e-9
    )
    assert "--device cuda" in rows["sconet_mt"]["command"] and rows["sconet_mt"]["epochs"] == 60
    # no GPU command for the X-ray task: its CPU command's sizes, without the final fit (3 of 4 folds' data)
    assert rows["sresnet34"]["final_fit"] is False and "--width small" in rows["sresnet34"]["note"]
    assert rows["sresnet34"]["hours"] == pytest.approx(rows["sresnet34"]["epochs"] * 240 * 3 / 120 / 3600, rel=1e-9)


# ---- steps that run on the CPU too ------------------------------------------------------------------------


def test_training_speed_runs_the_projects_trainer_on_generated_tensors() -> None:
    from edgescreen.gpu_check.training_speed import train_speed

    figures = train_speed("sresnet34", device="cpu", epochs=2, samples=10, batch_size=4, size=32, width=0.125)
    assert figures["network"] == "sresnet34" and figures["input"] == "1×32×32" and figures["device"] == "cpu"
    assert figures["steps"] == 4  # 8 of 10 samples trained per epoch, batches of 4, 2 epochs
    assert figures["samples_per_s"] == pytest.approx(10 / figures["epoch_s"], rel=0.01)
    with pytest.raises(ValueError, match="unknown network 'resnet18'"):
        train_speed("resnet18", device="cpu")


def test_backend_behind_the_parity_gates_of_export_verify(model_dir: Path) -> None:
    """EngineRunner puts a backend behind ONNX Runtime's `run`; here the ONNX Runtime backend itself stands
    where the TensorRT engine goes on a GPU, so parity must be exact and the batch split invisible."""
    from edge.backends.base import BackendConfig
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    from edgescreen.gpu_check.engines import EngineRunner, latency
    from export.verify import verify_runner

    model = model_dir / "pose_detection.onnx"
    backend = OnnxRuntimeBackend(BackendConfig(threads=1))
    backend.load(model)
    runner = EngineRunner(backend)
    described = {"path": str(model), "sha256": "0" * 64, "precision": "fp16"}
    report = verify_runner(model, runner, described, "synthetic")
    assert report.passed and report.kind == "detector" and report.samples > 1
    assert report.metrics["top_box_centre_error_fraction"] == 0.0
    spec = backend.inputs[0]
    x = np.random.default_rng(1).random((3, *[int(d) for d in spec.shape[1:]]), dtype=np.float32)  # type: ignore[arg-type]
    split = runner.run(None, {spec.name: x})
    one_by_one = [backend.infer({spec.name: x[i : i + 1]}) for i in range(3)]
    for k, out in enumerate(split):
        assert out.shape[0] == 3 and np.array_equal(out, np.concatenate([o[k] for o in one_by_one]))
    timing = latency(backend, runs=20)
    assert 0 < timing["median"] <= timing["p99"] and timing["runs"] == 20


def test_edge_run_step_measures_the_device_runtime(tmp_path: Path, model_dir: Path) -> None:
    from edgescreen.gpu_check.runtime import edge_run

    figures = edge_run(
        "posture", work=str(tmp_path), model_dir=str(model_dir), cache=str(tmp_path / "engines"), seconds=8.0,
        backend="onnxruntime",
    )  # fmt: skip
    # every frame of the clip went through; 240 frames keep a quiet machine (about 100 fps here) running past the
    # first one-second heartbeat, which 90 did not
    assert figures["frames"] == figures["clip_frames"] == 240
    assert figures["fps"] is not None and figures["fps"] > 0 and len(figures["fps_heartbeats"]) >= 1
    assert figures["peak_rss_mb"] > 50
    with pytest.raises(RuntimeError, match=r"engine build --profile exited with 1: .*TensorRT"):
        # the TensorRT backend without TensorRT: its engines cannot be built, and the step says why
        edge_run("headpose", work=str(tmp_path), model_dir=str(model_dir), cache=str(tmp_path / "e"), seconds=1.0)


def test_the_check_without_a_gpu_writes_its_report_when_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "edgescreen.gpu_check", str(out), "--force", "--only", "environment",
         "--only", "estimate", "--trained", str(tmp_path)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    data = read_report(out)
    status = {s["name"]: s["status"] for s in data["steps"]}
    assert status == {"environment": "ok", "estimate cross-validation": "skipped"}
    assert data["machine"]["cuda_usable"] is False and data["machine"]["arch"]
    assert run.stdout.strip() == f"gpu-check: 2 steps (1 ok, 1 skipped); report: {out / 'gpu-report.md'}"
    assert (out / "logs" / "environment.log").is_file()
