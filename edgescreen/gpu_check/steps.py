"""Steps with time budgets, each in its own process.

A step names a function (`module:function`) and its keyword arguments (JSON). It runs in a child process
(`python -m edgescreen.gpu_check.child`) in a session of its own, so that a step over its budget can be
stopped with everything it started (a TensorRT build, an `edge run`), and so that one step's CUDA context,
GPU memory or crash never reaches the next. The function returns a dict of figures; a `status` of
"missing" or "skipped" in it is taken as the step's status. A step that raises is recorded with its error,
one that runs over its budget (or over what is left of the whole run's budget) is stopped and recorded;
either way the next step runs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "timeout", "missing", "skipped", "not run"]
STATUSES: tuple[str, ...] = ("ok", "failed", "timeout", "missing", "skipped", "not run")
MIN_STEP_S = 5.0  # a step with less than this left of the whole run is not started
KILL_GRACE_S = 5.0  # after SIGTERM, how long a stopped step may take to exit before SIGKILL


@dataclass(frozen=True)
class Step:
    name: str  # unique in a run, e.g. "engine pose_detection fp16"
    kind: str  # section of the report: environment, models, engine, runtime, training, estimate
    target: str  # "package.module:function"
    budget_s: float
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepResult:
    name: str
    kind: str
    status: Status
    seconds: float
    budget_s: float
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    log: str | None = None

    def __post_init__(self) -> None:
        self.seconds = round(self.seconds, 2)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepResult:
        return cls(**data)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "step"


class StepRunner:
    """Runs steps one after the other within one overall budget; keeps every result."""

    def __init__(
        self,
        workdir: Path,
        total_budget_s: float,
        *,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_result: Callable[[StepResult], None] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.logs = self.workdir / "logs"
        self.calls = self.workdir / "work" / "steps"
        self.python = python
        self.env = env
        self.clock = clock
        self.deadline = clock() + total_budget_s
        self.on_result = on_result  # e.g. rewrite the report, so a run cut short still leaves one
        self.results: list[StepResult] = []

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def run_all(self, steps: Iterable[Step]) -> list[StepResult]:
        return [self.run(step) for step in steps]

    def run(self, step: Step) -> StepResult:
        left = self.remaining()
        if left < MIN_STEP_S:
            result = StepResult(
                step.name, step.kind, "not run", 0.0, step.budget_s, error=f"not started: {max(left, 0):.0f} s left"
            )
        else:
            result = self._run(step, min(step.budget_s, left))
        self._record(result)
        return result

    def skip(self, step: Step, why: str) -> StepResult:
        """Record a step that is not run because something it needs is not there."""
        result = StepResult(step.name, step.kind, "skipped", 0.0, step.budget_s, error=why)
        self._record(result)
        return result

    def _record(self, result: StepResult) -> None:
        self.results.append(result)
        level = logging.INFO if result.status in ("ok", "missing", "skipped") else logging.WARNING
        detail = f": {result.error}" if result.error else ""
        log.log(level, "%s: %s in %.1f s%s", result.name, result.status, result.seconds, detail)
        if self.on_result is not None:
            self.on_result(result)

    def _run(self, step: Step, timeout: float) -> StepResult:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.calls.mkdir(parents=True, exist_ok=True)
        name = slug(step.name)
        args_path, result_path = self.calls / f"{name}.args.json", self.calls / f"{name}.result.json"
        log_path = self.logs / f"{name}.log"
        args_path.write_text(json.dumps(step.args, default=str))
        result_path.unlink(missing_ok=True)
        command = [self.python, "-m", "edgescreen.gpu_check.child", step.target, str(args_path), str(result_path)]
        started = self.clock()
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True,
            )  # fmt: skip
            try:
                code = proc.wait(timeout=timeout)
            except BaseException as exc:
                _stop(proc)  # over its budget, or this run is being stopped: the step goes with it
                if not isinstance(exc, subprocess.TimeoutExpired):
                    raise
                seconds = self.clock() - started
                why = (
                    f"stopped after {seconds:.0f} s: over its budget of {step.budget_s:.0f} s"
                    if timeout >= step.budget_s
                    else f"stopped after {seconds:.0f} s: the whole run's budget ran out"
                )
                return StepResult(step.name, step.kind, "timeout", seconds, step.budget_s, error=why, log=str(log_path))
        seconds = self.clock() - started
        outcome = _read_outcome(result_path)
        if outcome is None:
            why = f"exited with status {code} and no result ({_last_line(log_path)})"
            return StepResult(step.name, step.kind, "failed", seconds, step.budget_s, error=why, log=str(log_path))
        if not outcome.get("ok"):
            error = str(outcome.get("error") or f"exited with status {code}")
            return StepResult(step.name, step.kind, "failed", seconds, step.budget_s, error=error, log=str(log_path))
        figures = dict(outcome.get("figures") or {})
        status = figures.pop("status", "ok")
        if status not in STATUSES:
            status = "ok"
        note = figures.pop("detail", None)
        return StepResult(
            step.name, step.kind, status, seconds, step.budget_s, figures,
            error=str(note) if note is not None and status != "ok" else None, log=str(log_path),
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the step's whole session, then SIGKILL if it is still there after the grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # anything left in the session (a grandchild that ignored SIGTERM) gets SIGKILL
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_outcome(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"
