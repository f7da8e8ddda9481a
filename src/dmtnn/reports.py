"""The book's result tables and verdicts: scores of predictions set out per method,
rock, split or strategy, beside the paper's numbers, and the words that judge them.

The computation stays where it is (the scores in :mod:`dmtnn.metrics`, the
networks and their predictions in :mod:`dmtnn.multitask` and
:mod:`dmtnn.segmentation`, the REV curves in :mod:`dmtnn.rev`); the paper's
numbers come from :mod:`dmtnn.comparison`. Here:

- regression (notebooks 05 to 08): :func:`r2_table`, :func:`r2_summary`,
  :func:`rock_table`, :func:`scores_by_split`, :func:`strategy_table`;
- segmentation (notebooks 04 and 07): :func:`segmentation_table`,
  :func:`paper_comparison`;
- REV (notebooks 02 and 03): :func:`rev_table`, :func:`moduli_rev_table`;
- verdicts (notebook 08 and the comparison page): :func:`compare_intervals`
  (two intervals), :func:`lower_of` (two rows of a table with intervals) and
  :func:`verdict` (a reading tested on several cases).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dmtnn import multitask
from dmtnn.comparison import PAPER_PA, PAPER_R2, PAPER_REV_UM, PAPER_WEIGHTS_R2
from dmtnn.metrics import bootstrap_ci, mae, mse, r2_score, relative_error, segmentation_scores
from dmtnn.morphology import rev_size, rev_size_growing
from dmtnn.multitask import REGRESSION

if TYPE_CHECKING:
    from dmtnn.config import Config, RevConfig
    from dmtnn.rev import RevCurves
    from dmtnn.samples import Samples
    from dmtnn.train import FitResult

__all__ = [
    "r2_table",
    "r2_summary",
    "rock_table",
    "scores_by_split",
    "strategy_table",
    "segmentation_table",
    "paper_comparison",
    "rev_table",
    "moduli_rev_table",
    "compare_intervals",
    "lower_of",
    "verdict",
]


# --------------------------------------------------------------------------------------
# Regression: porosity and moduli
# --------------------------------------------------------------------------------------

def r2_table(predictions: dict[str, dict[str, np.ndarray]], truth: Samples) -> pd.DataFrame:
    """R2, MSE, MAE and mean relative error per method and parameter.

    Parameters
    ----------
    predictions : dict
        Method -> ``{"phi", "mu", "kappa"}`` -> predictions in the order of ``truth``.
        NaN predictions (unconverged FEM solves) and parameters a method does not
        predict are left out and counted.
    truth : Samples
        The labels.

    Notes
    -----
    The relative error leaves out zero targets (an image without pores has
    porosity 0), where it is undefined.
    """
    rows = []
    for method, pred in predictions.items():
        for t in REGRESSION:
            y = np.asarray(truth.targets[t.name], float)
            p = np.asarray(pred.get(t.name, np.full(len(y), np.nan)), float)
            ok = np.isfinite(p)
            nz = ok & (y != 0)
            row = {"method": method, "parameter": t.name, "R2": np.nan, "MSE": np.nan,
                   "MAE": np.nan, "relative error": np.nan, "left out": int((~ok).sum())}
            if ok.any():  # a method may not predict this parameter at all
                row.update({"R2": r2_score(p[ok], y[ok]), "MSE": mse(p[ok], y[ok]),
                            "MAE": mae(p[ok], y[ok]),
                            "relative error": relative_error(p[nz], y[nz])})
            rows.append(row)
    return pd.DataFrame(rows).set_index(["method", "parameter"])


def r2_summary(table: pd.DataFrame, paper: dict[str, dict[str, float]] | None = None
               ) -> pd.DataFrame:
    """One row per method: our test R2 of phi, mu, kappa and, where it has one, the paper's.

    ``table`` comes from :func:`r2_table`; ``paper`` maps method names to the
    paper's R2 (default :data:`dmtnn.comparison.PAPER_R2`).
    """
    paper = PAPER_R2 if paper is None else paper
    names = [t.name for t in REGRESSION]
    wide = table["R2"].unstack("parameter")[names]
    wide = wide.loc[table.index.get_level_values("method").unique()]  # the table's order
    wide.columns = [f"R2 {n}" for n in names]
    for n in names:
        wide[f"paper {n}"] = [paper.get(m, {}).get(n, np.nan) for m in wide.index]
    return wide


def rock_table(predictions: dict[str, dict[str, np.ndarray]], truth: Samples,
               rock: np.ndarray, names, *, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> pd.DataFrame:
    """Per rock, method and parameter: R2 and MAE with bootstrap intervals over images.

    Parameters
    ----------
    predictions : dict
        Method -> ``{"phi", "mu", "kappa"}`` -> predictions in the order of ``truth``
        (NaN predictions are left out).
    truth : Samples
    rock, names : arrays
        Rock index of each image and the rock names (from
        :func:`dmtnn.multitask.regression_samples`).
    n_boot, level, seed
        Bootstrap resamples, interval coverage and seed
        (:func:`dmtnn.metrics.bootstrap_ci`).
    """
    rows = []
    for i, name in enumerate(names):
        sel = np.asarray(rock) == i
        for method, pred in predictions.items():
            for t in REGRESSION:
                y = np.asarray(truth.targets[t.name], float)[sel]
                p = np.asarray(pred.get(t.name, np.full(len(sel), np.nan)), float)[sel]
                ok = np.isfinite(p)
                row = {"rock": str(name), "method": method, "parameter": t.name,
                       "images": int(ok.sum())}
                if ok.sum() >= 2:
                    r2, lo, hi = bootstrap_ci(r2_score, p[ok], y[ok], n_boot=n_boot,
                                              level=level, seed=seed)
                    m, mlo, mhi = bootstrap_ci(mae, p[ok], y[ok], n_boot=n_boot,
                                               level=level, seed=seed)
                    row.update({"R2": r2, "R2 low": lo, "R2 high": hi,
                                "MAE": m, "MAE low": mlo, "MAE high": mhi})
                rows.append(row)
    return pd.DataFrame(rows).set_index(["rock", "method", "parameter"])


def scores_by_split(runs: dict[str, FitResult], splits: dict[str, Samples], cfg: Config,
                    *, scores=None, n_boot: int = 0, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Scores of several networks on several sets of images (Appendix A tables).

    Each network predicts each set once; every score in ``scores`` (name ->
    ``score(pred, target)``; default R2 and MAE) is computed from those
    predictions. Returns, per score, a frame indexed by (network, parameter)
    with one column per set; NaN where a (single-task) network does not
    predict the parameter. With ``n_boot`` > 0, columns ``<set> low`` and
    ``<set> high`` hold a 95 % bootstrap interval over the set's images. The
    MAE does not depend on the spread of a set's targets, which R2 does (a few
    similar slices give an unstable R2).
    """
    scores = {"R2": r2_score, "MAE": mae} if scores is None else scores
    rows: dict[str, list[dict]] = {name: [] for name in scores}
    for net, res in runs.items():
        preds = {s: multitask.predict_parameters(res, samples.gray, cfg)
                 for s, samples in splits.items()}
        for t in REGRESSION:
            for name, score in scores.items():
                row = {"network": net, "parameter": t.name}
                for s, samples in splits.items():
                    p, y = preds[s].get(t.name), samples.targets[t.name]
                    if p is None:
                        row[s] = np.nan
                    elif n_boot:
                        row[s], row[f"{s} low"], row[f"{s} high"] = bootstrap_ci(
                            score, p, y, n_boot=n_boot, seed=seed)
                    else:
                        row[s] = score(p, y)
                rows[name].append(row)
    return {name: pd.DataFrame(r).set_index(["network", "parameter"])
            for name, r in rows.items()}


def strategy_table(runs: dict[str, list[FitResult]], test: Samples, cfg: Config,
                   paper: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """Test R2 per weighting strategy: mean and standard deviation over seeds, and the
    paper's values, which are *training*-set KPIs (columns ``paper <task> (train)``).

    Parameters
    ----------
    runs : dict
        Strategy -> trained runs, one per seed.
    test : Samples
        The test labels.
    paper : dict, optional
        Strategy -> the paper's R2 (default :data:`dmtnn.comparison.PAPER_WEIGHTS_R2`).
    """
    paper = PAPER_WEIGHTS_R2 if paper is None else paper
    rows = []
    for strategy, results in runs.items():
        r2 = scores_by_split(dict(enumerate(results)), {"test": test}, cfg,
                             scores={"R2": r2_score})["R2"]["test"]
        r2 = r2.unstack("parameter")  # one row per seed
        row = {"strategy": strategy, "seeds": len(results)}
        for t in REGRESSION:
            v = r2[t.name].to_numpy()
            row[f"R2 {t.name} mean"] = v.mean()
            row[f"R2 {t.name} std"] = v.std(ddof=1) if len(v) > 1 else np.nan
        for t in REGRESSION:
            row[f"paper {t.name} (train)"] = paper.get(strategy, {}).get(t.name, np.nan)
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


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


# --------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------

def compare_intervals(first: tuple[float, float], second: tuple[float, float]) -> str:
    """Which of two scores is higher, judged by their (low, high) intervals.

    "first higher" or "second higher" when the intervals do not overlap, else
    "not separable" (also when a bound is NaN: no interval, no verdict).

    >>> compare_intervals((0.8, 0.9), (0.5, 0.7)), compare_intervals((0.5, 0.7), (0.6, 0.9))
    ('first higher', 'not separable')
    """
    (a_low, a_high), (b_low, b_high) = first, second
    if a_low > b_high:
        return "first higher"
    if b_low > a_high:
        return "second higher"
    return "not separable"


def lower_of(table: pd.DataFrame, first: str, second: str, parameter: str, split: str) -> str:
    """Which of two rows has the lower score beyond both intervals: "first", "second" or
    "neither".

    Parameters
    ----------
    table : DataFrame
        Indexed by (network, parameter), with columns ``<split> low`` and
        ``<split> high`` (from :func:`scores_by_split` with ``n_boot`` > 0).
    first, second : str
        The two networks, in the order the answer refers to: "first" means
        ``first``'s score is lower. For an error such as the MAE, lower is better.
    parameter, split : str
        The row's parameter and the set of images.

    Returns
    -------
    str
        "first" or "second" (the positions, not the names: the notebooks print
        them after a header saying which is which), or "neither" when the
        intervals overlap or a bound is NaN (:func:`compare_intervals`).
    """
    a, b = table.loc[(first, parameter)], table.loc[(second, parameter)]
    higher = compare_intervals((a[f"{split} low"], a[f"{split} high"]),
                               (b[f"{split} low"], b[f"{split} high"]))
    return {"first higher": "second", "second higher": "first"}.get(higher, "neither")


def verdict(supported: int, contradicted: int, of: int) -> str:
    """The verdict on a reading of the paper tested on ``of`` cases (e.g. parameters),
    for :func:`dmtnn.comparison.record`.

    ``supported`` and ``contradicted`` count the cases where our data show the
    paper's side, or the other side, beyond the intervals.

    >>> verdict(2, 0, 3), verdict(0, 1, 3), verdict(1, 1, 3), verdict(0, 0, 3)
    ('supported for 2 of 3', 'contradicted for 1 of 3', 'mixed: supported for 1, contradicted for 1 of 3', 'not separable')
    >>> verdict(1, 0, 1)
    'supported'
    """
    if not 0 <= supported + contradicted <= of:
        raise ValueError(f"{supported} + {contradicted} cases out of {of}")
    tail = "" if of == 1 else f" of {of}"
    if supported and contradicted:
        return f"mixed: supported for {supported}, contradicted for {contradicted}{tail}"
    if supported:
        return f"supported{'' if of == 1 else f' for {supported}'}{tail}"
    if contradicted:
        return f"contradicted{'' if of == 1 else f' for {contradicted}'}{tail}"
    return "not separable"
