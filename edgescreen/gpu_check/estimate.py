"""Step `estimate`: how long each task's full cross-validation in docs/results.md would take, from the training
step's samples per second.

The task sizes are read from the `edgescreen train ...` commands in docs/results.md (parsed with the
command's own parser, so the defaults are the command's). For a network, the command naming it with
`--arch` is used, else the task's command (the posture-image backbones share one); a `--device cuda`
command is preferred to a CPU one. A fold trains on (K-1)/K of the N samples and the final fit on all of
them, one visit per sample per epoch, so the time is epochs × N × (K-1+1) / rate (epochs × N × (K-1) / rate
with `--no-final-fit`); early stopping only shortens it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results.md"
COMMAND = re.compile(r"`(edgescreen train [^`]+)`")


def doc_commands(text: str) -> list[dict[str, Any]]:
    """Every `edgescreen train ...` command of the text, parsed as the command parses it."""
    from edgescreen.cli import build_parser

    parser = build_parser()
    found = []
    for match in COMMAND.finditer(text):
        raw = " ".join(match.group(1).split())
        argv = shlex.split(raw)[1:]
        if "--out" not in argv:
            argv += ["--out", "unused"]
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                args: argparse.Namespace = parser.parse_args(argv)
        except SystemExit:  # a command quoted in part ("--task …"): no sizes to read
            continue
        size = re.fullmatch(r"synthetic:(\d+)", args.data)
        if size is None:
            continue
        found.append(
            {"command": raw, "task": args.task, "arch": args.arch, "samples": int(size.group(1)),
             "folds": args.folds, "epochs": args.epochs, "final_fit": not args.no_final_fit,
             "device": args.device, "width": args.width}
        )  # fmt: skip
    return found


def pick(commands: list[dict[str, Any]], task: str, network: str) -> dict[str, Any] | None:
    from training.models.registry import default_arch

    of_task = [c for c in commands if c["task"] == task]
    named = [c for c in of_task if (c["arch"] or default_arch(task)) == network]
    for group in (named, of_task):
        for c in sorted(group, key=lambda c: c["device"] != "cuda"):
            return c
    return None


def hours(command: dict[str, Any], samples_per_s: float) -> float:
    fits = command["folds"] if command["final_fit"] else command["folds"] - 1
    return command["epochs"] * command["samples"] * fits / samples_per_s / 3600.0


def estimate(training: list[dict[str, Any]], results_md: str | None = None) -> dict[str, Any]:
    """Rows of (task, network, sizes, estimated hours) for each measured network."""
    path = Path(results_md) if results_md else RESULTS
    commands = doc_commands(path.read_text())
    if not commands:
        raise ValueError(f"no `edgescreen train --data synthetic:N ...` commands found in {path}")
    rows, unmatched = [], []
    for figures in training:
        network, task, rate = figures["network"], figures["task"], float(figures["samples_per_s"])
        command = pick(commands, task, network)
        if command is None or rate <= 0:
            unmatched.append(network)
            continue
        rows.append(
            {"task": task, "network": network, "data": f"synthetic:{command['samples']}", "folds": command["folds"],
             "epochs": command["epochs"], "final_fit": command["final_fit"], "samples_per_s": rate,
             "hours": hours(command, rate), "command": command["command"],
             "note": "" if command["width"] == "full" else f"sizes of a --width {command['width']} run, timed at full"}
        )  # fmt: skip
    return {"rows": rows, "unmatched": unmatched, "source": str(path)}
