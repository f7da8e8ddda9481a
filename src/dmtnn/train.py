"""The one training loop: every model and every loss-weighting strategy trains through it.

:func:`fit` trains a model on named tasks (a segmentation map, scalar
regressions, or both) and returns its history; :func:`predict` runs a trained
model on grayscale images and returns predictions in physical units.

What the loop does (section 3.4 of the paper and the project's rules)

- Adam with a learning rate that starts large and is lowered later: a step
  schedule (``lr_step``, ``lr_gamma``) or a cosine one (``schedule``).
- Inputs are grayscale slices (uint8), standardised with the training split's
  mean and standard deviation; regression targets marked ``normalize`` are
  standardised the same way. The statistics go into every checkpoint and
  :func:`predict` undoes them.
- Augmentation (``augment``): every training batch is turned by a random
  multiple of 90 degrees and flipped at random. These symmetries of the square
  leave the labels unchanged (porosity, the 2D bulk modulus and the isotropic
  shear modulus; a mask turns with its image), so each image counts eight times.
- On CUDA: bf16 autocast, channels_last, and the data kept on the GPU when it
  fits. On the CPU: float32.
- Same seed, same numbers: the model is initialised by the caller under
  ``seed``; every epoch reseeds the shuffling (and any dropout) from ``seed``
  and the epoch number, so a resumed run repeats an uninterrupted one.
- Per epoch, a tqdm bar over batches; the history (losses, KPIs, task
  weights, learning rate, time) goes to ``history.csv``; checkpoints
  ``last.pt`` (every epoch) and ``best.pt`` (best validation score, the mean
  of the validation KPIs) are written atomically.
- ``resume``: a killed run continues from ``last.pt``; a finished run is
  returned from disk. A checkpoint made under another configuration, model,
  task list, weighting or training data is refused with the differences named.
- A NaN or infinite loss stops training at once, naming the epoch and batch.

KPIs (the paper's): pixel accuracy for segmentation, R2 for regressions. The
training-set KPIs that weighting strategies learn from are measured on the
predictions made during the epoch's training pass, which costs nothing extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from dmtnn.artifacts import artifacts_root, atomic_write
from dmtnn.config import Config, TrainConfig
from dmtnn.losses import FixedWeights, Weighting, regression_loss, segmentation_loss
from dmtnn.metrics import r2_score
from dmtnn.settings import show_progress

__all__ = [
    "Task",
    "SEGMENTATION",
    "Samples",
    "FitResult",
    "CheckpointMismatch",
    "resolve_device",
    "seed_everything",
    "fit",
    "predict",
    "load_checkpoint",
    "run_folder",
    "read_history",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Task:
    """One output of a model.

    Parameters
    ----------
    name : str
        Key of the model's output and of the targets (``"mask"``, ``"phi"``...).
    kind : {"segmentation", "regression"}
        Segmentation targets are 0/1 maps (H, W) scored by pixel accuracy and
        trained with binary cross-entropy; regression targets are one number
        per image, scored by R2 and trained with C x MSE.
    normalize : bool
        Standardise a regression target with the training split's statistics.
    """

    name: str
    kind: str
    normalize: bool = False

    def __post_init__(self):
        if self.kind not in ("segmentation", "regression"):
            raise ValueError(f"task {self.name!r}: kind must be 'segmentation' or "
                             f"'regression', got {self.kind!r}")

    @property
    def kpi(self) -> str:
        """Name of the task's KPI: ``"PA"`` or ``"R2"``."""
        return "PA" if self.kind == "segmentation" else "R2"


#: The segmenter's single task: the grain mask.
SEGMENTATION = (Task("mask", "segmentation"),)


@dataclass
class Samples:
    """Images and targets of one split.

    Parameters
    ----------
    gray : array (N, H, W) uint8
        Grayscale slices.
    targets : dict of arrays
        Per task: a 0/1 map stack (N, H, W) or one value per image (N,).
    """

    gray: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.gray = np.asarray(self.gray)
        if self.gray.ndim != 3:
            raise ValueError(f"gray must be a stack (N, H, W), got shape {self.gray.shape}")
        if self.gray.dtype != np.uint8:
            raise TypeError(f"gray must be uint8 slices, got {self.gray.dtype}")
        self.targets = {name: np.asarray(t) for name, t in self.targets.items()}  # a copy
        for name, t in self.targets.items():
            if len(t) != len(self.gray):
                raise ValueError(f"target {name!r} has {len(t)} entries for "
                                 f"{len(self.gray)} images")
            if np.issubdtype(t.dtype, np.floating) and not np.isfinite(t).all():
                bad = np.flatnonzero(~np.isfinite(t.reshape(len(t), -1)).all(axis=1))
                raise ValueError(f"target {name!r} has NaN or infinite values at images "
                                 f"{bad[:10].tolist()}; drop them (e.g. unconverged FEM "
                                 f"solves) before training")

    def __len__(self) -> int:
        return len(self.gray)

    def check(self, tasks: Sequence[Task], split: str) -> None:
        for task in tasks:
            if task.name not in self.targets:
                raise KeyError(f"{split} samples have no target {task.name!r} "
                               f"(have {sorted(self.targets)})")
            t = self.targets[task.name]
            if task.kind == "segmentation":
                if t.shape != self.gray.shape:
                    raise ValueError(f"{split} target {task.name!r}: mask shape {t.shape} "
                                     f"differs from the images' {self.gray.shape}")
                if not np.isin(t, (0, 1)).all():
                    raise ValueError(f"{split} target {task.name!r} is not a binary mask")
            elif t.ndim != 1:
                raise ValueError(f"{split} target {task.name!r}: expected one value per "
                                 f"image (N,), got shape {t.shape}")

    def fingerprint(self) -> str:
        """Hash of the images and targets (to tie a checkpoint to its training data)."""
        h = hashlib.blake2b(digest_size=8)
        for name, a in [("gray", self.gray), *sorted(self.targets.items())]:
            a = np.ascontiguousarray(a)
            h.update(f"{name}{a.shape}{a.dtype}".encode())
            h.update(a.data)
        return h.hexdigest()


@dataclass(frozen=True)
class FitResult:
    """A trained model and its record."""

    model: nn.Module  # weights of the best validation epoch
    history: pd.DataFrame  # one row per epoch
    best_epoch: int
    scales: dict[str, tuple[float, float]]  # mean, std of the input and normalised targets
    folder: Path
    seconds: float  # training time summed over every call that trained this run


class CheckpointMismatch(ValueError):
    """A checkpoint was made under another configuration, model or data."""


# -- devices and seeds -------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"``: the first CUDA device if there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return dev


def seed_everything(seed: int, *stream: int) -> torch.Generator:
    """Seed torch's global generators from ``(seed, *stream)``; return a CPU generator too."""
    s = int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


# -- the loop ----------------------------------------------------------------------


def fit(
    model: nn.Module,
    tasks: Sequence[Task],
    train: Samples,
    val: Samples,
    tc: TrainConfig,
    folder: str | Path,
    *,
    device: str = "auto",
    weighting: Weighting | None = None,
    resume: bool = True,
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
    train, val : Samples
        Training and validation splits.
    tc : TrainConfig
        The optimisation: epochs, batch size, learning rate and its schedule, seed.
    folder : path
        The run's folder (checkpoints, ``history.csv``).
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:1"``...
    weighting : Weighting, optional
        How task losses combine; default equal weights.
    resume : bool
        Continue from ``folder/last.pt`` if it exists (and return at once if
        that run is complete); ``False`` starts afresh, overwriting it.
    progress : bool, optional
        Progress bar per epoch; default from :mod:`dmtnn.settings`.
    callback : callable, optional
        Called with each epoch's history row after its checkpoint is written.

    Returns
    -------
    FitResult
        With the best validation epoch's weights loaded into ``model``.
    """
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("no tasks to train")
    train.check(tasks, "train")
    val.check(tasks, "val")
    if len(train) < 1 or len(val) < 1:
        raise ValueError(f"empty split: {len(train)} training, {len(val)} validation images")
    weighting = weighting or FixedWeights({t.name: 1.0 for t in tasks})
    if set(weighting.tasks) != {t.name for t in tasks}:
        raise ValueError(f"weighting tasks {weighting.tasks} differ from the model's "
                         f"{[t.name for t in tasks]}")
    folder = Path(folder)
    device = resolve_device(device)
    scales = _scales(train, tasks)
    ident = _identity(model, tasks, weighting, tc, train, val)

    model.to(device)
    weighting.to(device)
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    params += [p for p in weighting.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=tc.lr)
    scheduler = _scheduler(optimizer, tc)

    start, history, best, seconds = 0, [], {"epoch": -1, "score": -math.inf}, 0.0
    last_path = folder / "last.pt"
    if resume and last_path.exists():
        state = _read(last_path)
        _check_identity(state, ident, last_path)
        model.load_state_dict(state["model"])
        weighting.load_state_dict(state["weighting"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history, best = state["epoch"], state["history"], state["best"]
        seconds = state["seconds"]
        if start < tc.epochs:
            log.info("%s: resuming at epoch %d of %d", folder.name, start + 1, tc.epochs)

    data_train = _to_device(train, tasks, scales, device)
    data_val = _to_device(val, tasks, scales, device)
    for epoch in range(start, tc.epochs):
        t0 = time.perf_counter()
        gen = seed_everything(tc.seed, 1, epoch)
        lr = optimizer.param_groups[0]["lr"]
        weights = weighting.weights()
        model.train()
        tr = _pass(model, tasks, data_train, weighting, tc.batch_size, device,
                   optimizer=optimizer, generator=gen, epoch=epoch + 1, augment=tc.augment,
                   progress=show_progress(progress), label=f"{folder.name} {epoch + 1}/{tc.epochs}")
        scheduler.step()
        weighting.end_epoch(tr["kpi"], tr["loss"])
        model.eval()
        with torch.no_grad():
            va = _pass(model, tasks, data_val, weighting, tc.batch_size, device)
        seconds += time.perf_counter() - t0
        score = float(np.mean([va["kpi"][t.name] for t in tasks]))
        row = {"epoch": epoch + 1, "lr": lr, "seconds": time.perf_counter() - t0,
               "train loss": tr["total"], "val loss": va["total"], "val score": score}
        for t in tasks:
            row[f"train {t.name} loss"] = tr["loss"][t.name]
            row[f"val {t.name} loss"] = va["loss"][t.name]
            row[f"train {t.name} {t.kpi}"] = tr["kpi"][t.name]
            row[f"val {t.name} {t.kpi}"] = va["kpi"][t.name]
            row[f"weight {t.name}"] = weights[t.name]
        history.append(row)
        if not np.isfinite(score):
            log.warning("%s epoch %d: validation score is %s (a split too small, or a "
                        "constant target?)", folder.name, epoch + 1, score)
        if best["epoch"] < 0 or score > best["score"]:
            best = {"epoch": epoch + 1, "score": score}
            _save(folder / "best.pt", {"identity": ident, "model": _cpu_state(model),
                                       "scales": scales, "epoch": epoch + 1})
        _save(last_path, {
            "format": CHECKPOINT_FORMAT, "identity": ident, "epoch": epoch + 1,
            "model": _cpu_state(model), "weighting": weighting.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "history": history, "best": best, "scales": scales, "seconds": seconds,
        })
        frame = pd.DataFrame(history)
        atomic_write(folder / "history.csv", lambda p, f=frame: f.to_csv(p, index=False))
        log.info("%s epoch %d/%d: train loss %.4g, val loss %.4g, val score %.4f (%.1f s)",
                 folder.name, epoch + 1, tc.epochs, tr["total"], va["total"], score,
                 row["seconds"])
        if callback is not None:
            callback(row)

    load_checkpoint(folder / "best.pt", model, expect=ident)
    model.eval()
    return FitResult(model=model, history=pd.DataFrame(history), best_epoch=best["epoch"],
                     scales=scales, folder=folder, seconds=seconds)


def _pass(model, tasks, data, weighting, batch_size, device, *, optimizer=None,
          generator=None, epoch=0, progress=False, label="", augment=False):
    """One pass over ``data``: train if an optimizer is given, else evaluate.

    Returns mean task losses, the weighted total and the KPI of each task.
    """
    n = len(data["x"])
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    cuda = device.type == "cuda"
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    names = [t.name for t in tasks]
    sums = dict.fromkeys(names, 0.0)
    total = 0.0
    agree = {t.name: 0 for t in tasks if t.kind == "segmentation"}  # device tensors once used
    preds = {t.name: [] for t in tasks if t.kind == "regression"}  # kept on the device
    for b, idx in enumerate(tqdm(batches, desc=label, leave=False, disable=not progress)):
        idx = idx.to(data["x"].device)
        x = _inputs(data, idx, device)
        turn = _symmetry(generator) if augment and optimizer is not None else (0, False)
        x = _apply_symmetry(x, turn)
        with amp:
            out = model(x)
        if not isinstance(out, Mapping):
            if len(tasks) != 1:
                raise TypeError(f"the model returned one tensor for {len(tasks)} tasks; "
                                f"return a dict keyed by task name")
            out = {tasks[0].name: out}
        losses = {}
        for t in tasks:
            y = data[t.name][idx].to(device, non_blocking=True)
            if t.kind == "segmentation":
                logits = out[t.name]
                y = _apply_symmetry(y.unsqueeze(1), turn)
                losses[t.name] = segmentation_loss(logits, y)
                agree[t.name] = agree[t.name] + ((logits.detach() > 0) == (y > 0)).sum()
            else:
                p = out[t.name].reshape(-1)
                losses[t.name] = regression_loss(p, y)
                preds[t.name].append(p.detach().float())
        loss = weighting.combine(losses)
        # one device-to-host copy per batch: the bookkeeping and the NaN check
        values = torch.stack([loss.detach().float(),
                              *(losses[n].detach().float() for n in names)]).tolist()
        if not math.isfinite(values[0]):
            parts = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, values[1:], strict=True))
            raise FloatingPointError(f"loss is {values[0]} at epoch {epoch}, batch {b + 1} "
                                     f"of {len(batches)} (task losses: {parts})")
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        k = len(idx)
        total += values[0] * k
        for name, v in zip(names, values[1:], strict=True):
            sums[name] += v * k
    kpi = {}
    order_np = order.cpu().numpy()
    for t in tasks:
        if t.kind == "segmentation":
            kpi[t.name] = int(agree[t.name]) / data[t.name][0].numel() / n
        else:
            kpi[t.name] = r2_score(torch.cat(preds[t.name]).cpu().numpy(),
                                   data[t.name].cpu().numpy()[order_np])
    return {"loss": {k: v / n for k, v in sums.items()}, "total": total / n, "kpi": kpi}


def _symmetry(generator) -> tuple[int, bool]:
    """A random element of the square's symmetry group: quarter turns and a flip."""
    k = int(torch.randint(4, (1,), generator=generator))
    return k, bool(torch.randint(2, (1,), generator=generator))


def _apply_symmetry(x: torch.Tensor, turn: tuple[int, bool]) -> torch.Tensor:
    k, flip = turn
    if k % 2 and x.shape[-1] != x.shape[-2]:
        k -= 1  # a quarter turn would change the shape of a non-square image
    if k:
        x = torch.rot90(x, k, (-2, -1))
    return x.flip(-1) if flip else x


def _inputs(data, idx, device):
    mean, std = data["input scale"]
    x = data["x"][idx].to(device, non_blocking=True)
    x = ((x.float() / 255.0 - mean) / std).unsqueeze(1)  # (B, 1, H, W)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _scales(train: Samples, tasks: Sequence[Task]) -> dict[str, tuple[float, float]]:
    g = train.gray.astype(np.float64) / 255.0
    scales = {"input": (float(g.mean()), float(g.std()) or 1.0)}
    for t in tasks:
        if t.kind == "regression" and t.normalize:
            y = np.asarray(train.targets[t.name], dtype=np.float64)
            scales[t.name] = (float(y.mean()), float(y.std()) or 1.0)
    return scales


def _to_device(s: Samples, tasks, scales, device) -> dict[str, Any]:
    """Tensors of one split: on the GPU when they fit in a quarter of free memory."""
    nbytes = s.gray.nbytes + sum(s.targets[t.name].nbytes for t in tasks)
    where = torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        where = device if nbytes < free / 4 else where
    out = {"x": torch.from_numpy(np.ascontiguousarray(s.gray)).to(where),
           "input scale": scales["input"]}
    for t in tasks:
        y = np.asarray(s.targets[t.name])
        if t.kind == "segmentation":
            out[t.name] = torch.from_numpy(y.astype(np.uint8)).to(where)
        else:
            mean, std = scales.get(t.name, (0.0, 1.0))
            out[t.name] = torch.from_numpy(((y - mean) / std).astype(np.float32)).to(where)
    if where.type == "cpu" and device.type == "cuda":
        out = {k: (v.pin_memory() if torch.is_tensor(v) else v) for k, v in out.items()}
    return out


def _scheduler(optimizer, tc: TrainConfig):
    if tc.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, tc.lr_step, tc.lr_gamma)
    if tc.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, tc.epochs))
    raise ValueError(f"train.schedule must be 'step' or 'cosine', got {tc.schedule!r}")


# -- checkpoints -------------------------------------------------------------------


def _identity(model, tasks, weighting, tc, train, val) -> dict[str, Any]:
    """What a checkpoint must match to be resumed or loaded into ``model``."""
    return {
        "model": type(model).__name__,
        "architecture": _architecture(model),
        "tasks": [asdict(t) for t in tasks],
        "weighting": type(weighting).__name__,
        "weighting settings": {k: str(v) for k, v in weighting.settings().items()},
        "train": asdict(tc),
        "train data": train.fingerprint(),
        "val data": val.fingerprint(),
    }


def _architecture(model: nn.Module) -> str:
    """Hash of the state's names and shapes (and which parameters train)."""
    h = hashlib.blake2b(digest_size=8)
    for k, v in model.state_dict().items():
        h.update(f"{k}{tuple(v.shape)}".encode())
    for k, p in model.named_parameters():
        h.update(f"{k}{p.requires_grad}".encode())
    return h.hexdigest()


def _check_identity(state: dict, ident: Mapping, path: Path) -> None:
    old = state.get("identity", {})
    keys = list(ident)
    diff = []
    for k in keys:
        a, b = old.get(k), ident.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            diff += [f"{k}.{f}: {a.get(f)!r} -> {b.get(f)!r}"
                     for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
        else:
            diff.append(f"{k}: {a!r} -> {b!r}")
    if diff:
        raise CheckpointMismatch(
            f"{path} was made under another setup ({'; '.join(diff)}); delete it (or its "
            f"folder) to start afresh, or pass resume=False"
        )


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _save(path: Path, obj: dict) -> None:
    atomic_write(path, lambda p: torch.save(obj, p))


def _read(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for damaged files
        raise CheckpointMismatch(f"{path} cannot be read ({type(err).__name__}: {err}); "
                                 f"delete it to start afresh") from err


def load_checkpoint(path: str | Path, model: nn.Module, *, expect: Mapping | None = None
                    ) -> dict[str, Any]:
    """Load the weights of ``path`` into ``model``; return the checkpoint.

    The checkpoint must come from the same architecture (state names and
    shapes) and agree with ``expect``, a part of the run's identity such as
    ``{"train": asdict(cfg.train)}``.

    Raises
    ------
    CheckpointMismatch
        Naming the file and what differs.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint {path}")
    state = _read(path)
    ident = {"model": type(model).__name__, "architecture": _architecture(model),
             **(expect or {})}
    _check_identity(state, ident, path)
    model.load_state_dict(state["model"])
    return state


def run_folder(cfg: Config, name: str) -> Path:
    """Folder of a named training run: ``artifacts/<profile>/models/<name>``."""
    return artifacts_root() / cfg.profile / "models" / name


def read_history(folder: str | Path) -> pd.DataFrame:
    """The per-epoch history of a run folder."""
    path = Path(folder) / "history.csv"
    if not path.exists():
        raise FileNotFoundError(f"no training history {path}: train the model first")
    return pd.read_csv(path)


# -- inference ---------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: nn.Module,
    gray: np.ndarray,
    tasks: Sequence[Task],
    scales: Mapping[str, tuple[float, float]],
    *,
    batch_size: int = 32,
    device: str = "auto",
) -> dict[str, np.ndarray]:
    """Predictions of a trained model for grayscale slices (N, H, W) uint8.

    Returns per task: a 0/1 mask stack (N, H, W) uint8 (1 = grain) for a
    segmentation, values (N,) in the target's units for a regression.
    """
    gray = np.asarray(gray)
    if gray.ndim == 2:
        gray = gray[None]
    if gray.dtype != np.uint8 or gray.ndim != 3:
        raise ValueError(f"gray must be uint8 slices (N, H, W), got {gray.dtype} {gray.shape}")
    dev = resolve_device(device)
    model.to(dev).eval()
    data = {"x": torch.from_numpy(np.ascontiguousarray(gray)), "input scale": scales["input"]}
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" \
        else contextlib.nullcontext()
    out = {t.name: [] for t in tasks}
    for i in range(0, len(gray), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(gray)))
        with amp:
            y = model(_inputs(data, idx, dev))
        if not isinstance(y, Mapping):
            y = {tasks[0].name: y}
        for t in tasks:
            v = y[t.name].float()
            if t.kind == "segmentation":
                out[t.name].append((v[:, 0] > 0).to(torch.uint8).cpu().numpy())
            else:
                mean, std = scales.get(t.name, (0.0, 1.0))
                out[t.name].append(v.reshape(-1).cpu().numpy() * std + mean)
    return {k: np.concatenate(v) for k, v in out.items()}
