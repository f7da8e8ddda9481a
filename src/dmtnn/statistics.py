"""Comparing models honestly: paired score differences, cluster bootstrap intervals over
slabs or rocks, several seeds, and the verdict an interval supports.

Why not one interval per model over images. The test slices of a rock are
near-duplicates (adjacent slices of one slab; most of the test variance lies
between rock means), so resampling images as if they were independent gives
intervals far too narrow; and two models scored on the *same* images share
most of their error, so two overlapping per-model intervals say little about
the difference. And a network's score depends on its seed about as much as on
its architecture. The rules here:

- **paired**: the claim "a is better than b" is judged on the score difference
  ``score(a) - score(b)`` on the same samples (:func:`paired_difference`);
- **clusters**: the interval resamples clusters (slabs or rocks, one id per
  sample), not images: a resample draws clusters with replacement and the
  score is recomputed on the pooled samples of the drawn clusters. The
  resampling is :func:`scipy.stats.bootstrap`'s (BCa by default; percentile,
  with the reason recorded, where BCa is undefined or has too few clusters);
- **seeds**: predictions may come as ``(n_seeds, n_samples)``; the statistic
  is the score averaged over seeds (seeds of a and b paired by index), so the
  interval covers the sampling of the data while the seed-to-seed spread is
  reported beside it (:class:`SeedSummary`);
- **verdict**: "supported", "contradicted" or "not separable" from where the
  interval lies against 0, and "not decided: under-fit" when a network does
  not fit its own training data (training R2 below :data:`FIT_THRESHOLD`)
  (:func:`verdict`, :func:`fit_status`). The interval does not cover the
  seed-to-seed spread, and a claim about a training recipe must hold against
  both: with several seeds a side is taken only when the seed interval
  (Student's t on the per-seed differences, :func:`seed_interval`) and every
  seed's difference lie on it too. With two seeds the t quantile is 12.7, so
  two seeds decide only a difference far larger than their spread: two
  clean-clone quick runs (two seeds per weighting strategy) found dynamic -
  1:10:3 in mu +0.024 [+0.011, +0.038], both seeds positive, in one and
  +0.000 [-0.012, +0.014] in the other; a side taken on two agreeing seeds is
  taken by chance half the time when there is no difference.

Few clusters give too narrow an interval whatever the method: read
``n_clusters`` beside every interval. With one cluster there is nothing to
resample and no interval (NaN bounds, method ``"none"``).

This module computes; :mod:`dmtnn.reports` sets the results out in tables. The
scores themselves (``score(pred, target) -> float``) come from
:mod:`dmtnn.metrics`.

>>> import numpy as np
>>> from dmtnn.metrics import mae
>>> target = np.arange(12.0)
>>> clusters = np.repeat([0, 1, 2, 3, 4, 5], 2)
>>> d = paired_difference(mae, target + 0.5, target + 2.0, target, clusters, n_resamples=200)
>>> d.value, d.low, d.high, d.method
(-1.5, -1.5, -1.5, 'percentile')
>>> verdict(d, higher_is_better=False)
'supported'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "FIT_THRESHOLD",
    "MIN_BCA_CLUSTERS",
    "N_RESAMPLES",
    "VERDICTS",
    "SeedSummary",
    "Interval",
    "Difference",
    "seed_interval",
    "seed_scores",
    "summarize_seeds",
    "score_interval",
    "paired_difference",
    "fit_status",
    "verdict",
    "TIME_MARGIN",
    "time_verdict",
]

#: A network fits its training data when its training R2 (mean over seeds) reaches this.
FIT_THRESHOLD = 0.8

#: Fewest clusters for a BCa interval: BCa's acceleration comes from a jackknife over
#: the clusters, and 4 clusters allow only 35 distinct resamples (5 allow 126).
MIN_BCA_CLUSTERS = 5

#: Default number of bootstrap resamples.
N_RESAMPLES = 2000

#: The four verdicts on a claim "a is better than b", in the order tables list them.
VERDICTS = ("supported", "contradicted", "not separable", "not decided: under-fit")

#: How many times longer one step must take than another before a claim about their times
#: takes a side. Wall times on one machine move with the threads and the load: the quick
#: profile's FEM labelling took 233 s on one thread and 169 s on two, and a DMTNN run 200 s
#: alone on one thread against 184 s beside another run (clean-clone runs of e9c94da).
TIME_MARGIN = 2.0

_METHODS = ("BCa", "percentile", "basic")

Score = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class SeedSummary:
    """One number per seed, and their mean and sample standard deviation.

    ``std`` uses ``ddof=1`` and is NaN for a single seed (no spread measured).
    """

    values: tuple[float, ...]
    mean: float
    std: float


@dataclass(frozen=True)
class Interval:
    """A score (averaged over seeds) and its cluster bootstrap interval.

    Attributes
    ----------
    value : float
        The score of all samples, averaged over seeds.
    low, high : float
        The interval's bounds (NaN: no interval, see ``note``).
    level : float
        Its coverage, e.g. 0.95.
    method : {"BCa", "percentile", "basic", "none"}
        The interval actually computed (``"none"``: no interval).
    note : str
        Why ``method`` differs from the one asked for, or why there is no
        interval; empty otherwise.
    n_clusters, n_samples : int
        Clusters resampled and samples scored (after leaving out NaNs).
    left_out : int
        Samples left out because a prediction (any seed) or the target is NaN.
    seeds : SeedSummary
        The score of each seed on all samples.
    """

    value: float
    low: float
    high: float
    level: float
    method: str
    note: str
    n_clusters: int
    n_samples: int
    left_out: int
    seeds: SeedSummary

    @property
    def width(self) -> float:
        """``high - low`` (NaN without an interval)."""
        return self.high - self.low

    @property
    def n_seeds(self) -> int:
        """Seeds (seed pairs, for a difference) behind ``value``."""
        return len(self.seeds.values)


@dataclass(frozen=True)
class Difference(Interval):
    """A paired score difference ``score(a) - score(b)`` and its cluster bootstrap interval.

    The fields of :class:`Interval` describe the difference (``seeds``: the
    difference of each seed pair); ``a`` and ``b`` are each model's own score
    per seed on the same samples.
    """

    a: SeedSummary
    b: SeedSummary


def summarize_seeds(values) -> SeedSummary:
    """Mean and standard deviation (ddof 1; NaN for one seed) of per-seed values.

    >>> summarize_seeds([0.5, 0.7])
    SeedSummary(values=(0.5, 0.7), mean=0.6, std=0.14142135623730948)
    """
    v = np.atleast_1d(np.asarray(values, dtype=float))
    if v.ndim != 1 or not len(v):
        raise ValueError(f"values must be a non-empty 1D sequence (one per seed), got shape "
                         f"{v.shape}")
    std = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    return SeedSummary(tuple(float(x) for x in v), float(v.mean()), std)


def _seeds(pred, n: int, name: str) -> np.ndarray:
    """Predictions as ``(n_seeds, n)`` floats."""
    p = np.asarray(pred, dtype=float)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != n or not len(p):
        raise ValueError(f"{name} must have shape (n_samples,) or (n_seeds, n_samples) with "
                         f"n_samples = {n} (the target's length), got {np.shape(pred)}")
    return p


def seed_scores(score: Score, pred, target) -> np.ndarray:
    """The score of each seed's predictions: ``score(pred[k], target)`` for every seed k.

    Parameters
    ----------
    score : callable
        ``score(pred, target) -> float``, e.g. :func:`dmtnn.metrics.r2_score`.
    pred : array (n_samples,) or (n_seeds, n_samples)
    target : array (n_samples,)

    Returns
    -------
    array (n_seeds,)
    """
    t = np.asarray(target, dtype=float)
    return np.array([score(p, t) for p in _seeds(pred, len(t), "pred")], dtype=float)


def _prepare(target, clusters, **preds):
    """Drop samples with a NaN target or prediction; clusters as codes 0..k-1."""
    t = np.asarray(target, dtype=float)
    if t.ndim != 1:
        raise ValueError(f"target must be 1D (one value per sample), got shape {t.shape}")
    stacks = {name: _seeds(p, len(t), name) for name, p in preds.items()}
    c = np.asarray(clusters)
    if c.shape != t.shape:
        raise ValueError(f"clusters must give one cluster id (slab or rock) per sample: shape "
                         f"{t.shape}, got {c.shape}")
    ok = np.isfinite(t)
    for p in stacks.values():
        ok &= np.isfinite(p).all(axis=0)
    if ok.sum() < 2:
        raise ValueError(f"need two or more samples with finite target and predictions, got "
                         f"{int(ok.sum())} of {len(t)}")
    _, codes = np.unique(c[ok], return_inverse=True)
    return t[ok], codes, {k: p[:, ok] for k, p in stacks.items()}, int((~ok).sum())


def _cluster_bootstrap(statistic: Callable[[np.ndarray], float], codes: np.ndarray, *,
                       n_resamples: int, level: float, method: str, seed: int
                       ) -> tuple[float, float, str, str]:
    """``(low, high, method used, note)`` of ``statistic(sample indices)`` over clusters.

    :func:`scipy.stats.bootstrap` resamples the cluster ids; the statistic of a
    resample gathers the samples of the drawn clusters (a cluster drawn twice
    counts twice). BCa's jackknife leaves out one cluster at a time.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    k = int(codes.max()) + 1
    if k < 2:
        return (float("nan"), float("nan"), "none",
                "one cluster: nothing to resample, no interval")
    members = [np.flatnonzero(codes == c) for c in range(k)]

    def gathered(drawn):
        return statistic(np.concatenate([members[c] for c in np.asarray(drawn, int)]))

    used, note = method, ""
    if method == "BCa" and k < MIN_BCA_CLUSTERS:
        used = "percentile"
        note = (f"percentile, not BCa: {k} clusters (BCa needs {MIN_BCA_CLUSTERS} or more); "
                f"so few clusters give too narrow an interval")
    args = {"vectorized": False, "confidence_level": level}
    with warnings.catch_warnings():  # a degenerate BCa warns; the note says it instead
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        # random_state, not rng: scipy >= 1.11 (rng came in 1.15) takes it
        res = stats.bootstrap((np.arange(k),), gathered, n_resamples=n_resamples, method=used,
                              random_state=np.random.default_rng(seed), **args)
        dist = np.asarray(res.bootstrap_distribution)
        bad = int((~np.isfinite(dist)).sum())
        if bad:
            return (float("nan"), float("nan"), "none",
                    f"the score is undefined (NaN) on {bad} of {len(dist)} resamples")
        low, high = (float(x) for x in res.confidence_interval)
        if used == "BCa" and not (np.isfinite(low) and np.isfinite(high)):
            res = stats.bootstrap((np.arange(k),), gathered, n_resamples=0, method="percentile",
                                  bootstrap_result=res, **args)
            low, high = (float(x) for x in res.confidence_interval)
            used = "percentile"
            spread = "every resample gives the same value" if np.ptp(dist) == 0 else \
                "its bias correction or jackknife acceleration is not finite"
            note = f"percentile, not BCa: BCa undefined ({spread})"
    return low, high, used, note


def score_interval(score: Score, pred, target, clusters, *, n_resamples: int = N_RESAMPLES,
                   level: float = 0.95, method: str = "BCa", seed: int = 0) -> Interval:
    """A model's score (averaged over seeds) with a cluster bootstrap interval.

    For the precision of one score. To compare two models use
    :func:`paired_difference`: two overlapping intervals do not show that two
    models are equal, nor two disjoint ones that they differ.

    Parameters
    ----------
    score : callable
        ``score(pred, target) -> float`` of :mod:`dmtnn.metrics` (R2, RMSE,
        MAE: the last two in the target's units, porosity fraction or GPa).
    pred : array (n_samples,) or (n_seeds, n_samples)
        Predictions, one row per seed.
    target : array (n_samples,)
    clusters : array (n_samples,)
        Cluster id (slab or rock) of each sample; ``np.arange(n_samples)``
        treats the samples as independent.
    n_resamples, level, method, seed
        Bootstrap resamples, coverage, interval method (``"BCa"``,
        ``"percentile"`` or ``"basic"``) and seed of the resampling.

    Returns
    -------
    Interval
        Samples with a NaN prediction (any seed) or target are left out.
    """
    t, codes, p, left = _prepare(target, clusters, pred=pred)
    preds = p["pred"]

    def statistic(idx):
        return float(np.mean([score(q[idx], t[idx]) for q in preds]))

    low, high, used, note = _cluster_bootstrap(statistic, codes, n_resamples=n_resamples,
                                               level=level, method=method, seed=seed)
    seeds = summarize_seeds([score(q, t) for q in preds])
    return Interval(seeds.mean, low, high, level, used, note, int(codes.max()) + 1, len(t),
                    left, seeds)


def paired_difference(score: Score, pred_a, pred_b, target, clusters, *,
                      n_resamples: int = N_RESAMPLES, level: float = 0.95,
                      method: str = "BCa", seed: int = 0, relative: bool = False) -> Difference:
    """``score(a) - score(b)`` on the same samples, with a cluster bootstrap interval.

    A resample draws clusters with replacement; on the pooled samples of the
    drawn clusters, the statistic is each model's score averaged over its
    seeds, a minus b. The same resample serves both models (paired).

    Parameters
    ----------
    score : callable
        ``score(pred, target) -> float``: :func:`dmtnn.metrics.r2_score`
        (higher is better), :func:`~dmtnn.metrics.rmse`,
        :func:`~dmtnn.metrics.mae` (lower is better; in the target's units).
    pred_a, pred_b : array (n_samples,) or (n_seeds, n_samples)
        The two models' predictions, one row per seed; seeds are paired by
        index. Both need the same number of seeds, or one of them a single
        row (e.g. a deterministic baseline), which pairs with every seed.
    target : array (n_samples,)
    clusters : array (n_samples,)
        Cluster id (slab or rock) of each sample.
    n_resamples : int
        Bootstrap resamples of the clusters.
    level : float
        Coverage of the interval.
    method : {"BCa", "percentile", "basic"}
        The interval asked for. BCa falls back to percentile, with the reason
        in ``note``, below :data:`MIN_BCA_CLUSTERS` clusters or where it is
        undefined (e.g. every resample gives the same difference).
    seed : int
        Seed of the resampling: same seed, same interval.
    relative : bool
        The difference as a fraction of b's score, ``(a - b) / b``, each
        resample divided by b's score on that resample, so that the interval
        carries the sampling of the denominator too (for errors, whose b is
        positive; a resample where b's score is not positive makes the
        interval undefined).

    Returns
    -------
    Difference
        ``value`` = mean over seeds of score(a) minus mean over seeds of
        score(b) (with ``relative``, over the latter); ``seeds``: the same per
        seed pair; ``a`` and ``b``: each model's scores per seed. Samples with
        a NaN in either model's predictions (any seed) or the target are left
        out of both.
    """
    t, codes, p, left = _prepare(target, clusters, pred_a=pred_a, pred_b=pred_b)
    a, b = p["pred_a"], p["pred_b"]
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ValueError(f"pred_a has {len(a)} seeds and pred_b {len(b)}: seeds are paired by "
                         f"index, so give both the same number (or one a single row)")

    def change(ma, mb):
        if not relative:
            return ma - mb
        return (ma - mb) / mb if mb > 0 else np.nan

    def statistic(idx):
        ta = t[idx]
        return float(change(np.mean([score(q[idx], ta) for q in a]),
                            np.mean([score(q[idx], ta) for q in b])))

    low, high, used, note = _cluster_bootstrap(statistic, codes, n_resamples=n_resamples,
                                               level=level, method=method, seed=seed)
    sa = np.array([score(q, t) for q in a])
    sb = np.array([score(q, t) for q in b])
    per_seed = [change(x, y) for x, y in zip(*np.broadcast_arrays(sa, sb), strict=True)]
    return Difference(float(change(sa.mean(), sb.mean())), low, high, level, used, note,
                      int(codes.max()) + 1, len(t), left, summarize_seeds(per_seed),
                      summarize_seeds(sa), summarize_seeds(sb))


def fit_status(train_r2, threshold: float = FIT_THRESHOLD) -> str:
    """"fits" or "under-fit": whether a network fits its own training data.

    Parameters
    ----------
    train_r2 : float or array of per-seed values
        The network's R2 on its training samples; with several seeds their mean
        counts.
    threshold : float
        Lowest training R2 that counts as a fit (default :data:`FIT_THRESHOLD`).

    Returns
    -------
    str
        "under-fit" below ``threshold``, and for a NaN score (a fit not shown
        is not assumed); "fits" otherwise.

    >>> fit_status(0.93), fit_status([0.9, 0.6]), fit_status(float("nan"))
    ('fits', 'under-fit', 'under-fit')
    """
    v = np.asarray(train_r2, dtype=float)
    if v.ndim > 1 or not v.size:
        raise ValueError(f"train_r2 must be a number or one value per seed, got shape {v.shape}")
    mean = float(v.mean())
    return "fits" if np.isfinite(mean) and mean >= threshold else "under-fit"


def seed_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of per-seed values (NaN bounds with fewer than two).

    The seeds are the draws of the training recipe: this interval says how far
    another set of seeds could move the mean, on the same test images.

    >>> [round(x, 3) for x in seed_interval([0.017, 0.031])]  # two seeds: t quantile 12.7
    [-0.065, 0.113]
    >>> [round(x, 4) for x in seed_interval([0.041, 0.028, 0.026, 0.051, 0.027])]  # 5 seeds
    [0.0209, 0.0483]
    >>> seed_interval([0.5])
    (nan, nan)
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float("nan"), float("nan"))
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return (float(v.mean() - half), float(v.mean() + half))


def verdict(diff: Interval, *, higher_is_better: bool, train_scores=None,
            fit_threshold: float = FIT_THRESHOLD, seed_differences=None,
            seed_bounds: tuple[float, float] | None = None) -> str:
    """The verdict on the claim "a is better than b" from the interval of ``score(a) - score(b)``.

    Parameters
    ----------
    diff : Difference
        From :func:`paired_difference` (a minus b); anything with ``low`` and
        ``high`` will do.
    higher_is_better : bool
        True for R2 (a better means a positive difference), False for errors
        such as RMSE or MAE (a better means a negative difference).
    train_scores : sequence or mapping, optional
        The training R2 of each network in the claim: one entry per network, a
        number or that network's per-seed values (:func:`fit_status`). Leave
        out networks that are not trained (e.g. a FEM baseline).
    fit_threshold : float
        Lowest training R2 that counts as a fit.
    seed_differences : sequence of float, optional
        The difference of each seed pair; default: ``diff.seeds.values`` where
        ``diff`` has them (a :class:`Difference`). With two or more, a side is
        taken only when every one of them, and their :func:`seed_interval`
        (at ``diff.level``, default 0.95), lie on it as well.
    seed_bounds : (low, high), optional
        The seed interval, where the caller has it and not the per-seed
        values (e.g. moved by a margin); used in place of the one computed
        from ``seed_differences``.

    Returns
    -------
    str
        One of :data:`VERDICTS`:

        - "not decided: under-fit" when a network of the claim does not fit
          its training data (checked first: a network that has not learnt its
          training set says nothing about the architecture);
        - "supported" when the whole interval lies on a's better side of 0,
          and so do the seed interval and every seed's difference;
        - "contradicted" when all lie wholly on b's better side;
        - "not separable" when the interval contains 0, when there is no
          interval, or when the seeds do not separate from 0 (the interval
          resamples the test slabs, not the seeds: seeds whose spread is as
          large as the difference leave the recipe's claim open).

    >>> from types import SimpleNamespace as D
    >>> verdict(D(low=0.02, high=0.1), higher_is_better=True)
    'supported'
    >>> verdict(D(low=0.02, high=0.1), higher_is_better=False)
    'contradicted'
    >>> verdict(D(low=-0.1, high=0.1), higher_is_better=True)
    'not separable'
    >>> verdict(D(low=0.02, high=0.1), higher_is_better=True, train_scores=[0.95, 0.4])
    'not decided: under-fit'
    >>> verdict(D(low=0.02, high=0.1), higher_is_better=True, seed_differences=[0.06, 0.061])
    'supported'
    >>> verdict(D(low=0.02, high=0.1), higher_is_better=True, seed_differences=[0.09, 0.03])
    'not separable'
    >>> verdict(D(low=0.02, high=0.1), higher_is_better=True,
    ...         seed_differences=[0.05, 0.06, 0.07, 0.055, 0.065])
    'supported'
    >>> verdict(D(low=0.02, high=0.1), higher_is_better=True, seed_differences=[0.15, -0.01])
    'not separable'
    """
    if train_scores is not None:
        if isinstance(train_scores, Mapping):
            train_scores = list(train_scores.values())
        elif np.isscalar(train_scores) or not isinstance(train_scores, Sequence | np.ndarray):
            train_scores = [train_scores]
        if any(fit_status(s, fit_threshold) == "under-fit" for s in train_scores):
            return VERDICTS[3]
    low, high = float(diff.low), float(diff.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        return VERDICTS[2]
    if seed_differences is None:
        seed_differences = getattr(getattr(diff, "seeds", None), "values", ())
    per_seed = np.asarray(seed_differences, dtype=float).ravel()
    per_seed = per_seed[np.isfinite(per_seed)]
    if per_seed.size >= 2:  # the seeds, and their interval, must agree with the side
        if seed_bounds is None:
            seed_bounds = seed_interval(per_seed, float(getattr(diff, "level", 0.95)))
        low, high = min(low, float(per_seed.min())), max(high, float(per_seed.max()))
    if seed_bounds is not None and np.isfinite(seed_bounds).all():
        low, high = min(low, float(seed_bounds[0])), max(high, float(seed_bounds[1]))
    a_better, b_better = (low > 0, high < 0) if higher_is_better else (high < 0, low > 0)
    if a_better:
        return VERDICTS[0]
    if b_better:
        return VERDICTS[1]
    return VERDICTS[2]


def time_verdict(a_seconds: float, b_seconds: float, margin: float = TIME_MARGIN) -> str:
    """The verdict on the claim "step a takes longer than step b" from their measured times.

    A side is taken only when one time exceeds the other by more than ``margin``
    times (:data:`TIME_MARGIN`): nearer than that, another thread count or load
    on the same machine could reverse the order.

    >>> time_verdict(600.0, 200.0), time_verdict(233.0, 200.0), time_verdict(169.0, 400.0)
    ('supported', 'not separable', 'contradicted')
    """
    if not (a_seconds > 0 and b_seconds > 0 and margin >= 1):
        raise ValueError(f"times must be positive and margin >= 1, got {a_seconds}, "
                         f"{b_seconds} and {margin}")
    ratio = a_seconds / b_seconds
    if ratio > margin:
        return VERDICTS[0]
    if ratio < 1 / margin:
        return VERDICTS[1]
    return VERDICTS[2]
