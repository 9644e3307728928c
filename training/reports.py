"""report.json, report.md and PNG plots (ROC, confusion matrix, calibration, Grad-CAM, regression agreement)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from contract.labels import class_names

CLINICAL_NOTE = (
    "Figures from synthetic data measure whether the pipeline learns the generator's rules; "
    "they are not clinical results."
)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="mergesort")
    y = y[order].astype(bool)
    tps = np.concatenate([[0], np.cumsum(y)])
    fps = np.concatenate([[0], np.cumsum(~y)])
    return fps / max(1, fps[-1]), tps / max(1, tps[-1])


def plot_roc(y: np.ndarray, proba: np.ndarray, names: list[str], path: Path, auc: float) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ks = [1] if proba.shape[1] == 2 else list(range(proba.shape[1]))
    for k in ks:
        fpr, tpr = _roc_points(y == k, proba[:, k])
        ax.plot(fpr, tpr, label=f"{names[k]} vs rest" if len(ks) > 1 else names[k])
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"ROC (pooled CV), AUC {auc:.3f}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, names: list[str], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=100)
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="black", fontsize=9)
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (pooled CV)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_calibration(y: np.ndarray, proba: np.ndarray, path: Path, bins: int = 10) -> None:
    """Reliability of the top-class probability: observed accuracy per confidence bin."""
    plt = _plt()
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    xs, ys = [], []
    for lo, hi in itertools.pairwise(edges):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            xs.append(conf[sel].mean())
            ys.append(correct[sel].mean())
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.plot(xs, ys, "o-")
    ax.set(xlabel="predicted confidence", ylabel="observed accuracy", title="Calibration (pooled CV)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_regression(truth: np.ndarray, pred: np.ndarray, name: str, out: Path) -> list[str]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(truth, pred, s=6, alpha=0.6)
    lo, hi = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k:", lw=0.8)
    ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title=f"{name} (pooled CV)")
    fig.tight_layout()
    fig.savefig(out / f"scatter_{name}.png")
    plt.close(fig)
    mean = (truth + pred) / 2
    diff = pred - truth
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(mean, diff, s=6, alpha=0.6)
    for v, style in ((bias, "-"), (bias - 1.96 * sd, "--"), (bias + 1.96 * sd, "--")):
        ax.axhline(v, color="r", ls=style, lw=0.8)
    ax.set(xlabel="mean of true and predicted", ylabel="predicted - true", title=f"Bland-Altman: {name}")
    fig.tight_layout()
    fig.savefig(out / f"bland_altman_{name}.png")
    plt.close(fig)
    return [f"scatter_{name}.png", f"bland_altman_{name}.png"]


def _fmt(value: float, ci: list[float] | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.3f}"
    if ci and not any(math.isnan(c) for c in ci):
        text += f" ({ci[0]:.3f}–{ci[1]:.3f})"
    return text


def markdown(report: dict[str, Any], plots: list[str]) -> str:
    d = report["data"]
    lines = [
        f"# {report['task']} — {report['arch']}",
        "",
        f"Data: {d['source']} — {d['samples']} samples from {d['subjects']} subjects (sha256 {d['sha256'][:12]}…).",
        f"Subject-grouped stratified {report['config']['folds']}-fold CV, seed {report['config']['seed']}, "
        f"up to {report['config']['epochs']} epochs, width {report['config']['width']}, {report['seconds']} s.",
        "",
        CLINICAL_NOTE,
        "",
    ]
    pooled = report["pooled"]
    if report["kind"] == "regression":
        lines += ["| output | Pearson r (95 % CI) | MAE (95 % CI) | Bland–Altman bias [LoA] |", "|---|---|---|---|"]
        for name, m in pooled.items():
            if isinstance(m, dict):
                ba = m["bland_altman"]
                lines.append(
                    f"| {name} | {_fmt(m['pearson_r'], m['ci95']['pearson_r'])} | {_fmt(m['mae'], m['ci95']['mae'])}"
                    f" | {ba['bias']:.3f} [{ba['loa_low']:.3f}, {ba['loa_high']:.3f}] |"
                )
        lines += ["", "Per fold:", "", "| fold | n test | " + " | ".join(f"r {n}" for n in pooled if n != "n") + " |"]
        lines.append("|---|---|" + "---|" * (len(pooled) - 1))
        for f in report["folds"]:
            rs = " | ".join(_fmt(f["metrics"][n]["pearson_r"]) for n in pooled if n != "n")
            lines.append(f"| {f['fold']} | {f['n_test']} | {rs} |")
    else:
        keys = ("auc", "accuracy", "sensitivity", "specificity", "f1")
        lines += ["| metric | pooled (95 % CI) | mean of folds |", "|---|---|---|"]
        for k in keys:
            lines.append(f"| {k} | {_fmt(pooled[k], pooled['ci95'].get(k))} | {_fmt(report['fold_mean'][k])} |")
        lines += ["", "| fold | n test | AUC | accuracy | F1 | best epoch |", "|---|---|---|---|---|---|"]
        for f in report["folds"]:
            m = f["metrics"]
            lines.append(
                f"| {f['fold']} | {f['n_test']} | {_fmt(m['auc'])} | {_fmt(m['accuracy'])} | {_fmt(m['f1'])}"
                f" | {f['best_epoch']} |"
            )
        lines += ["", f"Confusion matrix (rows true, columns predicted; {', '.join(class_names(report['task']))}):"]
        lines += ["", "```", *("  ".join(f"{v:5d}" for v in row) for row in pooled["confusion_matrix"]), "```"]
    lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in plots), ""]
    return "\n".join(lines)


def write_reports(
    report: dict[str, Any],
    out: Path,
    *,
    prepared: Any,
    pooled_pred: np.ndarray,
    cam: tuple[Any, Any, np.ndarray] | None = None,
) -> list[str]:
    """Write the plots, report.json and report.md into `out`; returns the plot file names."""
    plots: list[str] = []
    y = prepared.y
    if report["kind"] == "regression":
        for j, name in enumerate(n for n, v in report["pooled"].items() if isinstance(v, dict)):
            plots += plot_regression(y[:, j], pooled_pred[:, j], name, out)
    else:
        names = class_names(report["task"])
        plot_roc(y, pooled_pred, names, out / "roc.png", report["pooled"]["auc"])
        plot_confusion(np.asarray(report["pooled"]["confusion_matrix"]), names, out / "confusion.png")
        plot_calibration(y, pooled_pred, out / "calibration.png")
        plots += ["roc.png", "confusion.png", "calibration.png"]
    if cam is not None:
        plots += write_cam_examples(*cam, out=out, names=class_names(report["task"]))
    report["plots"] = plots
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / "report.md").write_text(markdown(report, plots))
    return plots


def write_cam_examples(model: Any, prepared: Any, idx: np.ndarray, *, out: Path, names: list[str]) -> list[str]:
    import torch

    from training.models.cam import grad_cam, save_overlay

    device = next(model.parameters()).device
    x = prepared.x[torch.as_tensor(idx)].to(device)
    maps = grad_cam(model, x).cpu().numpy()
    with torch.no_grad():
        pred = model.eval()(x).argmax(dim=1).cpu().numpy()
    norm = prepared.normalisation
    files = []
    for n, i in enumerate(idx):
        img = x[n].cpu().numpy()
        if norm is not None:
            img = img * np.asarray(norm["std"])[:, None, None] + np.asarray(norm["mean"])[:, None, None]
        img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        name = f"cam_{n + 1}.png"
        title = f"true {names[int(prepared.y[i])]}, predicted {names[int(pred[n])]}"
        save_overlay(np.clip(img, 0, 1), maps[n], out / name, title=title)
        files.append(name)
    return files
