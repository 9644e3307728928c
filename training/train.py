"""Cross-validated training of one task: subject-grouped stratified k-fold, early stopping on a grouped inner
validation split, pooled and per-fold metrics, reports and a final checkpoint trained on all subjects."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from contract.labels import HEAD_SHIFT_TARGETS, TASK_KINDS, TaskName, check_task, class_names
from training.checkpoint import save_checkpoint
from training.cv import grouped_split, grouped_stratified_folds
from training.metrics import classification_metrics, regression_metrics
from training.models.inputs import Prepared, label_dict, prepare
from training.models.registry import IMAGE_ARCHS, build_model, check_arch, default_arch
from training.models.sconet import TEST_FRAME_LIMIT, TRAIN_FRAMES, ScoNet, batch_all_triplet_loss, sample_frames
from training.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_LR = {"keypoint_mlp": 3e-3, "flexion_net": 3e-3, "sconet": 1e-3, "sconet_mt": 1e-3}


class TrainConfig(BaseModel):
    """One cross-validated training run."""

    model_config = ConfigDict(extra="forbid")

    task: TaskName = Field(description="task to train (see contract.labels.TASKS)")
    data: str = Field(description="'synthetic[:N]' or a path readable by training.data.load_task_data")
    arch: str | None = Field(default=None, description="architecture (default: the task's first)")
    folds: int = Field(default=4, ge=2, description="number of subject-grouped stratified folds")
    epochs: int = Field(default=20, ge=1, description="maximum epochs per fold")
    batch_size: int = Field(default=32, ge=1, description="training batch size")
    lr: float | None = Field(default=None, gt=0, description="AdamW learning rate (default per architecture)")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay")
    patience: int = Field(default=8, ge=1, description="epochs without validation improvement before stopping")
    val_fraction: float = Field(default=0.2, gt=0, lt=0.5, description="share of training subjects for early stopping")
    seed: int = Field(default=0, description="seed of data generation, folds, initialisation and batching")
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="torch device")
    width: Literal["small", "full"] = Field(default="full", description="full = published widths; small for CPU runs")
    use_prom: bool = Field(default=False, description="flexion: append patient-reported outcome measures")
    final_fit: bool = Field(default=True, description="train a final model on all subjects and save it")
    cam_examples: int = Field(default=4, ge=0, description="Grad-CAM overlays written for image tasks")
    bootstrap_rounds: int = Field(default=1000, ge=50, description="bootstrap resamples for the 95 % CIs")
    progress: bool = Field(default=True, description="progress bar on stderr")
    train_frames: int = Field(default=TRAIN_FRAMES, ge=1, description="gait: frames sampled per walk in training")
    width_factor: float | None = Field(
        default=None, gt=0, le=1, description="explicit channel-width factor, overriding `width` (tests, tuning)"
    )
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads (default: torch's choice)")


WIDTH_FACTOR = {"full": 1.0, "small": 0.25}


def set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


class StepHooks:
    """What a data-parallel fit adds to each training step (training.distributed); here, nothing."""

    def batches(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """The batches (or this process's share of each) to train on."""
        return batches

    def after_backward(self, model: nn.Module) -> None:
        """Called once the gradients of a batch are complete, before the optimizer step."""

    def after_step(self, model: nn.Module) -> None:
        """Called after the optimizer step."""

    def agree(self, value: float) -> float:
        """A value every process of one fit must act on identically (the validation loss)."""
        return value


class Trainer:
    """Fits one model on given indices of prepared data and predicts others."""

    def __init__(
        self,
        cfg: TrainConfig,
        arch: str,
        prepared: Prepared,
        model_kwargs: dict[str, Any],
        hooks: StepHooks | None = None,
    ) -> None:
        self.cfg = cfg
        self.hooks = hooks or StepHooks()
        self.arch = arch
        self.data = prepared
        self.kind = TASK_KINDS[cfg.task]
        self.model_kwargs = model_kwargs
        self.device = torch.device(cfg.device)
        self.target_mean = np.zeros(1, dtype=np.float32)
        self.target_std = np.ones(1, dtype=np.float32)

    # ---- batches -------------------------------------------------------------------------------------------
    def _batch_x(self, idx: np.ndarray, train: bool, gen: torch.Generator) -> Tensor:
        x = self.data.x
        if isinstance(x, list):
            if train:
                return torch.stack([sample_frames(x[i], self.cfg.train_frames, gen) for i in idx]).to(self.device)
            return x[int(idx[0])][:TEST_FRAME_LIMIT][None].to(self.device)
        xb = x[torch.as_tensor(idx)]
        if train and self.data.input_spec.get("layout") == "NCHW":
            # the head shift is the head's place in the frame: a translation would change the target it keeps
            xb = _augment_images(xb, gen, max_shift=0.0 if self.cfg.task == "head-shift" else 0.06)
        return xb.to(self.device)

    def _forward(self, model: nn.Module, idx: np.ndarray, train: bool, gen: torch.Generator) -> tuple[Tensor, Any]:
        xb = self._batch_x(idx, train, gen)
        if isinstance(model, ScoNet):
            embeddings, part_logits = model.embed(xb)
            return part_logits.mean(dim=-1), (embeddings, part_logits)
        if self.data.prom is not None:
            return model(xb, self.data.prom[torch.as_tensor(idx)].to(self.device)), None
        return model(xb), None

    def _loss(self, out: Tensor, aux: Any, idx: np.ndarray) -> Tensor:
        if self.kind == "regression":
            y = (self.data.y[idx] - self.target_mean) / self.target_std
            return F.smooth_l1_loss(out, torch.as_tensor(y, device=self.device))
        y = torch.as_tensor(self.data.y[idx], device=self.device)
        if aux is None:
            return F.cross_entropy(out, y)
        embeddings, part_logits = aux
        loss = F.cross_entropy(part_logits, y[:, None].expand(-1, part_logits.shape[-1]))
        if self.arch == "sconet_mt":
            ids = np.unique(np.asarray(self.data.subjects)[idx], return_inverse=True)[1]
            loss = loss + batch_all_triplet_loss(embeddings, torch.as_tensor(ids, device=self.device), 0.2)
        return loss

    def _batches(self, idx: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        bs = self.cfg.batch_size
        if self.arch == "sconet_mt":
            # keep a subject's walks together so the triplet loss sees positives (OpenGait's TripletSampler)
            subjects = np.asarray(self.data.subjects)[idx]
            order = rng.permutation(np.unique(subjects))
            idx = np.concatenate([rng.permutation(idx[subjects == s]) for s in order])
            starts = range(0, len(idx), bs)
        else:
            idx = rng.permutation(idx)
            starts = range(0, len(idx), bs)
        batches = [idx[s : s + bs] for s in starts]
        return [b for b in batches if len(b) > 1]  # BatchNorm needs two samples

    # ---- fit / predict -------------------------------------------------------------------------------------
    def predict(self, model: nn.Module, idx: np.ndarray) -> np.ndarray:
        model.eval()
        gen = torch.Generator().manual_seed(0)
        outs = []
        step = 1 if isinstance(self.data.x, list) else max(1, self.cfg.batch_size * 2)
        with torch.no_grad():
            for s in range(0, len(idx), step):
                out, _ = self._forward(model, idx[s : s + step], False, gen)
                outs.append(out.float().cpu())
        out = torch.cat(outs) if outs else torch.empty(0)
        if self.kind == "regression":
            return out.numpy() * self.target_std + self.target_mean
        return torch.softmax(out, dim=1).numpy()

    def _val_loss(self, model: nn.Module, idx: np.ndarray) -> float:
        pred = self.predict(model, idx)
        if self.kind == "regression":
            return float(np.mean(np.abs(pred - self.data.y[idx]) / self.target_std))
        p = np.clip(pred[np.arange(len(idx)), self.data.y[idx]], 1e-7, 1.0)
        return float(-np.mean(np.log(p)))

    def fit(self, train_idx: np.ndarray, seed: int, progress: Progress | None) -> tuple[nn.Module, dict[str, Any]]:
        cfg = self.cfg
        set_determinism(seed)
        labels = self.data.y[train_idx] if self.kind != "regression" else _bins(self.data.y[train_idx])
        subjects = np.asarray(self.data.subjects)[train_idx]
        inner_train, inner_val = grouped_split(labels, subjects, cfg.val_fraction, seed)
        fit_idx, val_idx = train_idx[inner_train], train_idx[inner_val]
        if self.kind == "regression":
            self.target_mean = self.data.y[fit_idx].mean(axis=0)
            self.target_std = self.data.y[fit_idx].std(axis=0) + 1e-6
        model = build_model(self.arch, **self.model_kwargs).to(self.device)
        lr = cfg.lr or DEFAULT_LR.get(self.arch, 1e-3)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        best, best_state, best_epoch, waited = math.inf, copy.deepcopy(model.state_dict()), 0, 0
        history = []
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            losses = []
            for batch in self.hooks.batches(self._batches(fit_idx, rng)):
                out, aux = self._forward(model, batch, True, gen)
                loss = self._loss(out, aux, batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                self.hooks.after_backward(model)
                opt.step()
                self.hooks.after_step(model)
                losses.append(float(loss.detach()))
            sched.step()
            val = self.hooks.agree(self._val_loss(model, val_idx))
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None, "val_loss": val})
            if progress is not None:
                progress.update(1, f"loss {history[-1]['train_loss'] or 0:.3f} val {val:.3f}")
            if val < best - 1e-4:
                best, best_state, best_epoch, waited = val, copy.deepcopy(model.state_dict()), epoch, 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    if progress is not None:
                        progress.update(cfg.epochs - epoch, "early stop")
                    break
        model.load_state_dict(best_state)
        return model, {"best_epoch": best_epoch, "best_val_loss": best, "epochs_run": len(history), "history": history}


def _augment_images(x: Tensor, gen: torch.Generator, max_shift: float = 0.06) -> Tensor:
    """Small random translations and contrast changes (no flips: left/right carries meaning in these tasks)."""
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    limit = max(1, int(max_shift * min(h, w))) if max_shift > 0 else 0
    shifts = torch.randint(-limit, limit + 1, (n, 2), generator=gen)
    gains = 1.0 + 0.1 * (torch.rand(n, generator=gen) * 2 - 1)
    for i in range(n):
        out[i] = torch.roll(x[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2)) * gains[i]
    return out


def _bins(y: np.ndarray, bins: int = 3) -> np.ndarray:
    """Quantile bins of the first regression target, to stratify folds."""
    v = y[:, 0] if y.ndim == 2 else y
    edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    return np.digitize(v, edges)


def fold_metrics(kind: str, y: np.ndarray, pred: np.ndarray, subjects: list[str], cfg: TrainConfig) -> dict[str, Any]:
    if kind == "regression":
        return regression_metrics(y, pred, HEAD_SHIFT_TARGETS[: y.shape[1]], subjects, seed=cfg.seed)
    return classification_metrics(y, pred, subjects, rounds=cfg.bootstrap_rounds, seed=cfg.seed)


def in_target_units(model: nn.Module, mean: np.ndarray, std: np.ndarray, x: Any) -> nn.Module:
    """A copy of a regressor whose outputs are in the target's units, not standardised.

    Training fits standardised targets ((y - mean) / std); the saved model (and every export of it) must
    output y itself, so the scale and offset are folded into the last linear layer, and checked on real inputs.
    """
    folded = copy.deepcopy(model).eval()
    last = [m for m in folded.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError(f"{type(model).__name__}: no linear output layer to fold the target scaling into")
    layer = last[-1]
    scale = torch.as_tensor(np.asarray(std, np.float32), device=layer.weight.device)
    shift = torch.as_tensor(np.asarray(mean, np.float32), device=layer.weight.device)
    sample = x[:2] if isinstance(x, Tensor) else None
    with torch.no_grad():
        before = model.eval()(sample.to(layer.weight.device)) if sample is not None else None
        layer.weight.mul_(scale[:, None])
        if layer.bias is None:
            raise ValueError(f"{type(model).__name__}: the output layer has no bias to take the target mean")
        layer.bias.mul_(scale).add_(shift)
        if sample is not None and before is not None:
            after = folded(sample.to(layer.weight.device))
            if not torch.allclose(after, before * scale + shift, rtol=1e-4, atol=1e-4):
                raise ValueError(f"{type(model).__name__}: its last linear layer is not its output; cannot fold")
    return folded


@dataclass
class FitJob:
    """One fit of a cross-validation: fold `index` (0-based, `test` held out), or the final fit (`test` None)."""

    index: int
    train: np.ndarray
    test: np.ndarray | None
    seed: int
    keep_model: bool  # the report needs this fit's model (the last fold's for Grad-CAM, the checkpoint's)


@dataclass
class FitOutcome:
    index: int
    info: dict[str, Any]
    pred: np.ndarray | None
    model: nn.Module | None
    target_mean: np.ndarray
    target_std: np.ndarray


def run_fit(trainer: Trainer, job: FitJob, progress: Progress | None) -> FitOutcome:
    model, info = trainer.fit(job.train, job.seed, progress)
    pred = trainer.predict(model, job.test) if job.test is not None else None
    kept = model if job.keep_model else None
    return FitOutcome(job.index, info, pred, kept, trainer.target_mean.copy(), trainer.target_std.copy())


# Runs the fits of a cross-validation and returns every outcome; training.distributed spreads them over processes.
FitRunner = Callable[[Trainer, list[FitJob], Progress], list[FitOutcome]]


def run_serially(trainer: Trainer, jobs: list[FitJob], progress: Progress) -> list[FitOutcome]:
    return [run_fit(trainer, job, progress) for job in jobs]


def run_training(
    cfg: TrainConfig,
    out_dir: str | Path,
    data: Any | None = None,
    *,
    runner: FitRunner | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Run the cross-validation of `cfg` and write report.json, report.md, plots and model.pt under `out_dir`.

    `data` (a TaskData) may be passed in; otherwise `training.data.load_task_data(task, data, seed)` loads it.
    `runner` runs the fits (default: one after the other here); `write=False` returns the report and writes
    nothing (the other processes of a distributed run).
    """
    from training.reports import write_reports

    task = check_task(cfg.task)
    arch = check_arch(cfg.arch or default_arch(task), task)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(out_dir)
    if write:
        out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if data is None:
        from training.data import load_task_data

        data = load_task_data(task, cfg.data, cfg.seed)
    labels_of_data = label_dict(getattr(data, "label_map", None))
    prepared = prepare(data, width=cfg.width, use_prom=cfg.use_prom)
    kwargs = dict(prepared.model_kwargs)
    if arch in IMAGE_ARCHS or arch in ("sconet", "sconet_mt", "head_shift_cnn"):
        kwargs["width"] = cfg.width_factor or WIDTH_FACTOR[cfg.width]
    if arch not in IMAGE_ARCHS and arch != "head_shift_cnn":
        kwargs.pop("in_channels", None)
    if arch in IMAGE_ARCHS and "outputs" in kwargs:
        kwargs["num_classes"] = kwargs.pop("outputs")
    kind = TASK_KINDS[task]
    trainer = Trainer(cfg, arch, prepared, kwargs)
    strat = prepared.y if kind != "regression" else _bins(prepared.y)
    folds = grouped_stratified_folds(strat, prepared.subjects, cfg.folds, cfg.seed)
    total_epochs = cfg.epochs * (len(folds) + (1 if cfg.final_fit else 0))
    progress = Progress(total_epochs, f"{task}/{arch}", enabled=cfg.progress)
    jobs = [FitJob(k, tr, te, cfg.seed + k, keep_model=k == len(folds) - 1) for k, (tr, te) in enumerate(folds)]
    if cfg.final_fit:
        jobs.append(FitJob(len(folds), np.arange(len(prepared)), None, cfg.seed + 1000, keep_model=True))
    outcomes = {o.index: o for o in (runner or run_serially)(trainer, jobs, progress)}
    pooled_pred: np.ndarray | None = None
    fold_reports = []
    for k, (train_idx, test_idx) in enumerate(folds):
        fit_info, pred = outcomes[k].info, outcomes[k].pred
        assert pred is not None
        if pooled_pred is None:
            pooled_pred = np.zeros((len(prepared), pred.shape[1]), dtype=np.float64)
        pooled_pred[test_idx] = pred
        subj = [prepared.subjects[i] for i in test_idx]
        metrics = fold_metrics(kind, prepared.y[test_idx], pred, subj, cfg)
        fold_reports.append(
            {"fold": k + 1, "n_train": len(train_idx), "n_test": len(test_idx),
             "test_subjects": len(set(subj)), **{key: v for key, v in fit_info.items() if key != "history"},
             "history": fit_info["history"], "metrics": metrics}
        )  # fmt: skip
    last_model, last_test = outcomes[len(folds) - 1].model, folds[-1][1]
    assert pooled_pred is not None
    pooled = fold_metrics(kind, prepared.y, pooled_pred, prepared.subjects, cfg)
    report: dict[str, Any] = {
        "task": task,
        "kind": kind,
        "arch": arch,
        "model_kwargs": kwargs,
        "config": cfg.model_dump(),
        "data": {
            "source": str(getattr(data, "source", cfg.data)),
            "samples": len(prepared),
            "subjects": len(set(prepared.subjects)),
            "sha256": prepared.data_sha256,
            "class_counts": _class_counts(task, prepared.y) if kind != "regression" else {},
        },
        "label_map": labels_of_data,
        "input_spec": prepared.input_spec,
        "normalisation": prepared.normalisation,
        "folds": fold_reports,
        "pooled": pooled,
        "fold_mean": _fold_mean(fold_reports, kind),
    }
    final = outcomes[len(folds)] if cfg.final_fit else outcomes[len(folds) - 1]
    if cfg.final_fit:
        report["final_fit"] = {k: v for k, v in final.info.items() if k != "history"}
    report["seconds"] = round(time.monotonic() - started, 1)
    final_model = final.model
    assert final_model is not None and last_model is not None
    if kind == "regression":
        final_model = in_target_units(final_model, final.target_mean, final.target_std, prepared.x)
    if not write:
        return report
    save_checkpoint(
        out / "model.pt", model=final_model, task=task, arch=arch, model_kwargs=kwargs,
        label_map=labels_of_data, input_spec=prepared.input_spec, normalisation=prepared.normalisation,
        data_sha256=prepared.data_sha256, metrics={"pooled": _headline(pooled, kind), "folds": cfg.folds},
    )  # fmt: skip
    report["checkpoint"] = "model.pt"
    cam = None
    if arch in IMAGE_ARCHS and kind != "regression" and cfg.cam_examples:
        cam = (last_model, prepared, last_test[: cfg.cam_examples])
    write_reports(report, out, prepared=prepared, pooled_pred=pooled_pred, cam=cam)
    return report


def _class_counts(task: str, y: np.ndarray) -> dict[str, int]:
    return {name: int((y == i).sum()) for i, name in enumerate(class_names(task))}


def _headline(metrics: dict[str, Any], kind: str) -> dict[str, Any]:
    if kind == "regression":
        return {k: {"pearson_r": v["pearson_r"], "mae": v["mae"]} for k, v in metrics.items() if isinstance(v, dict)}
    return {k: metrics[k] for k in ("auc", "accuracy", "sensitivity", "specificity", "f1")}


def _fold_mean(folds: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    if kind == "regression":
        names = [k for k, v in folds[0]["metrics"].items() if isinstance(v, dict)]
        return {
            n: {m: float(np.nanmean([f["metrics"][n][m] for f in folds])) for m in ("pearson_r", "mae")} for n in names
        }
    keys = ("auc", "accuracy", "sensitivity", "specificity", "f1")
    return {k: float(np.nanmean([f["metrics"][k] for f in folds])) for k in keys}
