"""Comparisons of two models: paired differences with their intervals, and the verdicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dmtnn import statistics
from dmtnn.metrics import HIGHER_IS_BETTER, REGRESSION_SCORES
from dmtnn.multitask import REGRESSION
from dmtnn.samples import Samples

if TYPE_CHECKING:
    pass

from dmtnn.reports._regression import UNITS, Predictions, _seeds_of, _train_r2

__all__ = [
    "difference_table",
    "relative_difference",
    "difference_text",
    "overall_verdict",
]


def _per_seed(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def difference_table(predictions: Predictions, truth: Samples, clusters: np.ndarray,
                     comparisons: Sequence[tuple], *, scores: Sequence[str] = ("R2", "RMSE", "MAE"),
                     train: tuple[Predictions, Samples] | None = None, by: np.ndarray | None = None,
                     n_resamples: int = statistics.N_RESAMPLES, level: float = 0.95,
                     method: str = "BCa", seed: int = 0,
                     fit_threshold: float = statistics.FIT_THRESHOLD,
                     relative: bool = False) -> pd.DataFrame:
    """Paired differences of scores, ``a - b`` on the same images, with their cluster
    bootstrap interval and the verdict on "a is better than b".

    Parameters
    ----------
    predictions : dict
        Method -> parameter -> predictions in the order of ``truth``, ``(n,)``
        or ``(n_seeds, n)`` (seeds paired by index; a single row pairs with
        every seed).
    truth : Samples
    clusters : array (n,)
        Cluster (slab or rock) of each image: the bootstrap resamples these.
    comparisons : sequence of tuples
        ``(a, b)`` (every parameter both predict) or ``(a, b, parameters)``:
        the claim is "a is better than b".
    scores : sequence of str
        Names in :data:`dmtnn.metrics.REGRESSION_SCORES` (the relative error
        leaves out zero targets).
    train : (predictions, Samples), optional
        Predictions of the training images: their R2 decides "not decided:
        under-fit" (methods absent there, e.g. a FEM baseline, are not checked).
    by : array (n,), optional
        A group of each image (e.g. its rock's name): rows for each group,
        then for ``"all"`` images.
    n_resamples, level, method, seed
        Of :func:`dmtnn.statistics.paired_difference`.
    fit_threshold : float
        Lowest training R2 that counts as a fit.
    relative : bool
        Also the difference as a fraction of b's score, with its own cluster
        bootstrap (each resample divided by b's score on it): columns
        ``relative``, ``relative low``, ``relative high`` and ``relative seed
        min`` / ``max`` and ``relative seed low`` / ``high`` (the seed
        interval), which :func:`relative_difference` then uses.

    Returns
    -------
    DataFrame indexed by ([group,] a, b, parameter, score): ``unit`` (RMSE,
    MAE: porosity fraction or GPa), ``a mean``, ``a seed std``, ``b mean``,
    ``b seed std`` (each model's score over seeds), ``difference``,
    ``difference low``, ``difference high`` (the interval over clusters),
    ``difference seed std``, ``difference per seed`` (text) and its ``difference
    seed min`` and ``difference seed max``, ``difference seed low`` and
    ``difference seed high`` (the seed interval,
    :func:`dmtnn.statistics.seed_interval`; NaN with one seed), ``verdict``
    (:func:`dmtnn.statistics.verdict`: with several seeds a side needs the seed
    interval and every seed on it), ``interval`` (the method used),
    ``clusters``, ``images``, ``left out``, ``train R2 a`` and ``train R2 b``
    (with ``train``) and ``note`` (why the interval's method differs from the
    one asked for, or why there is none).
    """
    clusters = np.asarray(clusters)
    groups = [(None, np.ones(len(clusters), bool))]
    if by is not None:
        by = np.asarray(by)
        groups = [(str(g), by == g) for g in dict.fromkeys(by)] + [("all", groups[0][1])]
    rows = []
    for group, sel in groups:
        for comp in comparisons:
            a, b = comp[0], comp[1]
            params = comp[2] if len(comp) > 2 else [t.name for t in REGRESSION]
            for name in params:
                pa, pb = _seeds_of(predictions[a], name), _seeds_of(predictions[b], name)
                if pa is None or pb is None:
                    continue
                y = np.asarray(truth.targets[name], float)
                train_r2 = {m: _train_r2(train, m, name) for m in (a, b)}
                for s in scores:
                    keep = sel & (y != 0) if s == "relative error" else sel
                    d = statistics.paired_difference(
                        REGRESSION_SCORES[s], pa[:, keep], pb[:, keep], y[keep], clusters[keep],
                        n_resamples=n_resamples, level=level, method=method, seed=seed)
                    fitted = [v for v in train_r2.values() if v is not None]
                    row = {"group": group, "a": a, "b": b, "parameter": name, "score": s,
                           "unit": "" if s in ("R2", "relative error") else UNITS[name],
                           "a mean": d.a.mean, "a seed std": d.a.std, "b mean": d.b.mean,
                           "b seed std": d.b.std, "difference": d.value,
                           "difference low": d.low, "difference high": d.high,
                           "difference seed std": d.seeds.std,
                           "difference per seed": _per_seed(d.seeds.values),
                           "difference seed min": min(d.seeds.values),
                           "difference seed max": max(d.seeds.values),
                           **dict(zip(("difference seed low", "difference seed high"),
                                      statistics.seed_interval(d.seeds.values, level),
                                      strict=True)),
                           "verdict": statistics.verdict(
                               d, higher_is_better=HIGHER_IS_BETTER[s],
                               train_scores=fitted or None, fit_threshold=fit_threshold),
                           "interval": d.method, "clusters": d.n_clusters,
                           "images": d.n_samples, "left out": d.left_out}
                    if relative:
                        r = statistics.paired_difference(
                            REGRESSION_SCORES[s], pa[:, keep], pb[:, keep], y[keep],
                            clusters[keep], n_resamples=n_resamples, level=level,
                            method=method, seed=seed, relative=True)
                        row.update({"relative": r.value, "relative low": r.low,
                                    "relative high": r.high,
                                    "relative seed min": min(r.seeds.values),
                                    "relative seed max": max(r.seeds.values)})
                        row.update(zip(("relative seed low", "relative seed high"),
                                       statistics.seed_interval(r.seeds.values, level),
                                       strict=True))
                    if train is not None:
                        for m, key in ((a, "train R2 a"), (b, "train R2 b")):
                            row[key] = np.nan if train_r2[m] is None else train_r2[m].mean()
                    row["note"] = d.note
                    rows.append(row)
    index = (["group"] if by is not None else []) + ["a", "b", "parameter", "score"]
    out = pd.DataFrame(rows)
    return (out if by is not None else out.drop(columns="group")).set_index(index)


def relative_difference(table: pd.DataFrame, margin: float) -> pd.DataFrame:
    """The differences of :func:`difference_table` as a fraction of b's score, and the
    verdict on "a is better than b by more than ``margin`` of b's score".

    For readings such as the paper's Table 2, "DMTNN's relative error is more
    than 10 % lower than the CNN's" (``margin=0.10``).

    Parameters
    ----------
    table : DataFrame
        From :func:`difference_table` (its index level ``score`` says which way
        each score is better).
    margin : float
        The fraction of b's score by which a must be better, >= 0 (0: the
        plain paired verdict).

    Returns
    -------
    DataFrame
        ``table`` with ``relative``, ``relative low`` and ``relative high``:
        those of :func:`difference_table` with ``relative=True`` where the
        table has them (the interval of the ratio itself); otherwise the
        difference and its interval divided by ``b mean`` (b's score on the
        same images taken as fixed, its own sampling spread not in the
        interval; NaN where b's mean is not positive); and ``margin
        verdict``: "not decided: under-fit" where ``verdict`` says so, else
        :func:`dmtnn.statistics.verdict` on the relative interval moved by
        ``margin`` ("supported": the whole interval is beyond ``margin`` on
        a's better side; "contradicted": wholly short of it), and so are every
        seed's relative difference and their seed interval where the table has
        them (``relative seed min``, ``max``, ``low`` and ``high``, or those of
        ``difference seed``).

    >>> t = pd.DataFrame({"b mean": [2.0], "difference": [-0.5], "difference low": [-0.8],
    ...                   "difference high": [-0.3], "verdict": ["supported"]},
    ...                  index=pd.MultiIndex.from_tuples([("a", "b", "mu", "MAE")],
    ...                                                  names=["a", "b", "parameter", "score"]))
    >>> r = relative_difference(t, 0.10)
    >>> r[["relative", "relative low", "relative high", "margin verdict"]].values.tolist()
    [[-0.25, -0.4, -0.15, 'supported']]
    """
    if not margin >= 0:
        raise ValueError(f"margin must be a fraction >= 0 (0.10 for 10 %), got {margin}")
    out = table.copy()
    if "relative" not in out:  # b's score taken as fixed
        base = out["b mean"].where(out["b mean"] > 0)
        for col in ("", " low", " high"):
            out[f"relative{col}"] = out[f"difference{col}"] / base
        for m in ("min", "max", "low", "high"):
            if f"difference seed {m}" in out:
                out[f"relative seed {m}"] = out[f"difference seed {m}"] / base
    higher = [HIGHER_IS_BETTER[s] for s in out.index.get_level_values("score")]
    verdicts = []
    for (_, row), up in zip(out.iterrows(), higher, strict=True):
        if row["verdict"] == statistics.VERDICTS[3]:
            verdicts.append(row["verdict"])
            continue
        shift = -margin if up else margin  # a better by the margin: 0 on the moved scale
        moved = SimpleNamespace(low=row["relative low"] + shift,
                                high=row["relative high"] + shift)
        seeds = [row.get(f"relative seed {m}", np.nan) + shift for m in ("min", "max")]
        bounds = tuple(row.get(f"relative seed {m}", np.nan) + shift for m in ("low", "high"))
        verdicts.append(statistics.verdict(moved, higher_is_better=up, seed_differences=seeds,
                                           seed_bounds=bounds))
    out["margin verdict"] = verdicts
    return out


def difference_text(table: pd.DataFrame, a: str, b: str, score: str = "R2", *,
                    digits: int = 2) -> pd.Series:
    """Each parameter's paired difference ``a - b`` and its interval as one short text, for
    :func:`dmtnn.comparison.record` and :func:`dmtnn.tables.prose`.

    Parameters
    ----------
    table : DataFrame
        From :func:`difference_table` without ``by``, holding the comparison ``(a, b)``.
    a, b : str
        The two methods, as in the comparison.
    score : str
        One of the table's scores (R2 is unitless; RMSE and MAE in the parameter's units).
    digits : int
        Decimals of the difference and of its bounds.

    Returns
    -------
    Series of str, indexed by parameter
        ``"+0.12 [+0.05, +0.20]"``: the difference (mean over seeds), then the
        bounds of its cluster bootstrap interval; the difference alone where
        there is no interval.

    >>> t = pd.DataFrame({"a": ["x", "x"], "b": ["y", "y"], "parameter": ["phi", "mu"],
    ...                   "score": ["R2", "R2"], "difference": [0.123, -0.05],
    ...                   "difference low": [0.051, np.nan], "difference high": [0.2, np.nan]}
    ...                  ).set_index(["a", "b", "parameter", "score"])
    >>> difference_text(t, "x", "y").to_dict()
    {'phi': '+0.12 [+0.05, +0.20]', 'mu': '-0.05'}
    """
    if "group" in table.index.names:
        raise ValueError("difference_text: the table has groups (difference_table(..., by=)); "
                         "pick one first, e.g. table.xs('all', level='group')")
    pairs = {(i[0], i[1], i[3]) for i in table.index}
    if (a, b, score) not in pairs:
        raise KeyError(f"difference_text: no rows with a={a!r}, b={b!r}, score={score!r}; the "
                       f"table holds (a, b, score) {sorted(pairs)}")
    out = {}
    for name, row in table.xs((a, b, score), level=("a", "b", "score")).iterrows():
        text = f"{row['difference']:+.{digits}f}"
        low, high = row["difference low"], row["difference high"]
        if np.isfinite(low) and np.isfinite(high):
            text += f" [{low:+.{digits}f}, {high:+.{digits}f}]"
        out[name] = text
    return pd.Series(out, dtype=object, name=f"{a} - {b}, {score}").rename_axis("parameter")


# --------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------

def overall_verdict(outcomes: Mapping[str, str] | Sequence[str]) -> str:
    """One verdict on a reading of the paper tested on several cases (e.g. parameters), for
    :func:`dmtnn.comparison.record`.

    Parameters
    ----------
    outcomes : mapping or sequence of str
        Each case's verdict from :func:`dmtnn.statistics.verdict` (one of
        :data:`dmtnn.statistics.VERDICTS`), e.g. the ``verdict`` column of
        :func:`difference_table` for one score; a mapping (or Series) names
        the cases.

    Returns
    -------
    str
        The common verdict when every case has it; otherwise each verdict
        with its cases (named) or their count, in the order of
        :data:`dmtnn.statistics.VERDICTS`.

    >>> overall_verdict({"phi": "supported", "mu": "supported"})
    'supported'
    >>> overall_verdict({"phi": "supported", "mu": "not separable", "kappa": "supported"})
    'supported for phi, kappa; not separable for mu'
    >>> overall_verdict(["contradicted", "not decided: under-fit", "contradicted"])
    'contradicted for 2; not decided: under-fit for 1 (of 3)'
    """
    named = isinstance(outcomes, Mapping | pd.Series)
    items = list(outcomes.items()) if named else list(enumerate(outcomes))
    if not items:
        raise ValueError("outcomes is empty: give one verdict per case")
    unknown = sorted({str(v) for _, v in items} - set(statistics.VERDICTS))
    if unknown:
        raise ValueError(f"unknown verdicts {unknown}; each must be one of "
                         f"{statistics.VERDICTS} (dmtnn.statistics.verdict)")
    if len({v for _, v in items}) == 1:
        return items[0][1]
    parts = []
    for v in statistics.VERDICTS:
        cases = [str(k) for k, x in items if x == v]
        if cases:
            parts.append(f"{v} for {', '.join(cases) if named else len(cases)}")
    return "; ".join(parts) + ("" if named else f" (of {len(items)})")
