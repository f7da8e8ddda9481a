"""Regression tables: porosity and moduli scores per seed, method, rock, split and strategy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dmtnn import multitask, statistics
from dmtnn.comparison import PAPER_R2, PAPER_WEIGHTS_R2
from dmtnn.metrics import REGRESSION_SCORES, r2_score
from dmtnn.multitask import REGRESSION
from dmtnn.samples import Samples
from dmtnn.tables import PARAMETER_UNITS as UNITS  # one definition of the units

if TYPE_CHECKING:
    from dmtnn.config import Config
    from dmtnn.train import FitResult


__all__ = [
    "UNITS",
    "SEED_SCORES",
    "Predictions",
    "seed_predictions",
    "seed_table",
    "r2_table",
    "r2_summary",
    "rock_table",
    "scores_by_split",
    "strategy_table",
]


# --------------------------------------------------------------------------------------
# Regression: porosity and moduli, over seeds
# --------------------------------------------------------------------------------------


#: The per-seed scores of :func:`seed_table` (R2 first; the errors in :data:`UNITS`).
SEED_SCORES = ("R2", "RMSE", "MAE", "MSE", "relative error")

#: Predictions of several methods: method -> parameter -> ``(n,)`` or ``(n_seeds, n)``.
Predictions = Mapping[str, Mapping[str, np.ndarray]]


def seed_predictions(runs: Mapping[str, FitResult | Sequence[FitResult]], gray: np.ndarray,
                     cfg: Config) -> dict[str, dict[str, np.ndarray]]:
    """Each network's predictions of ``gray``, one row per seed.

    Parameters
    ----------
    runs : dict
        Name -> a trained run, or its runs over seeds (a list).
    gray : array (n, H, W) uint8
        The slices.
    cfg : Config

    Returns
    -------
    dict
        Name -> parameter -> ``(n_seeds, n)`` predictions (porosity fraction,
        moduli in GPa); a single-task network gives its own parameter only.
    """
    out = {}
    for name, res in runs.items():
        seeds = list(res) if isinstance(res, list | tuple) else [res]
        per = [multitask.predict_parameters(r, gray, cfg) for r in seeds]
        out[name] = {k: np.stack([p[k] for p in per]) for k in per[0]}
    return out


def _seeds_of(pred: Mapping[str, np.ndarray], name: str) -> np.ndarray | None:
    """One method's predictions of parameter ``name`` as ``(n_seeds, n)``, or None."""
    return None if name not in pred else np.atleast_2d(np.asarray(pred[name], float))


def _train_r2(train: tuple[Predictions, Samples] | None, method: str, name: str
              ) -> np.ndarray | None:
    """The training R2 of each seed of ``method`` for parameter ``name`` (None: not trained)."""
    if train is None or method not in train[0] or name not in train[0][method]:
        return None
    p, y = _seeds_of(train[0][method], name), np.asarray(train[1].targets[name], float)
    ok = np.isfinite(p).all(axis=0)
    return statistics.seed_scores(r2_score, p[:, ok], y[ok])


def seed_table(predictions: Predictions, truth: Samples, *,
               train: tuple[Predictions, Samples] | None = None) -> pd.DataFrame:
    """Every score of every seed: one row per method, parameter and seed.

    Parameters
    ----------
    predictions : dict
        Method -> ``{"phi", "mu", "kappa"}`` -> predictions in the order of
        ``truth``, ``(n,)`` or ``(n_seeds, n)``. Images with a NaN prediction of
        any seed (unconverged FEM solves) are left out and counted; parameters
        a method does not predict have no rows.
    truth : Samples
        The labels.
    train : (predictions, Samples), optional
        The same methods' predictions of their training images and those
        labels: adds each seed's ``train R2`` (methods absent there, such as a
        FEM baseline, get NaN).

    Returns
    -------
    DataFrame indexed by (method, parameter, seed) with :data:`SEED_SCORES`
    (RMSE, MAE in :data:`UNITS`; the relative error leaves out zero targets,
    where it is undefined), ``left out`` and, with ``train``, ``train R2``.
    """
    rows = []
    for method, pred in predictions.items():
        for t in REGRESSION:
            p = _seeds_of(pred, t.name)
            if p is None:
                continue
            y = np.asarray(truth.targets[t.name], float)
            ok = np.isfinite(p).all(axis=0)
            nz = ok & (y != 0)
            per = {s: np.full(len(p), np.nan) for s in SEED_SCORES}
            if ok.any():
                for s in SEED_SCORES:
                    keep = nz if s == "relative error" else ok
                    if keep.any():
                        per[s] = statistics.seed_scores(REGRESSION_SCORES[s], p[:, keep],
                                                        y[keep])
            tr = _train_r2(train, method, t.name)
            if tr is not None and len(tr) != len(p):
                raise ValueError(f"{method} {t.name}: {len(tr)} seeds in train, {len(p)} here")
            for k in range(len(p)):
                row = {"method": method, "parameter": t.name, "seed": k,
                       **{s: per[s][k] for s in SEED_SCORES}, "left out": int((~ok).sum())}
                if train is not None:
                    row["train R2"] = np.nan if tr is None else tr[k]
                rows.append(row)
    cols = ["method", "parameter", "seed", *SEED_SCORES, "left out",
            *(["train R2"] if train is not None else [])]
    return pd.DataFrame(rows, columns=cols).set_index(cols[:3])


def r2_table(predictions: Predictions, truth: Samples, *,
             train: tuple[Predictions, Samples] | None = None) -> pd.DataFrame:
    """Per method and parameter: each score's mean and standard deviation over seeds.

    Parameters
    ----------
    predictions, truth, train
        As for :func:`seed_table` (a single seed: ``(n,)`` arrays, std NaN).

    Returns
    -------
    DataFrame indexed by (method, parameter): ``unit`` (of the parameter and
    its RMSE and MAE), ``seeds``, ``R2`` and ``R2 std``; with ``train``,
    ``train R2``, ``train R2 std`` and ``fit`` (:func:`dmtnn.statistics.fit_status`);
    ``RMSE``, ``RMSE std``, ``MAE``, ``MAE std``, ``MSE``, ``relative error``
    (means over seeds) and ``left out``. A parameter a method does not predict
    has NaN scores, 0 seeds and every image left out.
    """
    long = seed_table(predictions, truth, train=train)
    trained = ["train R2"] if train is not None else []
    cols = [*SEED_SCORES, *trained]
    n = len(np.asarray(truth.targets[REGRESSION[0].name]))
    index = pd.MultiIndex.from_product([list(predictions), [t.name for t in REGRESSION]],
                                       names=["method", "parameter"])
    g = long.groupby(level=["method", "parameter"], sort=False)
    mean, std = g[cols].mean().reindex(index), g[cols].std(ddof=1).reindex(index)
    out = pd.DataFrame(index=index)
    out["unit"] = [UNITS[p] for p in index.get_level_values("parameter")]
    out["seeds"] = g.size().reindex(index).fillna(0).astype(int)
    for c in ("R2", *trained):
        out[c], out[f"{c} std"] = mean[c], std[c]
    if train is not None:
        out["fit"] = [None if not np.isfinite(v) else statistics.fit_status(v)
                      for v in mean["train R2"]]
    for c in ("RMSE", "MAE"):
        out[c], out[f"{c} std"] = mean[c], std[c]
    out["MSE"], out["relative error"] = mean["MSE"], mean["relative error"]
    out["left out"] = g["left out"].first().reindex(index).fillna(n).astype(int)
    return out


def r2_summary(table: pd.DataFrame, paper: dict[str, dict[str, float]] | None = None
               ) -> pd.DataFrame:
    """One row per method: test R2 of phi, mu, kappa (mean, and its std over seeds), the
    training R2 where ``table`` has it, and the paper's R2 where it has one.

    ``table`` comes from :func:`r2_table`; ``paper`` maps method names to the
    paper's R2 (default :data:`dmtnn.comparison.PAPER_R2`). Columns ``R2 <p>``,
    ``R2 <p> std``, ``train R2 <p>`` (with training scores), ``paper <p>``.
    """
    paper = PAPER_R2 if paper is None else paper
    names = [t.name for t in REGRESSION]
    methods = table.index.get_level_values("method").unique()  # the table's order
    wide = pd.DataFrame(index=methods)
    for col, label in (("R2", "R2 {}"), ("R2 std", "R2 {} std"), ("train R2", "train R2 {}")):
        if col in table:
            w = table[col].unstack("parameter").loc[methods]
            for n in names:
                wide[label.format(n)] = w[n]
    for n in names:
        wide[f"paper {n}"] = [paper.get(m, {}).get(n, np.nan) for m in wide.index]
    wide.index.name = "method"
    return wide


def _subset(predictions: Predictions, sel: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    return {m: {k: np.asarray(v)[..., sel] for k, v in p.items()} for m, p in predictions.items()}


def rock_table(predictions: Predictions, truth: Samples, rock: np.ndarray, names
               ) -> pd.DataFrame:
    """Per rock, method and parameter: the scores of :func:`r2_table` (mean and std over
    seeds; RMSE and MAE in :data:`UNITS`).

    Parameters
    ----------
    predictions : dict
        Method -> ``{"phi", "mu", "kappa"}`` -> predictions in the order of
        ``truth``, ``(n,)`` or ``(n_seeds, n)`` (NaN predictions are left out).
    truth : Samples
    rock, names : arrays
        Rock index of each image and the rock names (from
        :func:`dmtnn.multitask.regression_samples`).

    Returns
    -------
    DataFrame indexed by (rock, method, parameter), with ``images`` (of the
    rock) before :func:`r2_table`'s columns. Compare methods per rock with
    :func:`difference_table` (``by``), not by these scores side by side.
    """
    rock = np.asarray(rock)
    parts = {}
    for i, name in enumerate(names):
        sel = rock == i
        sub = Samples(truth.gray[sel], {k: v[sel] for k, v in truth.targets.items()})
        t = r2_table(_subset(predictions, sel), sub)
        t.insert(0, "images", int(sel.sum()))
        parts[str(name)] = t
    return pd.concat(parts, names=["rock"])


def scores_by_split(predictions: Mapping[str, Predictions], splits: Mapping[str, Samples], *,
                    scores: Sequence[str] = ("R2", "MAE"),
                    clusters: Mapping[str, np.ndarray] | None = None,
                    n_resamples: int = statistics.N_RESAMPLES, level: float = 0.95,
                    method: str = "BCa", seed: int = 0) -> dict[str, pd.DataFrame]:
    """Scores of several networks on several sets of images (Appendix A tables).

    Parameters
    ----------
    predictions : dict
        Set -> network -> parameter -> predictions of that set's images,
        ``(n,)`` or ``(n_seeds, n)`` (:func:`seed_predictions`).
    splits : dict
        Set -> its labels; a ``"train"`` set puts the training score beside the
        others.
    scores : sequence of str
        Names in :data:`dmtnn.metrics.REGRESSION_SCORES`.
    clusters : dict, optional
        Set -> cluster (slab or rock) of each image: adds ``<set> low`` and
        ``<set> high``, a cluster bootstrap interval of each network's score
        (:func:`dmtnn.statistics.score_interval`); a set it does not name (e.g.
        ``"train"``, whose images have no slab) gets NaN bounds. For one score's
        precision; compare networks with :func:`difference_table`.
    n_resamples, level, method, seed
        The bootstrap's resamples, coverage, interval method and seed.

    Returns
    -------
    dict
        Score name -> frame indexed by (network, parameter), with per set
        ``<set>`` (mean over seeds), ``<set> std`` (over seeds; NaN for one)
        and, with ``clusters``, the interval; NaN where a (single-task) network
        does not predict the parameter. The MAE does not depend on the spread
        of a set's targets, which R2 does (a few similar slices give an
        unstable R2).
    """
    missing = [name for name in splits if name not in predictions]
    if missing:
        raise KeyError(f"no predictions of the sets {missing}: predictions must map each set "
                       f"of splits to its networks' predictions (seed_predictions)")
    nets = list(dict.fromkeys(n for per in predictions.values() for n in per))
    rows: dict[str, list[dict]] = {s: [] for s in scores}
    for net in nets:
        for t in REGRESSION:
            for s in scores:
                row = {"network": net, "parameter": t.name}
                for name, samples in splits.items():
                    p = _seeds_of(predictions[name].get(net, {}), t.name)
                    row[name] = row[f"{name} std"] = np.nan
                    if clusters is not None:
                        row[f"{name} low"] = row[f"{name} high"] = np.nan
                    y = np.asarray(samples.targets[t.name], float)
                    ok = None if p is None else np.isfinite(p).all(axis=0)
                    if p is None or ok.sum() < 2:
                        continue
                    if clusters is None or name not in clusters:
                        v = statistics.summarize_seeds(statistics.seed_scores(
                            REGRESSION_SCORES[s], p[:, ok], y[ok]))
                        row[name], row[f"{name} std"] = v.mean, v.std
                        continue
                    iv = statistics.score_interval(REGRESSION_SCORES[s], p, y, clusters[name],
                                                   n_resamples=n_resamples, level=level,
                                                   method=method, seed=seed)
                    row.update({name: iv.value, f"{name} std": iv.seeds.std,
                                f"{name} low": iv.low, f"{name} high": iv.high})
                rows[s].append(row)
    return {s: pd.DataFrame(r).set_index(["network", "parameter"]) for s, r in rows.items()}


def strategy_table(predictions: Predictions, test: Samples,
                   paper: dict[str, dict[str, float]] | None = None, *,
                   train: tuple[Predictions, Samples] | None = None,
                   scores: Sequence[str] = ("R2", "RMSE", "MAE")) -> pd.DataFrame:
    """Test scores per weighting strategy, mean and standard deviation over seeds, and the
    paper's values, which are *training*-set KPIs (columns ``paper <task> (train)``).

    Parameters
    ----------
    predictions : dict
        Strategy -> parameter -> ``(n_seeds, n)`` test predictions
        (:func:`seed_predictions` of the runs of each strategy).
    test : Samples
        The test labels.
    paper : dict, optional
        Strategy -> the paper's R2 (default :data:`dmtnn.comparison.PAPER_WEIGHTS_R2`).
    train : (predictions, Samples), optional
        The strategies' predictions of the training images: adds ``train R2 <task>
        mean`` and ``std``, our number to set beside the paper's.
    scores : sequence of str
        Among ``"R2"``, ``"RMSE"``, ``"MAE"``: columns ``<score> <task> mean`` and
        ``<score> <task> std`` (RMSE and MAE in :data:`UNITS`).

    Compare two strategies with :func:`difference_table`.
    """
    paper = PAPER_WEIGHTS_R2 if paper is None else paper
    table = r2_table(predictions, test, train=train)
    cols = [*scores, *(["train R2"] if train is not None else [])]
    rows = []
    for strategy in predictions:
        row = {"strategy": strategy, "seeds": int(table.loc[strategy, "seeds"].max())}
        for c in cols:
            for t in REGRESSION:
                row[f"{c} {t.name} mean"] = table.loc[(strategy, t.name), c]
                row[f"{c} {t.name} std"] = table.loc[(strategy, t.name), f"{c} std"]
        for t in REGRESSION:
            row[f"paper {t.name} (train)"] = paper.get(strategy, {}).get(t.name, np.nan)
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")
