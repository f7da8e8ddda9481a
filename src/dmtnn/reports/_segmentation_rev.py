"""Segmentation scores beside the paper's (notebooks 04, 07) and REV tables (02, 03)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dmtnn.comparison import PAPER_PA, PAPER_REV_UM
from dmtnn.metrics import pixel_accuracy, porosity_error, segmentation_scores
from dmtnn.morphology import rev_size, rev_size_growing

if TYPE_CHECKING:
    from dmtnn.config import RevConfig
    from dmtnn.rev import RevCurves


__all__ = [
    "segmentation_table",
    "paper_comparison",
    "scanner_table",
    "rev_table",
    "moduli_rev_table",
]


# --------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------

def segmentation_table(
    test: dict[str, np.ndarray],
    predictions: dict[str, np.ndarray],
    reference: str = "label",
) -> pd.DataFrame:
    """Scores per rock and method, plus the all-grain floor and the pooled mean.

    Parameters
    ----------
    test : dict
        A split from :meth:`Dataset.split`: ``rock`` indices, ``names`` and the
        ``reference`` masks.
    predictions : dict of str to (N, H, W) masks
        Method name -> predicted masks in the order of ``test``.
    reference : {"label", "truth"}
        Score against the threshold labels or the true geometry.

    Returns
    -------
    DataFrame indexed by (rock, method) with PA, pore IoU, pore Dice and the
    porosity error; rock ``"all"`` pools every test image.
    """
    if reference not in test:
        raise KeyError(f"no {reference!r} masks in the test split")
    ref = test[reference]
    methods = {**predictions, "all grain": np.ones_like(ref)}
    rows = []
    groups = [(str(test["names"][i]), test["rock"] == i) for i in np.unique(test["rock"])]
    for rock, sel in [*groups, ("all", np.ones(len(ref), bool))]:
        for method, pred in methods.items():
            if pred.shape != ref.shape:
                raise ValueError(f"{method}: predictions {pred.shape} vs reference {ref.shape}")
            rows.append({"rock": rock, "method": method,
                         **segmentation_scores(pred[sel], ref[sel])})
    return pd.DataFrame(rows).set_index(["rock", "method"])


def paper_comparison(table: pd.DataFrame, methods: dict[str, str]) -> pd.DataFrame:
    """Our pooled test PA of each method beside the paper's words.

    Parameters
    ----------
    table : DataFrame
        From :func:`segmentation_table` (uses its ``"all"`` rows).
    methods : dict
        Our method name -> key of :data:`dmtnn.comparison.PAPER_PA`.
    """
    rows = [{"method": ours, "PA (ours)": table.loc[("all", ours), "PA"],
             "PA (paper)": PAPER_PA[paper]} for ours, paper in methods.items()]
    return pd.DataFrame(rows).set_index("method")


def scanner_table(masks: dict[str, dict[str, np.ndarray]], truth: np.ndarray,
                  reference: str = "default") -> pd.DataFrame:
    """How a method's segmentation changes when the same slices come from another scanner.

    Parameters
    ----------
    masks : dict
        Method -> {scanner -> predicted masks (N, H, W)}, every scanner
        rendering the same slices (:func:`dmtnn.data.scanners.scanner_slices`).
    truth : (N, H, W)
        The true geometry of those slices.
    reference : str
        The scanner the others are compared with (the training rendering).

    Returns
    -------
    DataFrame indexed by (method, scanner): ``PA`` against the truth and its
    change from the reference scanner's (``PA change``), the mean absolute
    porosity error against the truth per image (``|porosity error|``), and the
    mean absolute per-image porosity difference from the reference scanner's
    masks (``|porosity change|``). The goal of a scanner-robust segmenter:
    ``PA change`` above -0.01 and ``|porosity change|`` below 0.01.
    """
    rows = []
    for method, by_scanner in masks.items():
        if reference not in by_scanner:
            raise KeyError(f"{method}: no masks of the reference scanner {reference!r}")
        ref = by_scanner[reference]
        ref_pa = pixel_accuracy(ref, truth)
        for scanner, pred in by_scanner.items():
            if pred.shape != truth.shape:
                raise ValueError(f"{method}, {scanner}: masks {pred.shape} vs truth "
                                 f"{truth.shape}")
            pa = pixel_accuracy(pred, truth)
            rows.append({
                "method": method, "scanner": scanner, "PA": pa, "PA change": pa - ref_pa,
                "|porosity error|": float(np.abs(porosity_error(pred, truth, per_image=True))
                                          .mean()),
                "|porosity change|": float(np.abs(porosity_error(pred, ref, per_image=True))
                                           .mean()),
            })
    return pd.DataFrame(rows).set_index(["method", "scanner"])


# --------------------------------------------------------------------------------------
# REV
# --------------------------------------------------------------------------------------

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


def moduli_rev_table(curves: dict[str, pd.DataFrame], cv_tol: float) -> pd.DataFrame:
    """Per rock, the smallest window (um) from which the spread of κ, μ and porosity stays
    below ``cv_tol`` (NaN: not within the field), and the spreads at the network's image size."""
    rows = []
    for rock, df in curves.items():
        row = {"rock": rock}
        for q, label in (("kappa", "κ"), ("mu", "μ"), ("phi", "φ")):
            px = rev_size(df.rename(columns={f"{q}_cv": "cv"}), cv_tol)
            row[f"REV {label} (µm)"] = px * float(df["size_um"].iloc[0] / df["size"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)
