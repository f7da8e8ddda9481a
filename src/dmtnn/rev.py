"""Representative elementary volume (paper section 3.2, Fig. 7).

The paper finds the porosity of 2D windows stable from about 200 px (at
2.25 um, i.e. 450 um) and so treats its 256 x 256 images (1000 native px,
2.25 mm) as representative. We measure, per rock, the porosity of random
square windows of growing size on native-resolution threshold-segmented
slices, and report where its spread falls below a tolerance.
"""

from __future__ import annotations

import pandas as pd
from tqdm.auto import tqdm

from dmtnn.config import Config, config_hash
from dmtnn.data.dataset import native_slices, store_for
from dmtnn.data.real import available, load_real
from dmtnn.morphology import rev_porosity, rev_size
from dmtnn.rocks import get_rock
from dmtnn.settings import show_progress

__all__ = ["PAPER_REV_PX", "PAPER_REV_UM", "porosity_rev", "real_porosity_rev", "rev_table"]

PAPER_REV_PX = 200  # paper, section 3.2
PAPER_REV_UM = PAPER_REV_PX * 2.25


def porosity_rev(cfg: Config, *, progress: bool | None = None) -> dict[str, pd.DataFrame]:
    """Window-porosity curves of every rock's native slices (cached in the run's store)."""
    store = store_for(cfg)
    name = "rev/porosity.json"
    key = config_hash(cfg.rev, cfg.data.native_pixel_um, cfg.data.seed, list(cfg.data.rocks))
    if store.status(name, key) == "ok":
        return {r: pd.DataFrame(rows) for r, rows in store.load_json(name).items()}
    curves = {}
    for rock in tqdm(cfg.data.rocks, desc="REV", disable=not show_progress(progress)):
        rock = get_rock(rock).name
        slices = native_slices(cfg.data, rock, cfg.rev.slices, cfg.rev.field_px)
        curves[rock] = rev_porosity(slices["label"], cfg.rev.sizes, windows=cfg.rev.windows,
                                    rng=cfg.data.seed)
    store.save_json(name, {r: c.to_dict("records") for r, c in curves.items()}, key=key)
    return curves


def real_porosity_rev(cfg: Config, names=("icl_400", "ibm_100")) -> dict[str, pd.DataFrame]:
    """The same curves for the real Berea volumes present on this machine.

    Window sizes are the configured ones (in um at 2.25 um voxels) converted to
    each volume's voxels, keeping those that fit. Returns {name: curve}, with
    the volume's voxel size in ``curve.attrs["voxel_um"]``; empty when none
    is present.
    """
    out = {}
    for name in names:
        if name not in available():
            continue
        volume, voxel = load_real(name)
        n = volume.shape[0]
        stack = volume[:: max(1, n // cfg.rev.slices)][: cfg.rev.slices]
        sizes = sorted({round(s * cfg.data.native_pixel_um / voxel) for s in cfg.rev.sizes})
        sizes = [s for s in sizes if 1 <= s <= volume.shape[1]]
        curve = rev_porosity(stack, sizes, windows=cfg.rev.windows, rng=cfg.data.seed)
        curve.attrs["voxel_um"] = voxel
        out[f"real Berea ({name})"] = curve
    return out


def rev_table(curves: dict[str, pd.DataFrame], voxel_um: dict[str, float], cv_tol: float):
    """REV size per sample (px and um) beside the paper's 200 px (450 um)."""
    rows = []
    for name, curve in curves.items():
        px = rev_size(curve, cv_tol)
        rows.append({
            "sample": name,
            "porosity": float(curve["mean"].iloc[-1]),
            "REV (px)": px,
            "REV (um)": px * voxel_um[name],
            "paper REV (um)": PAPER_REV_UM,
        })
    return pd.DataFrame(rows)
