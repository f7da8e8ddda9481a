"""Training checkpoints: what they hold, what they must match, and where runs live.

A run's folder (:func:`run_folder`: ``artifacts/<profile>/models/<name>``)
holds ``last.pt`` (everything needed to resume: weights, optimizer,
scheduler, weighting state, history), ``best.pt`` (the best validation
epoch's weights and the input/target scales) and ``history.csv``
(:func:`read_history`). Files are written atomically.

Every checkpoint carries the *identity* of its run (:func:`identity`): the
model's class and architecture (state names and shapes, which parameters
train), the tasks, the weighting strategy and its settings, the training
configuration and fingerprints of the training and validation data. A
checkpoint is used only by a run of the same identity; otherwise
:class:`CheckpointMismatch` names what differs.

:func:`resume_state` is the one rule for an existing ``last.pt``: resume from
it, or, on a mismatch, either refuse (the default) or log it and start afresh
(``on_mismatch="restart"``, what the notebooks' helpers ask for).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from dmtnn.artifacts import artifacts_root, atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "ON_MISMATCH",
    "CheckpointMismatch",
    "identity",
    "architecture",
    "check_identity",
    "cpu_state",
    "save",
    "read",
    "load_checkpoint",
    "resume_state",
    "run_folder",
    "read_history",
]

log = logging.getLogger(__name__)

#: Version of the ``last.pt`` layout.
CHECKPOINT_FORMAT = 1

#: What :func:`resume_state` may do with a checkpoint of another setup.
ON_MISMATCH = ("raise", "restart")


class CheckpointMismatch(ValueError):
    """A checkpoint was made under another configuration, model or data."""


def identity(model: nn.Module, tasks, weighting, tc, train_set, val_set) -> dict[str, Any]:
    """What a checkpoint must match to be resumed or loaded into ``model``.

    ``tasks`` are :class:`dmtnn.samples.Task` s, ``weighting`` a
    :class:`dmtnn.weighting.Weighting`, ``tc`` a
    :class:`dmtnn.config.TrainConfig` (its fields go under ``"train"``), ``train_set`` and
    ``val_set`` :class:`dmtnn.samples.Samples`.
    """
    return {
        "model": type(model).__name__,
        "architecture": architecture(model),
        "tasks": [asdict(t) for t in tasks],
        "weighting": type(weighting).__name__,
        "weighting settings": {k: str(v) for k, v in weighting.settings().items()},
        "train": asdict(tc),
        "train data": train_set.fingerprint(),
        "val data": val_set.fingerprint(),
    }


def architecture(model: nn.Module) -> str:
    """Hash of the state's names and shapes (and which parameters train)."""
    h = hashlib.blake2b(digest_size=8)
    for k, v in model.state_dict().items():
        h.update(f"{k}{tuple(v.shape)}".encode())
    for k, p in model.named_parameters():
        h.update(f"{k}{p.requires_grad}".encode())
    return h.hexdigest()


def check_identity(state: Mapping, ident: Mapping, path: Path) -> None:
    """Raise :class:`CheckpointMismatch` naming every field of ``ident`` that ``state`` differs in."""
    old = state.get("identity", {})
    diff = []
    for k in ident:
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


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's state on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save(path: Path, obj: dict) -> None:
    """Write a checkpoint atomically."""
    atomic_write(path, lambda p: torch.save(obj, p))


def read(path: Path) -> dict:
    """A checkpoint's contents (on the CPU); a damaged file is a :class:`CheckpointMismatch`."""
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
    ``{"train": asdict(cfg.multitask)}``.

    Raises
    ------
    CheckpointMismatch
        Naming the file and what differs.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint {path}")
    state = read(path)
    ident = {"model": type(model).__name__, "architecture": architecture(model),
             **(expect or {})}
    check_identity(state, ident, path)
    model.load_state_dict(state["model"])
    return state


def resume_state(path: str | Path, ident: Mapping, *, on_mismatch: str = "raise"
                 ) -> dict[str, Any] | None:
    """The checkpoint at ``path`` to resume from, or ``None`` to start afresh.

    ``None`` when there is no such file. A checkpoint of another identity (or
    a damaged one) raises :class:`CheckpointMismatch` with ``on_mismatch =
    "raise"``; with ``"restart"`` the mismatch is logged as a warning and the
    run starts afresh (its files are overwritten as it goes).
    """
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"on_mismatch must be one of {ON_MISMATCH}, got {on_mismatch!r}")
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = read(path)
        check_identity(state, ident, path)
    except CheckpointMismatch as err:
        if on_mismatch == "raise":
            raise
        log.warning("%s; training afresh", err)
        return None
    return state


def run_folder(cfg, name: str) -> Path:
    """Folder of a named training run: ``artifacts/<profile>/models/<name>``."""
    return artifacts_root() / cfg.profile / "models" / name


def read_history(folder: str | Path) -> pd.DataFrame:
    """The per-epoch history of a run folder."""
    path = Path(folder) / "history.csv"
    if not path.exists():
        raise FileNotFoundError(f"no training history {path}: train the model first")
    return pd.read_csv(path)


def finished(folder: str | Path, epochs: int) -> bool:
    """Whether the run in ``folder`` has a history of at least ``epochs`` epochs (a batch
    reads such a run back instead of training it; a run under another configuration is
    still retrained by the training loop)."""
    try:
        return len(read_history(folder)) >= epochs
    except (FileNotFoundError, ValueError):
        return False
