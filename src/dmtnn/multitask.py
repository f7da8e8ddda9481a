"""Characteristic parameters from images: DMTNN and its baselines, trained and applied.

The regression tasks are the porosity ``phi`` of the threshold label, and the
FEM shear modulus ``mu`` and 2D bulk modulus ``kappa`` of the same label
(notebook 03), named as the fields of :data:`dmtnn.data.fem_labels.LABEL_FIELDS`.
``mu`` and ``kappa`` are standardised with training-split
statistics inside the training loop (saved with the checkpoint; predictions
come back in GPa); porosity is not, as in the paper.

- :func:`regression_samples`: images, masks and labels of one split, without
  the images whose FEM solve did not converge;
- :func:`build_network` / :func:`train_network`: any regression network of
  the :mod:`dmtnn.models` registry with any weighting strategy of
  :mod:`dmtnn.weighting` (by the names notebook 06 uses: ``"1:10:3"``,
  ``"dynamic"``...), through the one training loop; runs live in
  ``artifacts/<profile>/models/<network>-<strategy>-seed<k>``. DMTNN sits on
  the trained segmenter, which the caller passes in
  (``segmenter=load_segmenter(cfg)[0]``, after notebook 04);
- :func:`segment_then_simulate`: the two baselines the paper lacks (porosity
  of the predicted mask; FEM on it);
- :func:`best_alternative`: the weighting strategy notebook 07 compares with
  the paper's, chosen on validation scores.

The tables that score them (R2 per method, rock, split or strategy) are in
:mod:`dmtnn.reports`; the paper's numbers in :mod:`dmtnn.comparison`.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace

import numpy as np
from torch import nn

from dmtnn import models, weighting
from dmtnn.checkpoints import run_folder
from dmtnn.config import Config
from dmtnn.data.dataset import Dataset
from dmtnn.data.fem_labels import label_chunk, solver_settings
from dmtnn.samples import Samples, Task
from dmtnn.train import FitResult, fit, predict, seed_everything

__all__ = [
    "REGRESSION",
    "NETWORKS",
    "regression_samples",
    "build_network",
    "train_network",
    "predict_parameters",
    "segment_then_simulate",
    "best_alternative",
]

log = logging.getLogger(__name__)

#: The three regressions: porosity as is, the moduli standardised.
REGRESSION = (
    Task("phi", "regression"),
    Task("mu", "regression", normalize=True),
    Task("kappa", "regression", normalize=True),
)

#: Regression networks by name (from :data:`dmtnn.models.REGISTRY`; ``dmtnn`` needs the
#: trained segmenter of notebook 04).
NETWORKS = models.names("regression")

def regression_samples(
    ds: Dataset, labels: dict, split: str, rocks=None
) -> tuple[Samples, dict[str, np.ndarray]]:
    """Images, masks and labels of one split, dropping unconverged FEM solves.

    Parameters
    ----------
    ds : Dataset
    labels : dict
        From :func:`dmtnn.data.fem_labels.fem_labels` (uses the ``"label"`` kind).
    split : str
        ``"train"``, ``"val"``, ``"test"`` or ``"heldout"``.
    rocks : sequence of str, optional
        Default: every rock with images in ``split``.

    Returns
    -------
    samples : Samples
        ``gray`` and targets ``phi``, ``mu``, ``kappa`` (GPa) and ``mask`` (the label).
    info : dict
        ``rock`` (index into ``names``), ``names``, ``truth`` masks when known, and
        ``dropped`` (images left out because their solve did not converge).
    """
    names = [n for n in (rocks or ds.rocks) if len(ds[n].select(split))]
    if not names:
        raise ValueError(f"split {split!r} has no images")
    parts, dropped = [], 0
    for i, name in enumerate(names):
        r = ds[name]
        if r.rock not in labels or "label" not in labels[r.rock]:
            raise KeyError(f"no FEM labels of {r.rock}: run notebook 03 (fem_labels) first")
        lab = labels[r.rock]["label"]
        idx = r.select(split)
        ok = idx[lab["converged"][idx].astype(bool)]
        dropped += len(idx) - len(ok)
        parts.append((i, r, ok, lab))
    gray = np.concatenate([r.gray[ok] for _, r, ok, _ in parts])
    targets = {t.name: np.concatenate([lab[t.name][ok] for _, _, ok, lab in parts])
               for t in REGRESSION}
    targets["mask"] = np.concatenate([r.label[ok] for _, r, ok, _ in parts])
    info = {"rock": np.concatenate([np.full(len(ok), i) for i, _, ok, _ in parts]),
            "names": np.array([r.rock for _, r, _, _ in parts]), "dropped": dropped}
    if all(r.truth is not None for _, r, _, _ in parts):
        info["truth"] = np.concatenate([r.truth[ok] for _, r, ok, _ in parts])
    if dropped:
        log.warning("%s split: %d image(s) without a converged FEM label left out", split,
                    dropped)
    return Samples(gray, targets), info


def _tasks(tasks) -> tuple[Task, ...]:
    if tasks is None:
        return REGRESSION
    chosen = tuple(t for t in REGRESSION if t.name in tasks)
    if len(chosen) != len(set(tasks)):
        raise ValueError(f"tasks must be among {[t.name for t in REGRESSION]}, got {tasks}")
    return chosen


def build_network(cfg: Config, name: str = "dmtnn", *, segmenter: nn.Module | None = None,
                  seed: int = 0, depth: int = 2, tasks=None) -> nn.Module:
    """A regression network of this profile's image size and width, initialised by seed.

    ``segmenter`` is the trained segmenter DMTNN sits on (required for
    ``"dmtnn"``, refused by the others): ``load_segmenter(cfg)[0]`` of
    :mod:`dmtnn.segmentation`, after notebook 04. The network gets its own
    copy, frozen, so the caller's segmenter never changes. ``depth`` (feature
    modules per subnet) and ``tasks`` (a subset of phi, mu, kappa: single-task
    models) apply to DMTNN and MTNN_WS (Appendix A).
    """
    spec = models.network(name, "regression")
    kwargs = {"image_size": cfg.data.image_size, "width": cfg.multitask.width}
    if spec.variants:
        kwargs.update(depth=depth, tasks=tuple(t.name for t in _tasks(tasks)))
    elif depth != 2 or tasks is not None:
        with_variants = [n for n in NETWORKS if models.REGISTRY[n].variants]
        raise ValueError(f"depth and tasks apply to {' and '.join(with_variants)}, not {name}")
    if spec.segmenter:
        if segmenter is None:
            raise ValueError(f"{name} sits on the trained segmenter: pass "
                             f"segmenter=load_segmenter(cfg)[0] (dmtnn.segmentation; "
                             f"notebook 04 trains it)")
        kwargs["segmenter"] = copy.deepcopy(segmenter)
    elif segmenter is not None:
        raise ValueError(f"{name} takes no segmenter")
    seed_everything(cfg.multitask.seed + seed, 0)
    return spec.build(**kwargs)


def train_network(
    cfg: Config,
    train_set: Samples,
    val_set: Samples,
    name: str = "dmtnn",
    strategy: str | None = None,
    *,
    segmenter: nn.Module | None = None,
    seed: int = 0,
    depth: int = 2,
    tasks=None,
    tag: str = "",
    progress: bool | None = None,
) -> FitResult:
    """Train (or resume, or read back) network ``name`` with weighting ``strategy``.

    ``strategy`` is a name of :func:`dmtnn.weighting.from_config` (default
    ``cfg.loss.strategy``); ``segmenter`` is DMTNN's trained segmenter, as for
    :func:`build_network`. ``seed`` offsets ``cfg.multitask.seed`` (initial
    weights and shuffling); a run made under another configuration or other
    data is started afresh.
    ``depth`` and ``tasks`` give Appendix A's variants (a single task trains
    with weight 1); ``tag`` prefixes the run's folder, so that runs on other
    data (e.g. Appendix A's one rock) never replace the main ones.
    """
    strategy = strategy or cfg.loss.strategy
    chosen = _tasks(tasks)
    tc = replace(cfg.multitask, seed=cfg.multitask.seed + seed)
    parts = [tag, name, strategy.replace(":", "-"), f"seed{seed}"]
    if depth != 2:
        parts.append(f"depth{depth}")
    if tasks is not None:
        parts.append("+".join(t.name for t in chosen))
    folder = run_folder(cfg, "-".join(p for p in parts if p))
    net = build_network(cfg, name, segmenter=segmenter, seed=seed, depth=depth, tasks=tasks)
    if len(chosen) < len(REGRESSION):
        w = weighting.build("fixed", [t.name for t in chosen])
    else:
        w = weighting.from_config(cfg, strategy, [t.name for t in REGRESSION])
    return fit(net, chosen, train_set, val_set, tc, folder, device=cfg.device, weighting=w,
               on_mismatch="restart", progress=progress)


def predict_parameters(result: FitResult, gray: np.ndarray, cfg: Config) -> dict[str, np.ndarray]:
    """The parameters (porosity; moduli in GPa) a trained network predicts for gray slices.

    A single-task network gives its own parameter only.
    """
    tasks = [t for t in REGRESSION if f"train {t.name} loss" in result.history]
    return predict(result.model, gray, tasks, result.scales,
                   batch_size=cfg.multitask.batch_size, device=cfg.device)


def segment_then_simulate(masks: np.ndarray, cfg: Config) -> tuple[dict[str, np.ndarray], float]:
    """Porosity and FEM moduli of predicted masks: the "segment, then simulate" baseline.

    The same solver and settings as the labels (:func:`dmtnn.data.fem_labels.label_chunk`).
    Returns the parameters (unconverged solves as NaN) and the time per image (s).
    """
    settings, device = solver_settings(cfg)
    t0 = time.perf_counter()
    res = label_chunk(masks, settings, device)
    seconds = (time.perf_counter() - t0) / len(masks)
    return {t.name: res[t.name] for t in REGRESSION}, seconds


def best_alternative(runs: dict[str, FitResult], exclude: str) -> str:
    """The strategy other than ``exclude`` with the best validation score (no test data used)."""
    scores = {s: float(r.history["val score"].max()) for s, r in runs.items() if s != exclude}
    if not scores:
        raise ValueError(f"no strategy other than {exclude!r}")
    return max(scores, key=scores.get)
