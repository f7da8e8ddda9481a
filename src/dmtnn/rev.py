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
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from dmtnn.config import Config, RevConfig, config_hash
from dmtnn.data.dataset import native_slices, store_for, synthetic_fingerprint
from dmtnn.data.real import available, load_real
from dmtnn.morphology import growing_window_porosity, rev_porosity, rev_size, rev_size_growing
from dmtnn.rocks import get_rock
from dmtnn.settings import show_progress

__all__ = [
    "PAPER_REV_PX",
    "PAPER_REV_UM",
    "RevCurves",
    "rev_curves",
    "porosity_rev",
    "real_porosity_rev",
    "rev_table",
]

PAPER_REV_PX = 200  # paper, section 3.2
_VERSION = 2  # of the curves' definition; part of the cache key
PAPER_REV_UM = PAPER_REV_PX * 2.25


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
        slices = native_slices(cfg.data, rock, cfg.rev.slices, cfg.rev.field_px)
        curves[rock] = rev_curves(slices["label"], cfg.rev.sizes, cfg.rev,
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


def rev_table(curves: dict[str, RevCurves], rev: RevConfig) -> pd.DataFrame:
    """REV per sample by both criteria (``rev.cv_tol``, ``rev.growing_tol``), in um,
    beside the paper's 200 px (450 um)."""
    rows = []
    for name, c in curves.items():
        rows.append({
            "sample": name,
            "φ": float(c.random["mean"].iloc[-1]),
            "field (µm)": float(c.random["size"].iloc[-1] * c.voxel_um),
            "REV, spread (µm)": rev_size(c.random, rev.cv_tol) * c.voxel_um,
            "REV, growing (µm)": rev_size_growing(c.growing, rev.growing_tol) * c.voxel_um,
            "paper (µm)": PAPER_REV_UM,
        })
    return pd.DataFrame(rows)
