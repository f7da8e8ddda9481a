"""What a network learns from: its tasks, the samples of a split, and their scaling.

A :class:`Task` names one output of a model (the grain mask, or one scalar
per image such as ``phi``); :class:`Samples` holds one split's grayscale slices
and targets; :func:`compute_scales` measures the training split's input and
target statistics and :func:`to_device` turns a split into the standardised
tensors the training loop (:mod:`dmtnn.train`) reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "Task",
    "SEGMENTATION",
    "Samples",
    "SplitTensors",
    "compute_scales",
    "to_device",
]


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


@dataclass
class SplitTensors:
    """One split as the loop reads it (made by :func:`to_device`).

    ``x`` holds the uint8 images (N, H, W) and ``targets`` one tensor per task
    (masks uint8, regression targets float32 in standardised units); they sit
    on ``device`` when they fit, else pinned on the CPU and copied batch by
    batch. ``input_scale`` is the (mean, std) that standardises the images.
    ``cache`` holds what the training loop derives from the images once and
    reuses (a frozen segmenter's logits: :mod:`dmtnn.train`).
    """

    x: torch.Tensor
    targets: dict[str, torch.Tensor]
    input_scale: tuple[float, float]
    device: torch.device  # where the model runs
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.x)


# -- scaling -------------------------------------------------------------------


def compute_scales(train: Samples, tasks: Sequence[Task]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of the training images (``"input"``, on [0, 1]) and
    of every regression target marked ``normalize``."""
    g = train.gray.astype(np.float64) / 255.0
    scales = {"input": (float(g.mean()), float(g.std()) or 1.0)}
    for t in tasks:
        if t.kind == "regression" and t.normalize:
            y = np.asarray(train.targets[t.name], dtype=np.float64)
            scales[t.name] = (float(y.mean()), float(y.std()) or 1.0)
    return scales


def to_device(s: Samples, tasks: Sequence[Task], scales: Mapping[str, tuple[float, float]],
              device: torch.device) -> SplitTensors:
    """Tensors of one split: on the GPU when they fit in a quarter of free memory."""
    nbytes = s.gray.nbytes + sum(s.targets[t.name].nbytes for t in tasks)
    where = torch.device("cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        where = device if nbytes < free / 4 else where
    x = torch.from_numpy(np.ascontiguousarray(s.gray)).to(where)
    targets = {}
    for t in tasks:
        y = np.asarray(s.targets[t.name])
        if t.kind == "segmentation":
            targets[t.name] = torch.from_numpy(y.astype(np.uint8)).to(where)
        else:
            mean, std = scales.get(t.name, (0.0, 1.0))
            targets[t.name] = torch.from_numpy(((y - mean) / std).astype(np.float32)).to(where)
    if where.type == "cpu" and device.type == "cuda":
        x = x.pin_memory()
        targets = {k: v.pin_memory() for k, v in targets.items()}
    return SplitTensors(x, targets, scales["input"], device)
