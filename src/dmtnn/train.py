"""The one training loop: every model and every loss-weighting strategy trains through it.

:func:`fit` trains a model on named tasks (a segmentation map, scalar
regressions, or both) and returns its history; :func:`predict` runs a trained
model on grayscale images and returns predictions in physical units.

An epoch of :func:`fit` is :func:`train_epoch` (shuffle, augment, one
optimizer step per batch) then :func:`evaluate` (the validation split, no
gradients); both score each batch with the same helper, so the training and
validation losses and KPIs are computed alike. :func:`compute_scales` and
:func:`to_device` prepare a split for them (``bench/train.py`` times
:func:`train_epoch` itself).

What the loop does (section 3.4 of the paper and the project's rules)

- Adam with a learning rate that starts large and is lowered later: a step
  schedule (``lr_step``, ``lr_gamma``) or a cosine one (``schedule``), after
  an optional linear warm-up of ``warmup`` epochs, set batch by batch.
- Inputs are grayscale slices (uint8), standardised with the training split's
  mean and standard deviation; regression targets marked ``normalize`` are
  standardised the same way. The statistics go into every checkpoint and
  :func:`predict` undoes them.
- Augmentation (:mod:`dmtnn.augmentation`): with ``augment``, every training
  batch is turned by a random multiple of 90 degrees and flipped at random.
  These symmetries of the square leave the labels unchanged (porosity, the 2D
  bulk modulus and the isotropic shear modulus; a mask turns with its image),
  so each image counts eight times. With ``intensity``, each training image's
  gray levels are rendered anew (blur, noise, gamma, gain and offset, bit
  depth), as another scanner would show the same rock.
- Precision (``precision``): bf16 autocast around the forward pass and
  channels_last weights where the device multiplies bf16 natively (CUDA,
  CPUs with AVX-512 BF16 or AMX; :func:`dmtnn.settings.resolve_precision`),
  float32 elsewhere or when asked; losses and KPIs in float32 either way. On
  CUDA the data stay on the GPU when they fit.
- A frozen segmenter inside the model (DMTNN's: an attribute
  ``frozen_segmenter``, and ``forward(x, seg_logits=...)``) runs once per
  image and symmetry of the square, not once per epoch: its logits are cached
  with the split when first computed (:class:`_FrozenLogits`).
- Same seed, same numbers: the model is initialised by the caller under
  ``seed``; every epoch reseeds the shuffling (and any dropout) from ``seed``
  and the epoch number, so a resumed run repeats an uninterrupted one.
- Per epoch, a tqdm bar over batches; the history (losses, KPIs, task
  weights, learning rate, time) goes to ``history.csv``; checkpoints
  ``last.pt`` (every epoch) and ``best.pt`` (the epoch kept: ``select``) are
  written atomically.
- Which epoch a run keeps (``select``): ``"val_loss"``, the lowest validation
  loss on standardised targets, the task losses summed without the
  strategy's weights (history column ``"val selection loss"``; a regression
  target trained unstandardised counts divided by its training variance), so
  that runs of every weighting strategy are chosen alike; or ``"last"``.
- Collapse: a regression task whose training R2 stays below
  :data:`COLLAPSE_R2` from epoch :data:`COLLAPSE_EPOCH` on predicts about a
  constant; each such epoch logs a warning and the run's
  :attr:`FitResult.collapsed` names the tasks still collapsed at its end
  (:func:`collapsed_tasks`).
- ``resume``: a killed run continues from ``last.pt``; a finished run is
  returned from disk. A checkpoint made under another configuration, model,
  task list, weighting or training data is refused with the differences named,
  or, with ``on_mismatch="restart"``, logged and trained afresh
  (:mod:`dmtnn.checkpoints`).
- A NaN or infinite loss stops training at once, naming the epoch and batch.

KPIs (the paper's): pixel accuracy for segmentation, R2 for regressions. The
training-set KPIs that weighting strategies learn from are measured on the
predictions made during the epoch's training pass, which costs nothing extra.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from dmtnn import checkpoints
from dmtnn.artifacts import atomic_write
from dmtnn.augmentation import Intensity, apply_symmetry, draw_intensity, draw_symmetry
from dmtnn.config import TrainConfig
from dmtnn.losses import regression_loss, segmentation_loss
from dmtnn.metrics import r2_score
from dmtnn.samples import Samples, SplitTensors, Task, compute_scales, to_device
from dmtnn.settings import resolve_device, resolve_precision, show_progress
from dmtnn.weighting import FixedWeights, Weighting

__all__ = [
    "COLLAPSE_R2",
    "COLLAPSE_EPOCH",
    "EpochScores",
    "FitResult",
    "collapsed_tasks",
    "seed_everything",
    "fit",
    "train_epoch",
    "evaluate",
    "predict",
]

log = logging.getLogger(__name__)

#: Training R2 below which a regression task counts as collapsed (a constant predictor
#: scores 0 or less) ...
COLLAPSE_R2 = 0.05
#: ... from this epoch on (the first epochs of a healthy run may score lower).
COLLAPSE_EPOCH = 3


@dataclass(frozen=True)
class FitResult:
    """A trained model and its record."""

    model: nn.Module  # weights of the epoch kept (TrainConfig.select)
    history: pd.DataFrame  # one row per epoch
    best_epoch: int
    scales: dict[str, tuple[float, float]]  # mean, std of the input and normalised targets
    folder: Path
    seconds: float  # training time summed over every call that trained this run
    collapsed: tuple[str, ...] = ()  # regression tasks stuck near a constant (collapsed_tasks)


@dataclass(frozen=True)
class EpochScores:
    """What one pass over a split measured."""

    loss: dict[str, float]  # mean task losses
    total: float  # mean weighted total loss
    kpi: dict[str, float]  # pixel accuracy (segmentation) or R2 (regression) per task


# -- seeds ------------------------------------------------------------------------


def seed_everything(seed: int, *stream: int) -> torch.Generator:
    """Seed torch's global generators from ``(seed, *stream)``; return a CPU generator too."""
    s = int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


# -- the loop ----------------------------------------------------------------------


def fit(
    model: nn.Module,
    tasks: Sequence[Task],
    train_set: Samples,
    val_set: Samples,
    tc: TrainConfig,
    folder: str | Path,
    *,
    device: str = "auto",
    weighting: Weighting | None = None,
    resume: bool = True,
    on_mismatch: str = "raise",
    progress: bool | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``tasks``; write the history and checkpoints to ``folder``.

    Parameters
    ----------
    model : nn.Module
        Returns a tensor (one task) or a dict of tensors keyed by task name:
        logits (B, 1, H, W) for a segmentation, (B,) for a regression.
        Parameters with ``requires_grad=False`` stay frozen.
    tasks : sequence of Task
    train_set, val_set : Samples
        Training and validation splits.
    tc : TrainConfig
        The optimisation: epochs, batch size, learning rate and its schedule, seed
        (``Config.segmenter`` or ``Config.multitask``).
    folder : path
        The run's folder (checkpoints, ``history.csv``).
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:1"``...
    weighting : Weighting, optional
        How task losses combine; default equal weights.
    resume : bool
        Continue from ``folder/last.pt`` if it exists (and return at once if
        that run is complete); ``False`` starts afresh, overwriting it.
    on_mismatch : {"raise", "restart"}
        What to do with a ``last.pt`` of another setup: raise
        :class:`dmtnn.checkpoints.CheckpointMismatch`, or log it and start
        afresh (:func:`dmtnn.checkpoints.resume_state`).
    progress : bool, optional
        Progress bar per epoch; default from :mod:`dmtnn.settings`.
    callback : callable, optional
        Called with each epoch's history row after its checkpoint is written.

    Returns
    -------
    FitResult
        With the weights of the epoch ``tc.select`` keeps loaded into ``model``.
    """
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("no tasks to train")
    train_set.check(tasks, "train")
    val_set.check(tasks, "val")
    if len(train_set) < 1 or len(val_set) < 1:
        raise ValueError(f"empty split: {len(train_set)} training, {len(val_set)} validation "
                         f"images")
    weighting = weighting or FixedWeights({t.name: 1.0 for t in tasks})
    if set(weighting.tasks) != {t.name for t in tasks}:
        raise ValueError(f"weighting tasks {weighting.tasks} differ from the model's "
                         f"{[t.name for t in tasks]}")
    folder = Path(folder)
    device = resolve_device(device)
    scales = compute_scales(train_set, tasks)
    unit = _standard_units(train_set, tasks, scales)
    ident = checkpoints.identity(model, tasks, weighting, tc, train_set, val_set)

    dtype = resolve_precision(tc.precision, device)
    model.to(device)
    weighting.to(device)
    if dtype is not None:  # bf16 convolutions run fastest on channels_last maps
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    params += [p for p in weighting.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    optimizer = make_optimizer(params, tc.lr, device)
    scheduler = _scheduler(optimizer, tc, -(-len(train_set) // tc.batch_size))

    start, history, best, seconds = 0, [], {"epoch": -1, "loss": math.inf}, 0.0
    last_path = folder / "last.pt"
    state = (checkpoints.resume_state(last_path, ident, on_mismatch=on_mismatch)
             if resume else None)
    if state is not None:
        model.load_state_dict(state["model"])
        weighting.load_state_dict(state["weighting"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history, best = state["epoch"], state["history"], state["best"]
        seconds = state["seconds"]
        if start < tc.epochs:
            log.info("%s: resuming at epoch %d of %d", folder.name, start + 1, tc.epochs)

    data_train = to_device(train_set, tasks, scales, device)
    data_val = to_device(val_set, tasks, scales, device)
    for epoch in range(start, tc.epochs):
        t0 = time.perf_counter()
        gen = seed_everything(tc.seed, 1, epoch)
        lr = optimizer.param_groups[0]["lr"]
        weights = weighting.weights()
        tr = train_epoch(model, tasks, data_train, weighting, optimizer, tc.batch_size,
                         generator=gen, augment=tc.augment, intensity=tc.intensity,
                         epoch=epoch + 1,
                         precision=tc.precision, scheduler=scheduler,
                         progress=show_progress(progress),
                         label=f"{folder.name} {epoch + 1}/{tc.epochs}")
        weighting.end_epoch(tr.kpi, tr.loss)
        va = evaluate(model, tasks, data_val, weighting, tc.batch_size,
                      precision=tc.precision)
        seconds += time.perf_counter() - t0
        score = float(np.mean([va.kpi[t.name] for t in tasks]))
        select = float(sum(va.loss[t.name] * s for t, s in zip(tasks, unit, strict=True)))
        row = {"epoch": epoch + 1, "lr": lr, "seconds": time.perf_counter() - t0,
               "train loss": tr.total, "val loss": va.total, "val score": score,
               "val selection loss": select}
        for t in tasks:
            row[f"train {t.name} loss"] = tr.loss[t.name]
            row[f"val {t.name} loss"] = va.loss[t.name]
            row[f"train {t.name} {t.kpi}"] = tr.kpi[t.name]
            row[f"val {t.name} {t.kpi}"] = va.kpi[t.name]
            row[f"weight {t.name}"] = weights[t.name]
        history.append(row)
        if not np.isfinite(score):
            log.warning("%s epoch %d: validation score is %s (a split too small, or a "
                        "constant target?)", folder.name, epoch + 1, score)
        _warn_collapse(folder.name, history)
        if tc.select == "last" or best["epoch"] < 0 or select < best["loss"]:
            best = {"epoch": epoch + 1, "loss": select}
            checkpoints.save(folder / "best.pt", {
                "identity": ident, "model": checkpoints.cpu_state(model), "scales": scales,
                "epoch": epoch + 1})
        checkpoints.save(last_path, {
            "format": checkpoints.CHECKPOINT_FORMAT, "identity": ident, "epoch": epoch + 1,
            "model": checkpoints.cpu_state(model), "weighting": weighting.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "history": history, "best": best, "scales": scales, "seconds": seconds,
        })
        frame = pd.DataFrame(history)
        atomic_write(folder / "history.csv", lambda p, f=frame: f.to_csv(p, index=False))
        log.info("%s epoch %d/%d: train loss %.4g, val loss %.4g, val score %.4f (%.1f s)",
                 folder.name, epoch + 1, tc.epochs, tr.total, va.total, score,
                 row["seconds"])
        if callback is not None:
            callback(row)

    checkpoints.load_checkpoint(folder / "best.pt", model, expect=ident)
    model.eval()
    frame = pd.DataFrame(history)
    return FitResult(model=model, history=frame, best_epoch=best["epoch"], scales=scales,
                     folder=folder, seconds=seconds, collapsed=collapsed_tasks(frame))


def collapsed_tasks(history: pd.DataFrame, *, threshold: float = COLLAPSE_R2,
                    after: int = COLLAPSE_EPOCH) -> tuple[str, ...]:
    """Regression tasks that predict about a constant at the end of a run.

    Parameters
    ----------
    history : DataFrame
        A run's history (:attr:`FitResult.history`, ``history.csv``): columns
        ``"epoch"`` and ``"train <task> R2"``.
    threshold : float
        Training R2 below which a task counts as collapsed.
    after : int
        Epochs a run must have trained before any task counts as collapsed.

    Returns
    -------
    tuple of str
        The tasks whose training R2 in the last epoch is below ``threshold``,
        in the history's column order; empty before epoch ``after``.
    """
    if history.empty or int(history["epoch"].iloc[-1]) < after:
        return ()
    last = history.iloc[-1]
    return tuple(c[len("train "):-len(" R2")] for c in history.columns
                 if c.startswith("train ") and c.endswith(" R2") and last[c] < threshold)


def _warn_collapse(name: str, history: list[dict]) -> None:
    row = history[-1]
    for task in collapsed_tasks(pd.DataFrame([row])):
        log.warning("%s epoch %d: training R2 of %s is %.3f: the network predicts about a "
                    "constant (collapsed)", name, row["epoch"], task, row[f"train {task} R2"])


def _standard_units(train_set: Samples, tasks: Sequence[Task],
                    scales: Mapping[str, tuple[float, float]]) -> list[float]:
    """Per task, the factor that puts its loss on standardised targets.

    1 for a segmentation and a standardised regression; 1 / variance of the
    training target for a regression trained in its own units (MSE scales
    with the variance).
    """
    out = []
    for t in tasks:
        var = 0.0
        if t.kind == "regression" and t.name not in scales:
            var = float(np.var(np.asarray(train_set.targets[t.name], dtype=np.float64)))
        out.append(1.0 / var if var > 0 else 1.0)
    return out


def train_epoch(
    model: nn.Module,
    tasks: Sequence[Task],
    data: SplitTensors,
    weighting: Weighting,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    augment: bool = False,
    intensity: bool = False,
    epoch: int = 0,
    progress: bool = False,
    label: str = "",
    precision: str = "auto",
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> EpochScores:
    """One training epoch: an optimizer step per batch, in train mode.

    ``scheduler``, when given, steps after every optimizer step (the
    learning rate of :func:`fit` is set batch by batch).

    The images are visited in the order of ``torch.randperm(generator)`` (in
    order without a generator); with ``augment``, each batch is turned and
    flipped by a random symmetry of the square drawn from ``generator``; with
    ``intensity``, its images' gray levels are rendered anew
    (:func:`dmtnn.augmentation.draw_intensity`).
    ``epoch`` names the epoch in the error of a NaN loss; ``progress`` and
    ``label`` draw a tqdm bar; ``precision`` is ``TrainConfig.precision``
    (the caller puts the model in channels_last where it is bf16, as
    :func:`fit` does). The KPIs are those of the predictions made on the way.
    """
    dtype = resolve_precision(precision, data.device)
    model.train()
    n = len(data)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    batches = _batches(order, batch_size)
    tally = _Tally(tasks)
    for b, idx in enumerate(tqdm(batches, desc=label, leave=False, disable=not progress)):
        turn = draw_symmetry(generator) if augment else (0, False)
        render = draw_intensity(generator, len(idx)) if intensity else None
        loss = _batch_loss(model, tasks, data, idx, weighting, tally, turn, dtype,
                           where=f"at epoch {epoch}, batch {b + 1} of {len(batches)}",
                           intensity=render)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return tally.scores(data, order)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tasks: Sequence[Task],
    data: SplitTensors,
    weighting: Weighting,
    batch_size: int,
    *,
    precision: str = "auto",
) -> EpochScores:
    """Losses and KPIs of ``model`` on a split, in eval mode, in order, without gradients.

    ``precision`` is ``TrainConfig.precision``, as in :func:`train_epoch`.
    """
    dtype = resolve_precision(precision, data.device)
    model.eval()
    order = torch.arange(len(data))
    batches = _batches(order, batch_size)
    tally = _Tally(tasks)
    for b, idx in enumerate(batches):
        _batch_loss(model, tasks, data, idx, weighting, tally, (0, False), dtype,
                    where=f"in evaluation, batch {b + 1} of {len(batches)}")
    return tally.scores(data, order)


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _batch_loss(model, tasks, data: SplitTensors, idx, weighting, tally: _Tally, turn,
                dtype: torch.dtype | None, *, where: str,
                intensity: Intensity | None = None) -> torch.Tensor:
    """The weighted total loss of one batch (turned by ``turn``, its gray levels rendered by
    ``intensity``), its parts added to ``tally``.

    The one per-batch step of :func:`train_epoch` and :func:`evaluate`; the
    forward pass autocasts to ``dtype`` (None: float32). A non-finite total
    raises :class:`FloatingPointError` naming ``where``.
    """
    idx = idx.to(data.x.device)
    x = apply_symmetry(_inputs(data, idx, channels_last=dtype is not None, intensity=intensity),
                       turn)
    with _autocast(data.device, dtype):
        out = _forward(model, data, idx, x, turn, dtype, cached=intensity is None)
    if not isinstance(out, Mapping):
        if len(tasks) != 1:
            raise TypeError(f"the model returned one tensor for {len(tasks)} tasks; "
                            f"return a dict keyed by task name")
        out = {tasks[0].name: out}
    losses = {}
    for t in tasks:
        y = data.targets[t.name][idx].to(data.device, non_blocking=True)
        if t.kind == "segmentation":
            y = apply_symmetry(y.unsqueeze(1), turn)
            losses[t.name] = segmentation_loss(out[t.name], y)
            tally.segmentation(t.name, out[t.name], y)
        else:
            p = out[t.name].reshape(-1)
            losses[t.name] = regression_loss(p, y)
            tally.regression(t.name, p)
    loss = weighting.combine(losses)
    # one device-to-host copy per batch: the bookkeeping and the NaN check
    values = torch.stack([loss.detach().float(),
                          *(losses[n].detach().float() for n in tally.names)]).tolist()
    if not math.isfinite(values[0]):
        parts = ", ".join(f"{n} {v:.4g}" for n, v in zip(tally.names, values[1:], strict=True))
        raise FloatingPointError(f"loss is {values[0]} {where} (task losses: {parts})")
    tally.losses(values, len(idx))
    return loss


class _Tally:
    """Running sums of one pass: losses per image, pixel agreement, regression predictions."""

    def __init__(self, tasks: Sequence[Task]):
        self.tasks = tasks
        self.names = [t.name for t in tasks]
        self.sums = dict.fromkeys(self.names, 0.0)
        self.total = 0.0
        self.agree = {t.name: 0 for t in tasks if t.kind == "segmentation"}  # device tensors
        self.preds = {t.name: [] for t in tasks if t.kind == "regression"}  # on the device

    def segmentation(self, name: str, logits: torch.Tensor, mask: torch.Tensor) -> None:
        self.agree[name] = self.agree[name] + ((logits.detach() > 0) == (mask > 0)).sum()

    def regression(self, name: str, pred: torch.Tensor) -> None:
        self.preds[name].append(pred.detach().float())

    def losses(self, values: list[float], k: int) -> None:
        """Add a batch of ``k`` images: ``values`` = its total loss, then each task's."""
        self.total += values[0] * k
        for name, v in zip(self.names, values[1:], strict=True):
            self.sums[name] += v * k

    def scores(self, data: SplitTensors, order: torch.Tensor) -> EpochScores:
        """Mean losses and the KPIs; ``order`` is the order the images were visited in."""
        n = len(data)
        kpi = {}
        order_np = order.cpu().numpy()
        for t in self.tasks:
            target = data.targets[t.name]
            if t.kind == "segmentation":
                kpi[t.name] = int(self.agree[t.name]) / target[0].numel() / n
            else:
                kpi[t.name] = r2_score(torch.cat(self.preds[t.name]).cpu().numpy(),
                                       target.cpu().numpy()[order_np])
        return EpochScores(loss={k: v / n for k, v in self.sums.items()},
                           total=self.total / n, kpi=kpi)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device``; nothing (float32) for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _forward(model, data: SplitTensors, idx, x, turn, dtype, *, cached: bool = True) -> Any:
    """``model(x)``, with a frozen segmenter's logits taken from the split's cache.

    ``cached=False`` (images rendered anew each epoch) runs the segmenter on ``x``.
    """
    seg = getattr(model, "frozen_segmenter", None)
    if not cached or not isinstance(seg, nn.Module) or seg.training:
        return model(x)
    cache = data.cache.get("frozen logits")
    if cache is None or not cache.serves(seg, dtype):
        cache = data.cache["frozen logits"] = _FrozenLogits(seg, dtype, len(data))
    return model(x, seg_logits=cache.logits(idx, x, turn))


class _FrozenLogits:
    """A frozen segmenter's logits of a split's images, per symmetry, made when first needed.

    The segmenter (in eval mode, without gradient) runs on those images of a
    batch whose logits under the batch's symmetry are not cached yet; the
    others come from the cache, so it runs about min(8, epochs) times per
    image instead of once per epoch. The logits of an image depend on that
    image alone: bit for bit in bf16 on the CPU, to float32 rounding (the
    kernels' sums may be ordered by the batch's size) in float32. They are
    stored in the segmenter's output dtype (2 bytes a pixel in bf16: 8
    symmetries of 2280 training images of 256 x 256, 2.4 GB); where 8 symmetries of the split would take more than a quarter of
    the free memory, nothing is cached and the segmenter runs on every batch.
    The cache serves one segmenter, its present weights and one precision
    (:meth:`serves`).
    """

    symmetries = 8

    def __init__(self, seg: nn.Module, dtype: torch.dtype | None, n: int):
        self.seg, self.dtype, self.n = seg, dtype, n
        self.weights = _weights_stamp(seg)
        self.done = torch.zeros(self.symmetries, n, dtype=torch.bool)
        self.slots: dict[int, torch.Tensor] = {}
        self.fits: bool | None = None  # decided at the first batch

    def serves(self, seg: nn.Module, dtype: torch.dtype | None) -> bool:
        """Whether the cache holds logits of ``seg`` with its present weights, in ``dtype``."""
        return seg is self.seg and dtype == self.dtype and _weights_stamp(seg) == self.weights

    def logits(self, idx: torch.Tensor, x: torch.Tensor, turn: tuple[int, bool]) -> torch.Tensor:
        """The segmenter's logits of the images ``idx`` of the split, ``x`` turned by ``turn``."""
        if self.fits is False:
            with torch.no_grad():
                return self.seg(x)
        k = 2 * turn[0] + int(turn[1])
        where = idx.cpu()
        todo = ~self.done[k, where]
        if todo.any():
            with torch.no_grad():
                new = self.seg(x[todo.to(x.device)])  # (b, C, H, W)
            if self.fits is None:
                self.fits = _fits(self.symmetries * self.n * new[0].numel()
                                  * new.element_size(), x.device)
                if not self.fits:
                    return self.logits(idx, x, turn)
            if k not in self.slots:
                self.slots[k] = new.new_empty((self.n, *new.shape[1:]))
            self.slots[k][where[todo].to(x.device)] = new
            self.done[k, where[todo]] = True
        return self.slots[k][where.to(x.device)]


def _weights_stamp(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """Where each parameter and buffer lives and how often it was changed in place."""
    return tuple((t.data_ptr(), t._version) for t in (*module.parameters(), *module.buffers()))


def _fits(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` take at most a quarter of the free memory of ``device``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume it fits
            return True
    return nbytes <= free / 4


def _inputs(data: SplitTensors, idx: torch.Tensor, *, channels_last: bool,
            intensity: Intensity | None = None) -> torch.Tensor:
    """Standardised float images (B, 1, H, W) of a batch, on the model's device.

    ``intensity`` renders the gray levels (0..1) anew before the standardisation.
    """
    mean, std = data.input_scale
    x = data.x[idx].to(data.device, non_blocking=True)
    x = (x.float() / 255.0).unsqueeze(1)  # (B, 1, H, W)
    if intensity is not None:
        x = intensity(x)
    x = (x - mean) / std
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def make_optimizer(params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam for ``params`` on ``device``: the fused kernel on the CPU and CUDA.

    The fused step updates every tensor in one pass instead of a dozen
    element-wise ones; it matters for the many small tensors of the CPU
    profiles' narrow networks. Elsewhere (MPS, ...) the default implementation.
    """
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def _scheduler(optimizer, tc: TrainConfig, steps_per_epoch: int):
    """The learning rate of every batch: a linear warm-up, then the epoch's schedule.

    Stepped once per batch. Over the first ``tc.warmup`` epochs the rate grows
    linearly, batch by batch, to ``tc.lr``; after them it is constant within an
    epoch: ``lr_gamma ** (epoch // lr_step)`` (``"step"``) or half a cosine
    from ``tc.lr`` down towards 0 over the epochs left (``"cosine"``). Without
    warm-up these are torch's ``StepLR`` and ``CosineAnnealingLR`` stepped
    once per epoch.
    """
    if tc.schedule not in ("step", "cosine"):
        raise ValueError(f"schedule (segmenter.schedule or multitask.schedule) must be 'step' "
                         f"or 'cosine', got {tc.schedule!r}")
    warm = tc.warmup * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        epoch = step // steps_per_epoch
        if tc.schedule == "step":
            return tc.lr_gamma ** (epoch // tc.lr_step)
        return 0.5 * (1 + math.cos(math.pi * (epoch - tc.warmup) / (tc.epochs - tc.warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# -- inference ---------------------------------------------------------------------


def predict(
    model: nn.Module,
    gray: np.ndarray,
    tasks: Sequence[Task],
    scales: Mapping[str, tuple[float, float]],
    *,
    batch_size: int = 32,
    device: str = "auto",
    precision: str = "auto",
    lanes: int = 1,
) -> dict[str, np.ndarray]:
    """Predictions of a trained model for grayscale slices (N, H, W) uint8.

    Returns per task: a 0/1 mask stack (N, H, W) uint8 (1 = grain) for a
    segmentation, values (N,) in the target's units for a regression.
    ``precision`` is the training's (``TrainConfig.precision``): bf16
    autocast and channels_last where it resolves to bf16. ``lanes`` batches
    are computed at once on a CPU, each in a thread of its own, so that torch
    may stay on one thread and every batch gives the bits it gives alone
    (:func:`dmtnn.parallel.network_threads` says how many).
    """
    gray = np.asarray(gray)
    if gray.ndim == 2:
        gray = gray[None]
    if gray.dtype != np.uint8 or gray.ndim != 3:
        raise ValueError(f"gray must be uint8 slices (N, H, W), got {gray.dtype} {gray.shape}")
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    model.to(dev).eval()
    if dtype is not None:
        model.to(memory_format=torch.channels_last)
    data = SplitTensors(torch.from_numpy(np.ascontiguousarray(gray)), {}, scales["input"], dev)

    def batch(start: int) -> dict[str, np.ndarray]:
        idx = torch.arange(start, min(start + batch_size, len(gray)))
        with torch.no_grad(), _autocast(dev, dtype):  # both are per thread
            y = model(_inputs(data, idx, channels_last=dtype is not None))
        if not isinstance(y, Mapping):
            y = {tasks[0].name: y}
        out = {}
        for t in tasks:
            v = y[t.name].float()
            if t.kind == "segmentation":
                out[t.name] = (v[:, 0] > 0).to(torch.uint8).cpu().numpy()
            else:
                mean, std = scales.get(t.name, (0.0, 1.0))
                out[t.name] = v.reshape(-1).cpu().numpy() * std + mean
        return out

    starts = range(0, len(gray), batch_size)
    if lanes > 1 and dev.type == "cpu" and len(starts) > 1:
        with ThreadPoolExecutor(min(lanes, len(starts))) as pool:
            parts = list(pool.map(batch, starts))
    else:
        parts = [batch(i) for i in starts]
    return {t.name: np.concatenate([p[t.name] for p in parts]) for t in tasks}
