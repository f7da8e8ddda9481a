"""The elastic labels: porosity and moduli of binary images by FEM.

:func:`fem_labels` computes the porosity ``phi``, the 2D bulk modulus ``kappa``,
the shear modulus ``mu`` and the full stiffness ``C`` of every image of a
dataset with :mod:`dmtnn.fem`, for the threshold labels (the paper's labels,
:mod:`dmtnn.data.threshold`) and, on synthetic data, the true geometry.
Results are cached per rock in parts of ``fem.chunk`` images, so a killed run
resumes where it stopped; a solve that did not converge is stored as NaN with
``converged = False`` and must be dropped by every consumer. With a
``dask.distributed`` client the same chunks are mapped over a cluster
(optional: Dask is not a dependency).

:func:`real_labels` and :func:`real_samples` label windows of the real Berea
volumes (:func:`dmtnn.data.real.real_windows`) the same way, and
:func:`trend_ratio` compares a sample's labels with such a reference.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from dmtnn import fem as solver
from dmtnn.artifacts import store_for
from dmtnn.config import Config, config_hash
from dmtnn.data.dataset import Dataset, rock_key
from dmtnn.data.real import real_windows
from dmtnn.morphology import porosity
from dmtnn.rocks import get_rock
from dmtnn.settings import show_progress

__all__ = [
    "fem_labels",
    "label_chunk",
    "solver_settings",
    "LABEL_FIELDS",
    "labels_table",
    "real_labels",
    "real_samples",
    "trend_ratio",
]

#: Arrays of one rock's elastic labels, each with one entry per image. ``phi``, ``mu`` and
#: ``kappa`` are also the names of the networks' tasks (:data:`dmtnn.multitask.REGRESSION`).
LABEL_FIELDS = ("phi", "kappa", "mu", "C", "converged", "n_iter", "seconds")
_FEM_LABELS_VERSION = 2  # of the cached arrays' names and meaning; part of the cache key


def solver_settings(cfg: Config) -> tuple[dict, str | None]:
    """The FEM settings and device of a run, as :func:`label_chunk` takes them."""
    settings = {k: v for k, v in asdict(cfg.fem).items() if k != "kinds"}
    return settings, None if cfg.device == "auto" else cfg.device


def label_chunk(images: np.ndarray, fem: dict, device: str | None = None) -> dict:
    """Porosity and FEM labels of a stack of binary images: the unit of work of :func:`fem_labels`.

    ``fem`` holds :class:`dmtnn.config.FEMConfig` fields (``K``, ``G``: the
    quartz grains' 3D moduli; ``plane``, ``dtype``, ``tol``). A plain function of arrays, so it can be
    shipped to a Dask worker.
    """
    t0 = time.perf_counter()
    res = solver.elastic_moduli(images, phase_moduli={0: (0.0, 0.0), 1: (fem["K"], fem["G"])},
                                plane=fem["plane"], tol=fem["tol"], device=device,
                                dtype=getattr(torch, fem["dtype"]))
    seconds = (time.perf_counter() - t0) / len(images)
    return {"phi": porosity(images, axis=(1, 2)), "kappa": res.kappa, "mu": res.mu,
            "C": res.C, "converged": res.converged, "n_iter": res.n_iter,
            "seconds": np.full(len(images), seconds)}


def fem_labels(
    cfg: Config, dataset: Dataset, *, kinds=None, client=None, progress: bool | None = None
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Porosity and FEM moduli of every image of ``dataset``, cached and resumable.

    Parameters
    ----------
    cfg : Config
        The run; ``cfg.fem`` sets the constants and ``cfg.device`` the device.
    dataset : dmtnn.data.Dataset
        From :func:`dmtnn.data.build_dataset` with the same ``cfg``.
    kinds : sequence of {"label", "truth"}, optional
        Which binary images to label (default ``cfg.fem.kinds``); ``truth`` is
        skipped for real data.
    client : dask.distributed.Client, optional
        Map :func:`label_chunk` over the missing chunks on a Dask cluster
        instead of computing them here; each finished chunk is saved as it
        arrives, so a lost cluster loses only the chunks in flight. Dask is
        optional and only needed when a client is given.
    progress : bool, optional
        Progress bar over chunks; default from :mod:`dmtnn.settings`.

    Returns
    -------
    ``{rock: {kind: arrays}}`` with the arrays of :data:`LABEL_FIELDS`:
    ``phi`` (porosity), ``kappa``, ``mu`` (GPa, per image), ``C`` (N, 3, 3) GPa,
    ``converged``, ``n_iter``, and ``seconds`` (solver time per image).
    """
    store, f = store_for(cfg), cfg.fem
    kinds = f.kinds if kinds is None else kinds
    settings, device = solver_settings(cfg)
    jobs, missing = [], []  # (rock, kind, key, stem, part names); (part name, key, images, label)
    for rock, r in dataset.rocks.items():
        for kind in kinds:
            images = getattr(r, kind)
            if images is None:
                continue
            key = config_hash(settings, _FEM_LABELS_VERSION, rock_key(cfg.data, rock), kind)
            stem = f"labels/{get_rock(rock).prefix}_{kind}"
            parts = [f"{stem}/part{k:04d}.npz" for k in range(-(-len(images) // f.chunk))]
            jobs.append((rock, kind, key, stem, parts))
            if store.status(f"{stem}.npz", key) == "ok":
                continue
            missing += [(name, key, images[k * f.chunk : (k + 1) * f.chunk], f"{rock} ({kind})")
                        for k, name in enumerate(parts) if store.status(name, key) != "ok"]
    bar = tqdm(total=len(missing), desc="FEM labels", unit="chunk",
               disable=not show_progress(progress))
    if client is None:
        for name, key, images, label in missing:
            bar.set_postfix_str(label)
            store.save_arrays(name, label_chunk(images, settings, device), key=key)
            bar.update()
    else:
        from dask.distributed import as_completed  # optional: only with a Dask client

        futures = {client.submit(label_chunk, images, settings, device, pure=False): (name, key)
                   for name, key, images, _ in missing}
        for future in as_completed(futures):
            name, key = futures[future]
            store.save_arrays(name, future.result(), key=key)
            bar.update()
    bar.close()
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for rock, kind, key, stem, parts in jobs:
        if store.status(f"{stem}.npz", key) != "ok":
            loaded = [store.load_arrays(p, key=key) for p in parts]
            merged = {n: np.concatenate([a[n] for a in loaded]) for n in LABEL_FIELDS}
            store.save_arrays(f"{stem}.npz", merged, key=key, config=asdict(f))
            for p in parts:
                store.delete(p)
        out.setdefault(rock, {})[kind] = store.load_arrays(f"{stem}.npz", key=key)
    return out


def labels_table(labels: dict) -> pd.DataFrame:
    """One row per rock and kind: images, converged share, iterations, time, mean labels."""
    rows = []
    for rock, kinds in labels.items():
        for kind, a in kinds.items():
            ok = a["converged"]
            rows.append({
                "rock": rock,
                "image": kind,
                "n": len(ok),
                "converged": ok.mean(),
                "iterations (median)": float(np.median(a["n_iter"])),
                "s / image": float(a["seconds"].mean()),
                "φ": float(a["phi"].mean()),
                "κ (GPa)": float(np.nanmean(a["kappa"])) if ok.any() else np.nan,
                "μ (GPa)": float(np.nanmean(a["mu"])) if ok.any() else np.nan,
            })
    return pd.DataFrame(rows)


def real_labels(cfg: Config, name: str = "icl_400", n_images: int = 48) -> dict[str, np.ndarray]:
    """FEM labels of windows of a real binary volume at the run's pixel size and image size.

    Slices spread through the volume are reduced to ``cfg.data.pixel_um`` and
    cut into non-overlapping ``image_size`` windows
    (:func:`dmtnn.data.real.real_windows`); ``n_images`` of them are labelled
    like the dataset. Raises :class:`dmtnn.data.real.RealDataMissing` when the
    volume is absent.
    """
    images, _ = real_windows(cfg, name, n_images)
    return label_chunk(images, *solver_settings(cfg))


def real_samples(cfg: Config, name: str = "icl_400", n_images: int = 48
                 ) -> dict[str, np.ndarray]:
    """Real geometry as network input: CT-modelled gray windows, their binary and FEM labels.

    The real binary volume is imaged by the project's CT forward model
    (:func:`dmtnn.data.ct.forward`; two phases only: quartz grains and pore),
    reduced to the run's pixel size and cut into windows like
    :func:`real_labels`. Returns ``gray`` (N, S, S) uint8, ``solid`` (the
    binary windows, 1 = grain) and the arrays of :data:`LABEL_FIELDS`.
    Raises :class:`dmtnn.data.real.RealDataMissing` when the volume is absent.
    """
    solid, gray = real_windows(cfg, name, n_images, gray=True)
    return {"gray": gray, "solid": solid, **label_chunk(solid, *solver_settings(cfg))}


def trend_ratio(sample: dict, reference: dict, key: str) -> np.ndarray:
    """Ratio of ``sample[key]`` to the reference's linear trend in porosity, per image.

    The reference (e.g. real Berea windows) is fitted by least squares,
    ``key = a + b * phi``, over its converged images; the ratio is
    evaluated at each sample image's own porosity (converged images only).
    """
    ok = reference["converged"]
    b, a = np.polyfit(reference["phi"][ok], reference[key][ok], 1)
    mine = sample["converged"]
    return sample[key][mine] / (a + b * sample["phi"][mine])
