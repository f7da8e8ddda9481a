"""Representative elementary volume (paper section 3.2, Fig. 7).

The paper finds the porosity of 2D images constant from about 200 px (at
2.25 um, i.e. 450 um) and so treats its 256 x 256 images (1000 native px,
2.25 mm) as representative. We measure, per rock, on native-resolution
threshold-segmented slices:

- the porosity of many random square windows of each size: its spread
  (std / mean) shrinks as windows grow; REV where it stays below
  ``rev.cv_tol``;
- the porosity of one centred window growing to the whole slice (the
  classic REV plot): REV where its rms deviation over slices from the
  rock's porosity stays within ``rev.growing_tol``.

The paper does not study the REV of the elastic moduli; :func:`moduli_rev`
adds it (notebook 03): moduli converge more slowly than porosity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from dmtnn.artifacts import store_for
from dmtnn.config import Config, RevConfig, config_hash
from dmtnn.data.dataset import native_slices, synthetic_fingerprint
from dmtnn.data.fem_labels import label_chunk, solver_settings
from dmtnn.data.real import available, load_real
from dmtnn.data.resample import reduce_binary, square_tiles
from dmtnn.morphology import growing_window_porosity, rev_porosity
from dmtnn.rocks import get_rock
from dmtnn.settings import show_progress

__all__ = [
    "RevCurves",
    "rev_curves",
    "rev_slices",
    "moduli_rev",
    "porosity_rev",
    "real_porosity_rev",
]

_VERSION = 2  # of the curves' definition; part of the cache key
_MODULI_VERSION = 2  # of moduli_rev's columns (2: ``phi_*``, the label field's name); cache key


@dataclass(frozen=True)
class RevCurves:
    """Window-porosity curves of one sample (window sizes in its voxels)."""

    random: pd.DataFrame  # rev_porosity: size, mean, std, p05, p95, cv, n
    growing: pd.DataFrame  # growing_window_porosity: size, mean, dev
    voxel_um: float


def rev_curves(solid, sizes, rev: RevConfig, voxel_um: float, seed: int) -> RevCurves:
    """Both REV curves of a stack of binary slices (1 = grain)."""
    return RevCurves(rev_porosity(solid, sizes, windows=rev.windows, rng=seed),
                     growing_window_porosity(solid, sizes), voxel_um)


def _name(rock: str) -> str:
    return get_rock(rock).name


def rev_slices(cfg: Config, rock: str) -> np.ndarray:
    """Native threshold-segmented slices of a separate sample of ``rock`` (cached), (n, F, F).

    ``cfg.rev.slices`` slices of ``cfg.rev.field_px`` px at the native voxel
    size (see :func:`dmtnn.data.dataset.native_slices`); 1 = grain.
    """
    store = store_for(cfg)
    rock = _name(rock)
    name = f"rev/{get_rock(rock).prefix}.npz"
    key = config_hash(cfg.rev.slices, cfg.rev.field_px, cfg.data.native_pixel_um, cfg.data.seed,
                      synthetic_fingerprint(rock))
    if store.status(name, key) != "ok":
        label = native_slices(cfg.data, rock, cfg.rev.slices, cfg.rev.field_px)["label"]
        store.save_arrays(name, {"label": label}, key=key)
    return store.load_arrays(name, key=key)["label"]


def moduli_rev(cfg: Config, *, progress: bool | None = None) -> dict[str, pd.DataFrame]:
    """Spread of the FEM moduli of square windows against window size, per rock (cached).

    The REV slices (:func:`rev_slices`) are reduced to the network's pixel
    size ``cfg.data.pixel_um`` and tiled into non-overlapping windows of 16,
    32, ... px up to the whole field; at most ``rev.moduli_windows`` windows
    per size (a random subset) are labelled with :func:`dmtnn.fem.elastic_moduli`.

    Returns
    -------
    {rock: DataFrame} with one row per size: ``size`` (px), ``size_um``, ``n``,
    and for ``kappa``, ``mu`` (GPa) and ``phi`` (porosity) the ``mean``, ``std``
    and ``cv`` (= std / mean), e.g. ``kappa_cv``. Unconverged windows are dropped.
    """
    settings, device = solver_settings(cfg)
    store = store_for(cfg)
    name = "rev/moduli.json"
    key = config_hash(cfg.rev.slices, cfg.rev.field_px, cfg.data.native_pixel_um,
                      cfg.data.pixel_um, cfg.data.seed, asdict(cfg.fem), cfg.rev.moduli_windows,
                      _VERSION, _MODULI_VERSION,
                      [[r, *synthetic_fingerprint(r)] for r in cfg.data.rocks])
    if store.status(name, key) == "ok":
        saved = store.load_json(name)
        return {r: pd.DataFrame(saved[r]) for r in map(_name, cfg.data.rocks)}
    field = round(cfg.rev.field_px * cfg.data.native_pixel_um / cfg.data.pixel_um)
    sizes = [s for s in (16, 32, 64, 128, 256, 512) if s <= field]
    rng = np.random.default_rng(cfg.data.seed)
    out = {}
    for rock in tqdm(list(map(_name, cfg.data.rocks)), desc="moduli REV",
                     disable=not show_progress(progress)):
        coarse = reduce_binary(rev_slices(cfg, rock), field)
        rows = []
        for size in sizes:
            tiles = square_tiles(coarse, size)
            if len(tiles) > cfg.rev.moduli_windows:
                pick = rng.choice(len(tiles), cfg.rev.moduli_windows, replace=False)
                tiles = tiles[np.sort(pick)]
            a = label_chunk(tiles, settings, device)
            ok = a["converged"]
            row = {"size": size, "size_um": size * cfg.data.pixel_um, "n": int(ok.sum())}
            for q in ("kappa", "mu", "phi"):
                v = a[q][ok]
                row |= {f"{q}_mean": v.mean(), f"{q}_std": v.std(), f"{q}_cv": v.std() / v.mean()}
            rows.append(row)
        out[rock] = pd.DataFrame(rows)
    store.save_json(name, {r: c.to_dict("records") for r, c in out.items()}, key=key)
    return out


def porosity_rev(cfg: Config, *, progress: bool | None = None) -> dict[str, RevCurves]:
    """REV curves of every rock's native slices (cached in the run's store)."""
    store = store_for(cfg)
    name = "rev/porosity.json"
    key = config_hash(cfg.rev, _VERSION, cfg.data.native_pixel_um, cfg.data.seed,
                      [[r, *synthetic_fingerprint(r)] for r in cfg.data.rocks])
    if store.status(name, key) == "ok":
        saved = store.load_json(name)
        return {r: RevCurves(pd.DataFrame(saved[r]["random"]), pd.DataFrame(saved[r]["growing"]),
                             saved[r]["voxel_um"]) for r in map(_name, cfg.data.rocks)}
    curves = {}
    for rock in tqdm(list(map(_name, cfg.data.rocks)), desc="REV",
                     disable=not show_progress(progress)):
        curves[rock] = rev_curves(rev_slices(cfg, rock), cfg.rev.sizes, cfg.rev,
                                  cfg.data.native_pixel_um, cfg.data.seed)
    store.save_json(name, {r: {"random": c.random.to_dict("records"),
                               "growing": c.growing.to_dict("records"),
                               "voxel_um": c.voxel_um} for r, c in curves.items()}, key=key)
    return curves


def real_porosity_rev(cfg: Config, names=("icl_400", "ibm_100")) -> dict[str, RevCurves]:
    """The same curves for the real Berea volumes present on this machine.

    The configured window sizes (in 2.25 um voxels) are converted to each
    volume's voxels, keeping those that fit. Empty when no volume is present.
    """
    out = {}
    for name in names:
        if name not in available():
            continue
        volume, voxel = load_real(name)
        stack = volume[:: max(1, volume.shape[0] // cfg.rev.slices)][: cfg.rev.slices]
        sizes = sorted({round(s * cfg.data.native_pixel_um / voxel) for s in cfg.rev.sizes})
        sizes = [s for s in sizes if 1 <= s <= volume.shape[1]]
        out[f"real Berea ({name})"] = rev_curves(stack, sizes, cfg.rev, voxel, cfg.data.seed)
    return out
