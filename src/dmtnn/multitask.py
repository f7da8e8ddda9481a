"""Characteristic parameters from images: DMTNN and its baselines, trained and applied.

The regression tasks are the porosity ``phi`` of the threshold label, and the
FEM shear modulus ``mu`` and 2D bulk modulus ``kappa`` of the same label
(notebook 03), named as the fields of :data:`dmtnn.data.fem_labels.LABEL_FIELDS`.
All three are standardised with training-split statistics inside the
training loop (saved with the checkpoint; predictions come back in the
labels' units, porosity and GPa), so that each weighs alike on the shared
weights; ``cfg.loss.standardize_phi = False`` trains on raw porosity as the
paper does (:func:`regression_tasks`).

- :func:`regression_samples`: images, masks and labels of one split, without
  the images whose FEM solve did not converge;
- :func:`regression_tasks`: the three tasks as a configuration trains them;
- :func:`build_network` / :func:`train_network`: any regression network of
  the :mod:`dmtnn.models` registry with any weighting strategy of
  :mod:`dmtnn.weighting` (by the names notebook 06 uses: ``"1:10:3"``,
  ``"dynamic"``...), through the one training loop; runs live in
  ``artifacts/<profile>/models/<network>-<strategy>-seed<k>``. DMTNN sits on
  the trained segmenter, which the caller passes in
  (``segmenter=load_segmenter(cfg)[0]``, after notebook 04). Each network is
  built at the configuration's ``width`` and ``head_width`` as
  :attr:`dmtnn.models.Network.scaling` says;
- :func:`train_networks`: several of them (seeds, strategies, variants) side by
  side, in processes that share the CPU's threads (:mod:`dmtnn.parallel`);
- :func:`trained_parameters`: the parameter counts of a trained network, for
  the tables that report it;
- :func:`segment_then_simulate`: the two baselines the paper lacks (porosity
  of the predicted mask; FEM on it);
- :func:`best_alternative`: the weighting strategy notebook 07 compares with
  the paper's, chosen on validation losses.

The tables that score them (R2 per method, rock, split or strategy) are in
:mod:`dmtnn.reports`; the paper's numbers in :mod:`dmtnn.comparison`.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from dmtnn import models, parallel, weighting
from dmtnn.checkpoints import finished, run_folder
from dmtnn.config import Config
from dmtnn.data.dataset import Dataset
from dmtnn.data.fem_labels import label_chunk, solver_settings
from dmtnn.data.layout import cluster_ids
from dmtnn.samples import Samples, Task
from dmtnn.train import FitResult, fit, predict, seed_everything

__all__ = [
    "REGRESSION",
    "NETWORKS",
    "regression_tasks",
    "regression_samples",
    "build_network",
    "train_network",
    "train_networks",
    "JOB_KEYS",
    "trained_parameters",
    "predict_parameters",
    "segment_then_simulate",
    "best_alternative",
]

log = logging.getLogger(__name__)

#: The three regressions, all standardised (the default; see :func:`regression_tasks`).
REGRESSION = (
    Task("phi", "regression", normalize=True),
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
        ``rock`` (index into ``names``), ``names``, ``cluster`` (slab of each image,
        unique across rocks: :func:`dmtnn.data.layout.cluster_ids`; -1 for training
        images; images of one slab are correlated, so a bootstrap resamples
        clusters), ``truth`` masks when known, and ``dropped`` (images left out
        because their solve did not converge).
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
    info["cluster"] = cluster_ids(info["rock"], np.concatenate([r.cluster[ok]
                                                                for _, r, ok, _ in parts]))
    if all(r.truth is not None for _, r, _, _ in parts):
        info["truth"] = np.concatenate([r.truth[ok] for _, r, ok, _ in parts])
    if dropped:
        log.warning("%s split: %d image(s) without a converged FEM label left out", split,
                    dropped)
    return Samples(gray, targets), info


def regression_tasks(cfg: Config) -> tuple[Task, ...]:
    """The three regression tasks as ``cfg`` trains them.

    Every target is standardised with the training split's mean and standard
    deviation, unless ``cfg.loss.standardize_phi`` is ``False``: then porosity
    is trained raw, as in the paper. The tasks go into every checkpoint's
    identity, so runs of the two settings never mix.

    >>> from dmtnn.config import load_profile
    >>> [t.normalize for t in regression_tasks(load_profile("ci"))]
    [True, True, True]
    >>> paper = load_profile("ci", loss={"standardize_phi": False})
    >>> [t.normalize for t in regression_tasks(paper)]
    [False, True, True]
    """
    return tuple(replace(t, normalize=cfg.loss.standardize_phi) if t.name == "phi" else t
                 for t in REGRESSION)


def _tasks(cfg: Config, tasks) -> tuple[Task, ...]:
    every = regression_tasks(cfg)
    if tasks is None:
        return every
    chosen = tuple(t for t in every if t.name in tasks)
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
    models) apply to DMTNN and MTNN_WS (Appendix A). The channel multipliers
    are ``cfg.multitask.width`` and ``head_width``, as the registry entry's
    ``scaling`` says (:meth:`dmtnn.models.Network.width_kwargs`).
    """
    spec = models.network(name, "regression")
    kwargs = {"image_size": cfg.data.image_size,
              **spec.width_kwargs(cfg.multitask.width, cfg.multitask.head_width)}
    if spec.variants:
        kwargs.update(depth=depth, tasks=tuple(t.name for t in _tasks(cfg, tasks)))
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
    chosen = _tasks(cfg, tasks)
    tc = replace(cfg.multitask, seed=cfg.multitask.seed + seed)
    folder = _folder(cfg, name, strategy, seed, depth, tasks, tag)
    net = build_network(cfg, name, segmenter=segmenter, seed=seed, depth=depth, tasks=tasks)
    if len(chosen) < len(REGRESSION):
        w = weighting.build("fixed", [t.name for t in chosen])
    else:
        w = weighting.from_config(cfg, strategy, [t.name for t in REGRESSION])
    with parallel.network_threads(cfg):
        return fit(net, chosen, train_set, val_set, tc, folder, device=cfg.device, weighting=w,
                   on_mismatch="restart", progress=progress)


def _folder(cfg: Config, name: str, strategy: str | None, seed: int, depth: int, tasks,
            tag: str) -> Path:
    """The run folder of :func:`train_network`'s arguments."""
    parts = [tag, name, (strategy or cfg.loss.strategy).replace(":", "-"), f"seed{seed}"]
    if depth != 2:
        parts.append(f"depth{depth}")
    if tasks is not None:
        parts.append("+".join(t.name for t in _tasks(cfg, tasks)))
    return run_folder(cfg, "-".join(p for p in parts if p))


#: What a job of :func:`train_networks` may set: :func:`train_network`'s arguments, and
#: ``cfg`` for a job trained under another configuration than the batch's.
JOB_KEYS = ("name", "strategy", "seed", "depth", "tasks", "tag", "cfg")
#: The defaults of those arguments, read from :func:`train_network` itself.
_JOB_DEFAULTS = {k: p.default for k, p in inspect.signature(train_network).parameters.items()
                 if k in JOB_KEYS and k != "cfg"}


def _train_job(shared: dict, job: dict) -> None:
    _train_one(job.pop("cfg") or shared["cfg"], shared["train"], shared["val"], job,
               shared["segmenter"], progress=False)


def _train_one(cfg: Config, train_set: Samples, val_set: Samples, job: dict,
               segmenter: nn.Module | None, progress: bool | None) -> FitResult:
    sits_on = models.network(job["name"], "regression").segmenter
    return train_network(cfg, train_set, val_set, segmenter=segmenter if sits_on else None,
                         progress=progress, **job)


def train_networks(
    cfg: Config,
    train_set: Samples,
    val_set: Samples,
    jobs: Sequence[Mapping[str, Any]],
    *,
    segmenter: nn.Module | None = None,
    progress: bool | None = None,
) -> list[FitResult]:
    """Train several regression networks (seeds, strategies, variants), side by side on a CPU.

    Each job is a dict of :func:`train_network`'s arguments (:data:`JOB_KEYS`:
    ``name``, ``strategy``, ``seed``, ``depth``, ``tasks``, ``tag``, and
    ``cfg`` where a job's configuration differs from ``cfg``); ``segmenter``
    goes to the jobs whose network sits on it. The jobs are shared among
    :func:`dmtnn.parallel.plan`'s processes (spawned; each trains on
    ``cfg.train_threads`` threads), started in the order given: put the longest first. Each
    process writes its run's checkpoints as :func:`train_network` does, so a
    killed batch resumes where each run stopped; the results are then read
    back here, in the order of ``jobs``. A job trains with the same number of
    threads whether the batch runs in processes or here, so the two ways give
    the same numbers.

    >>> from dmtnn.config import load_profile
    >>> train_networks(load_profile("ci"), None, None, [{"seeds": 2}])
    Traceback (most recent call last):
    ...
    ValueError: job 0 of train_networks sets 'seeds': a job may set name, strategy, seed, depth, tasks, tag, cfg
    """
    parallel.check_jobs(jobs, JOB_KEYS, "train_networks")
    # every argument spelled out: train_network's defaults, and the batch's cfg
    jobs = [{**_JOB_DEFAULTS, **job, "cfg": job.get("cfg") or cfg} for job in jobs]
    # one process per run folder: a job given twice (Appendix A's depth 2 is its MTNN) trains once
    folders = {_folder(**job): job for job in jobs}
    todo = [job for folder, job in folders.items()
            if not finished(folder, job["cfg"].multitask.epochs)]
    _, threads = parallel.side_by_side(
        cfg, _train_job, {"cfg": cfg, "train": train_set, "val": val_set, "segmenter": segmenter},
        todo, batch=len(jobs), describe=_describe, progress=progress)
    with parallel.thread_count(threads):  # read back; trains here what no process trained
        return [_train_one(job.pop("cfg"), train_set, val_set, job, segmenter, progress)
                for job in jobs]


def _describe(job: dict) -> str:
    return str({k: v for k, v in job.items() if k != "cfg" and v is not None})


def predict_parameters(result: FitResult, gray: np.ndarray, cfg: Config) -> dict[str, np.ndarray]:
    """The parameters (porosity; moduli in GPa) a trained network predicts for gray slices.

    A single-task network gives its own parameter only.
    """
    tasks = [t for t in REGRESSION if f"train {t.name} loss" in result.history]
    with parallel.network_threads(cfg) as lanes:  # the same bits on any machine
        return predict(result.model, gray, tasks, result.scales,
                       batch_size=cfg.multitask.batch_size, device=cfg.device,
                       precision=cfg.multitask.precision, lanes=lanes)


def trained_parameters(result: FitResult | nn.Module) -> dict[str, int]:
    """Parameter counts of the network a run trained (or of any network).

    Parameters
    ----------
    result : FitResult or nn.Module
        A run of :func:`train_network` (its ``model``), or a network.

    Returns
    -------
    dict
        ``"trainable"`` (what the run fitted), ``"frozen"`` (DMTNN's
        segmenter) and ``"total"``: for the tables that report a network
        beside its scores, counted on the network actually trained (this
        profile's image size, ``width`` and ``head_width``), not at the
        paper's size.
    """
    net = result.model if isinstance(result, FitResult) else result
    if not isinstance(net, nn.Module):
        raise TypeError(f"result must be a FitResult or an nn.Module, got {type(result)}")
    trainable = models.count_parameters(net, trainable=True)
    frozen = models.count_parameters(net, trainable=False)
    return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}


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
    """The strategy other than ``exclude`` whose kept epoch has the lowest validation loss.

    The loss is the history's ``"val selection loss"`` (the task losses summed
    unweighted, on standardised targets: the rule that chose each run's
    epoch, alike for every strategy) at the run's ``best_epoch``; no test data
    is used.
    """
    losses = {s: float(r.history.set_index("epoch").loc[r.best_epoch, "val selection loss"])
              for s, r in runs.items() if s != exclude}
    if not losses:
        raise ValueError(f"no strategy other than {exclude!r}")
    return min(losses, key=losses.get)
