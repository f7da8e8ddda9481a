"""Segmentation of grayscale slices: the networks and the threshold baseline.

The paper's segmenter (section 4.1, Fig. 9) is a LinkNet trained with binary
cross-entropy on the threshold labels, then frozen inside DMTNN. Here:

- :func:`train_segmenter` trains LinkNet (or the U-Net baseline) through the
  one training loop (:func:`dmtnn.train.fit`) on a dataset's train split,
  selecting the epoch by validation pixel accuracy; :func:`train_segmenters`
  trains several side by side (:mod:`dmtnn.parallel`);
- :func:`load_segmenter` gives the trained network back to later notebooks;
- :func:`threshold_baseline` is the classical method: Otsu's threshold of each
  grayscale image itself;
- :func:`dmtnn.reports.segmentation_table` scores any set of predicted masks
  per rock against the labels or, for synthetic rocks, the true geometry.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from dmtnn import models, parallel
from dmtnn.checkpoints import finished, load_checkpoint, run_folder
from dmtnn.config import Config
from dmtnn.data.dataset import Dataset
from dmtnn.data.scanners import scanner_slices
from dmtnn.data.threshold import threshold_segment
from dmtnn.images import ImageWarning, as_stack, as_uint8_stack, check_side, contrast_warning
from dmtnn.samples import SEGMENTATION, Samples
from dmtnn.settings import show_progress
from dmtnn.train import FitResult, fit, predict, seed_everything

__all__ = [
    "ARCHITECTURES",
    "segmentation_samples",
    "segmenter_kwargs",
    "train_segmenter",
    "train_segmenters",
    "SEGMENTER_JOB_KEYS",
    "load_segmenter",
    "segment",
    "threshold_baseline",
    "scanner_masks",
]

log = logging.getLogger(__name__)

#: Segmentation networks by name (from :data:`dmtnn.models.REGISTRY`): the paper's
#: LinkNet and the U-Net baseline.
ARCHITECTURES = models.names("segmentation")

#: Side multiples of the segmenters' classes (their down-sampling; registry ``multiple``).
_MULTIPLE = {"LinkNet": models.REGISTRY["linknet"].multiple, "UNet": models.REGISTRY["unet"].multiple}


def segmentation_samples(ds: Dataset, split: str, target: str = "label") -> Samples:
    """Gray slices and masks of one split of every rock (``target``: "label" or "truth")."""
    s = ds.split(split)
    if target not in s:
        raise KeyError(f"the {split} split has no {target!r} masks (have: label"
                       f"{', truth' if 'truth' in s else ''})")
    return Samples(s["gray"], {"mask": s[target]})


def segmenter_kwargs(cfg: Config) -> dict:
    """The registry builder's arguments of a profile's segmenters (JSON values)."""
    return {"in_channels": 1, "width": cfg.segmenter.width,
            "input_norm": cfg.segmenter.input_norm}


def _build(cfg: Config, arch: str) -> nn.Module:
    """Segmenter ``arch`` of the registry, initialised from ``cfg.segmenter.seed``."""
    spec = models.network(arch, "segmentation")
    seed_everything(cfg.segmenter.seed, 0)  # the initial weights
    return spec.build(**segmenter_kwargs(cfg))


def _run_name(arch: str, name: str | None = None) -> str:
    """The run folder's name of segmenter ``arch`` (``segmenter-<arch>``), or ``name``."""
    return name or f"segmenter-{arch}"


def train_segmenter(
    cfg: Config, ds: Dataset, arch: str = "linknet", *, progress: bool | None = None,
    name: str | None = None,
) -> FitResult:
    """Train (or resume, or load the finished) segmenter ``arch`` on the threshold labels.

    The run lives in ``artifacts/<profile>/models/segmenter-<arch>`` (or
    ``models/<name>``: a variant such as the paper's input handling,
    ``cfg.segmenter`` changed). A run made under another configuration or
    other data is started afresh. It trains on ``cfg.train_threads`` threads
    (:mod:`dmtnn.parallel`).
    """
    return _fit_segmenter(cfg, segmentation_samples(ds, "train"), segmentation_samples(ds, "val"),
                          arch, name, progress)


def _fit_segmenter(cfg: Config, train_set: Samples, val_set: Samples, arch: str,
                   name: str | None, progress: bool | None) -> FitResult:
    model = _build(cfg, arch)
    folder = run_folder(cfg, _run_name(arch, name))
    with parallel.network_threads(cfg):
        return fit(model, SEGMENTATION, train_set, val_set, cfg.segmenter, folder,
                   device=cfg.device, on_mismatch="restart", progress=progress)


#: What a job of :func:`train_segmenters` may set: :func:`train_segmenter`'s ``arch`` and
#: ``name``, and ``cfg`` for a variant trained under another configuration.
SEGMENTER_JOB_KEYS = ("arch", "name", "cfg")


def train_segmenters(cfg: Config, ds: Dataset, jobs: Sequence[Mapping[str, Any]], *,
                     progress: bool | None = None) -> list[FitResult]:
    """Train several segmenters (LinkNet, the U-Net, variants) side by side on a CPU.

    Each job is a dict of :data:`SEGMENTER_JOB_KEYS` (``arch``, default
    ``"linknet"``; ``name``; ``cfg`` where the job's configuration differs
    from ``cfg``). The jobs are shared among :func:`dmtnn.parallel.plan`'s
    processes, started in the order given (put the longest first); each
    writes its run as :func:`train_segmenter` does, and the runs are read
    back here in the order of ``jobs``, with the same numbers as one at a time.

    >>> from dmtnn.config import load_profile
    >>> train_segmenters(load_profile("ci"), None, [{"arch": "unet", "epochs": 2}])
    Traceback (most recent call last):
    ...
    ValueError: job 0 of train_segmenters sets 'epochs': a job may set arch, name, cfg
    """
    parallel.check_jobs(jobs, SEGMENTER_JOB_KEYS, "train_segmenters")
    jobs = [{"arch": "linknet", **job, "cfg": job.get("cfg") or cfg} for job in jobs]
    for job in jobs:  # the run folder's name, spelled out once
        job["name"] = _run_name(job["arch"], job.get("name"))
    train_set, val_set = segmentation_samples(ds, "train"), segmentation_samples(ds, "val")
    todo = [job for job in jobs
            if not finished(run_folder(job["cfg"], job["name"]), job["cfg"].segmenter.epochs)]
    _, threads = parallel.side_by_side(
        cfg, _segmenter_job, {"train": train_set, "val": val_set}, todo, batch=len(jobs),
        describe=lambda job: job["name"], desc="segmenters", progress=progress)
    with parallel.thread_count(threads):  # read back; trains here what no process trained
        return [_fit_segmenter(job["cfg"], train_set, val_set, job["arch"], job["name"], progress)
                for job in jobs]


def _segmenter_job(shared: dict, job: dict) -> None:
    _fit_segmenter(job["cfg"], shared["train"], shared["val"], job["arch"], job["name"],
                   progress=False)


def load_segmenter(cfg: Config, arch: str = "linknet") -> tuple[nn.Module, dict]:
    """The trained segmenter of a profile (best validation epoch) and its input scale.

    The run is looked for under :func:`dmtnn.artifacts.artifacts_root`
    (``$DMTNN_ARTIFACTS``, else ``artifacts/`` of the checkout, else of the
    working directory). Weights shipped without their run are read by
    :func:`dmtnn.weights.load_network` instead.

    Raises
    ------
    FileNotFoundError
        If notebook 04 (``train_segmenter``) has not run for this profile.
    CheckpointMismatch
        If the checkpoint was trained under other training settings.
    """
    model = _build(cfg, arch)
    path = run_folder(cfg, _run_name(arch)) / "best.pt"
    if not path.exists():
        raise FileNotFoundError(
            f"no trained {arch} segmenter at {path}: run notebook 04_segmenter (or "
            f"train_segmenter) for profile {cfg.profile!r}, point DMTNN_ARTIFACTS at the "
            f"folder holding {cfg.profile}/models/, or use shipped weights instead: "
            f"dmtnn.weights.load_network('weights/{arch}')")
    state = load_checkpoint(path, model, expect={"train": asdict(cfg.segmenter)})
    return model.eval(), state["scales"]


def segment(model: nn.Module, scales: dict, gray: np.ndarray, cfg: Config) -> np.ndarray:
    """Masks (N, H, W) uint8, 1 = grain, of a trained segmenter for gray slices.

    Parameters
    ----------
    model : nn.Module
        A segmenter of :data:`ARCHITECTURES` (from :func:`load_segmenter`).
    scales : dict
        Its training input scale (``"input"``: mean, std of gray / 255).
    gray : array (H, W) or (N, H, W)
        Grayscale slices at the training pixel size, sides multiples of the
        network's down-sampling (32 for LinkNet, 16 for U-Net). Checked by
        :func:`dmtnn.images.as_uint8_stack`: RGB, 4D, NaN and too small inputs
        are refused; other dtypes than uint8 are rescaled (0.5th / 99.5th
        percentiles to 0 / 255) with a warning, and near-constant or
        noise-like slices are warned about, as is a result that looks like
        inverted contrast. For images of any size and pixel size, use
        :func:`dmtnn.predict.predict_stack` (resampling, windows).
    cfg : Config
        Batch size, device and threads (``train_threads``: :mod:`dmtnn.parallel`).
    """
    gray, _ = as_uint8_stack(gray, "gray")
    check_side(gray, _MULTIPLE.get(type(model).__name__, 32), "gray",
               " dmtnn.predict.predict_stack tiles images of any size into windows of the "
               "trained size.")
    with parallel.network_threads(cfg) as lanes:  # the same bits on any machine
        masks = predict(model, gray, SEGMENTATION, scales, batch_size=cfg.segmenter.batch_size,
                        device=cfg.device, precision=cfg.segmenter.precision,
                        lanes=lanes)["mask"]
    flagged = contrast_warning(gray, masks, "gray")
    if flagged:
        warnings.warn(flagged, ImageWarning, stacklevel=2)
    return masks


def threshold_baseline(gray: np.ndarray) -> np.ndarray:
    """Otsu's threshold applied to each grayscale image on its own: masks (N, H, W), 1 = grain.

    The classical method the paper compares against: no labels, no training.
    (The labels themselves threshold each rock's denoised native-resolution
    scan, so this baseline does not see exactly what made them.)

    ``gray`` is an image (H, W) or a stack (N, H, W) of any real dtype (Otsu's
    threshold does not depend on the gray scale); RGB, 4D, NaN and too small
    inputs are refused as by :func:`dmtnn.images.as_stack`.
    """
    gray = as_stack(gray, "gray")
    return np.stack([threshold_segment(g) for g in gray])


def scanner_masks(
    cfg: Config, segmenters: dict[str, tuple[nn.Module, dict]], rocks: Sequence[str], n: int,
    *, threshold: bool = True, progress: bool | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Segmentations of the same slices rendered by every scanner, and their true geometry.

    Renders ``n`` slices of each of ``rocks`` with every scanner of
    :data:`dmtnn.data.scanners.SCANNERS` (:func:`~dmtnn.data.scanners.scanner_slices`),
    segments each rendering with every segmenter (name -> (model, scales)) as
    a user would (:func:`segment`: a uint16 rendering is rescaled by its
    percentiles; its warning is expected here and silenced) and, with
    ``threshold``, Otsu's threshold per image.

    Returns
    -------
    masks : dict
        Method -> {scanner -> masks (N, S, S)}, the rocks' slices in order.
    truth : (N, S, S) uint8
        Their true geometry. ``dmtnn.reports.scanner_table(masks, truth)``
        scores them.
    """
    truth, masks = [], {name: {} for name in segmenters}
    if threshold:
        masks["threshold (Otsu per image)"] = {}
    for rock in tqdm(rocks, desc="scanners", unit="rock", disable=not show_progress(progress)):
        sl = scanner_slices(cfg.data, rock, n)
        truth.append(sl["truth"])
        for scanner, gray in sl["gray"].items():
            for name, (model, scales) in segmenters.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ImageWarning)
                    masks[name].setdefault(scanner, []).append(segment(model, scales, gray, cfg))
            if threshold:
                masks["threshold (Otsu per image)"].setdefault(scanner, []).append(
                    threshold_baseline(gray))
    stacked = {m: {s: np.concatenate(v) for s, v in by.items()} for m, by in masks.items()}
    return stacked, np.concatenate(truth)
