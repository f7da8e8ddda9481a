"""Scores of predictions against labels (section 4.1 of the paper, and more).

Segmentation: binary maps with 1 = grain, 0 = pore (the portal's convention).

- pixel accuracy ``PA = (TP + TN) / N`` (the paper's KPI);
- pore ``IoU = |P & T| / |P | T|`` and ``Dice = 2 |P & T| / (|P| + |T|)`` of
  the pore phase (the phase that matters for porosity and stiffness);
- porosity error: porosity of the prediction minus porosity of the label
  (porosity itself is :func:`dmtnn.morphology.porosity`).

Regression: ``R2 = 1 - SS_res / SS_tot`` (the paper's KPI; negative when the
prediction is worse than the mean), ``MSE``, ``RMSE``, ``MAE`` (the last two in
the target's units) and the mean relative error ``mean |p - t| / |t|``
(Table 2); :data:`REGRESSION_SCORES` names them and :data:`HIGHER_IS_BETTER`
says which way is better.

Intervals and comparisons of scores live in :mod:`dmtnn.statistics`;
:func:`bootstrap_ci` is its one-score interval as a tuple.

Every function takes arrays; stacks ``(N, H, W)`` with ``per_image=True`` give
one value per image, otherwise pixels are pooled over the whole stack.
"""

from __future__ import annotations

import numpy as np

from dmtnn.morphology import porosity
from dmtnn.statistics import N_RESAMPLES, score_interval

__all__ = [
    "pixel_accuracy",
    "pore_iou",
    "pore_dice",
    "porosity_error",
    "r2_score",
    "mse",
    "rmse",
    "mae",
    "relative_error",
    "segmentation_scores",
    "regression_scores",
    "REGRESSION_SCORES",
    "HIGHER_IS_BETTER",
    "bootstrap_ci",
]


def _pair(pred, target, *, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, target {target.shape}")
    if pred.size == 0:
        raise ValueError("empty input")
    if binary:
        for name, a in (("pred", pred), ("target", target)):
            if a.dtype != bool and not np.isin(a, (0, 1)).all():
                raise ValueError(f"{name} is not a binary map (values other than 0 and 1)")
        return pred.astype(bool), target.astype(bool)
    return pred.astype(np.float64), target.astype(np.float64)


def _reduce(x: np.ndarray, per_image: bool) -> np.ndarray:
    """Sum over pixels: of each image (per_image), else over everything."""
    if per_image:
        if x.ndim < 3:
            raise ValueError(f"per_image needs a stack (N, H, W), got shape {x.shape}")
        return x.reshape(len(x), -1).sum(axis=1)
    return np.asarray(x.sum())


def _out(x: np.ndarray, per_image: bool):
    return x if per_image else float(x)


def pixel_accuracy(pred, target, *, per_image: bool = False):
    """Fraction of pixels where two binary maps agree, PA = (TP + TN) / N.

    Parameters
    ----------
    pred, target : arrays of equal shape, values 0/1
    per_image : bool
        For stacks (N, H, W): one PA per image instead of the pooled one.

    >>> pixel_accuracy(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [1, 1]]))
    0.75
    """
    p, t = _pair(pred, target, binary=True)
    n = p[0].size if per_image else p.size
    return _out(_reduce(p == t, per_image) / n, per_image)


def pore_iou(pred, target, *, per_image: bool = False):
    """Intersection over union of the pore phase (0 in the maps).

    Two maps without any pore agree perfectly: IoU = 1.

    >>> pore_iou(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]]))
    0.5
    """
    p, t = _pair(pred, target, binary=True)
    inter = _reduce(~p & ~t, per_image)
    union = _reduce(~p | ~t, per_image)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return _out(iou, per_image)


def pore_dice(pred, target, *, per_image: bool = False):
    """Dice coefficient (F1) of the pore phase, 2 |P & T| / (|P| + |T|); 1 without pores.

    >>> pore_dice(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]]))
    0.6666666666666666
    """
    p, t = _pair(pred, target, binary=True)
    inter = _reduce(~p & ~t, per_image)
    total = _reduce(~p, per_image) + _reduce(~t, per_image)
    dice = np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
    return _out(dice, per_image)


def porosity_error(pred, target, *, per_image: bool = False):
    """Porosity of the predicted map minus porosity of the label (signed)."""
    p, t = _pair(pred, target, binary=True)
    if per_image and p.ndim < 3:
        raise ValueError(f"per_image needs a stack (N, H, W), got shape {p.shape}")
    axis = tuple(range(1, p.ndim)) if per_image else None
    return porosity(p, axis=axis) - porosity(t, axis=axis)


def r2_score(pred, target) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` of a regression.

    Predicting the mean gives 0; a worse prediction gives a negative value.
    Undefined (NaN) for a constant target.

    >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.7857142857142857
    """
    p, t = _pair(pred, target, binary=False)
    ss_tot = ((t - t.mean()) ** 2).sum()
    if ss_tot == 0:
        return float("nan")
    return float(1 - ((p - t) ** 2).sum() / ss_tot)


def mse(pred, target) -> float:
    """Mean squared error."""
    p, t = _pair(pred, target, binary=False)
    return float(((p - t) ** 2).mean())


def rmse(pred, target) -> float:
    """Root mean squared error, in the target's units (porosity fraction, GPa).

    >>> rmse([1.0, 3.0], [1.0, 1.0])
    1.4142135623730951
    """
    return float(np.sqrt(mse(pred, target)))


def mae(pred, target) -> float:
    """Mean absolute error."""
    p, t = _pair(pred, target, binary=False)
    return float(np.abs(p - t).mean())


def relative_error(pred, target) -> float:
    """Mean relative error ``mean(|p - t| / |t|)`` (Table 2 of the paper).

    Raises
    ------
    ValueError
        If a target is zero (the relative error is undefined there).

    >>> round(relative_error([1.1, 1.8], [1.0, 2.0]), 12)
    0.1
    """
    p, t = _pair(pred, target, binary=False)
    zero = int((t == 0).sum())
    if zero:
        raise ValueError(f"relative error undefined: {zero} target value(s) are zero")
    return float((np.abs(p - t) / np.abs(t)).mean())


def segmentation_scores(pred, target) -> dict[str, float]:
    """PA, pore IoU, pore Dice and porosity error of a stack, pooled over its pixels."""
    return {
        "PA": pixel_accuracy(pred, target),
        "pore IoU": pore_iou(pred, target),
        "pore Dice": pore_dice(pred, target),
        "porosity error": porosity_error(pred, target),
    }


def regression_scores(pred, target) -> dict[str, float]:
    """R2, MSE, MAE and mean relative error of one predicted quantity."""
    return {
        "R2": r2_score(pred, target),
        "MSE": mse(pred, target),
        "MAE": mae(pred, target),
        "relative error": relative_error(pred, target),
    }


#: The regression scores by name, and whether a higher value is better (R2) or a lower
#: one (the errors, in the target's units: porosity fraction, GPa).
REGRESSION_SCORES = {"R2": r2_score, "RMSE": rmse, "MAE": mae, "MSE": mse,
                     "relative error": relative_error}
HIGHER_IS_BETTER = {"R2": True, "RMSE": False, "MAE": False, "MSE": False,
                    "relative error": False}


def bootstrap_ci(score, pred, target, *, clusters=None, n_boot: int = N_RESAMPLES,
                 level: float = 0.95, method: str = "BCa", seed: int = 0
                 ) -> tuple[float, float, float]:
    """A score and its bootstrap confidence interval (:func:`scipy.stats.bootstrap`).

    A thin wrapper of :func:`dmtnn.statistics.score_interval`, which returns
    the method used and why. For the precision of one model's score; to compare
    two models use :func:`dmtnn.statistics.paired_difference`.

    Parameters
    ----------
    score : callable
        ``score(pred, target) -> float``, e.g. :func:`r2_score` or :func:`mae`.
    pred : array (n,) or (n_seeds, n)
        One entry (value) per image; with several seeds, the score is their mean.
    target : array (n,)
    clusters : array (n,), optional
        Cluster (slab or rock) of each image: the bootstrap resamples clusters
        and pools their images. Default: each image its own cluster, which
        assumes independent images (adjacent slices are not: pass their slabs).
    n_boot : int
        Resamples.
    level : float
        Coverage of the interval.
    method : {"BCa", "percentile", "basic"}
        BCa falls back to percentile where it is undefined or with fewer than
        :data:`dmtnn.statistics.MIN_BCA_CLUSTERS` clusters.
    seed : int
        Seed of the resampling.

    Returns
    -------
    (value, low, high): the score of all images and the interval's bounds
    (NaN bounds when there is a single cluster).

    Notes
    -----
    Before issue 14 this was a hand-written percentile bootstrap over images,
    with NaN bounds below 5 images; ``clusters`` and ``method`` are new and the
    default interval is BCa.

    >>> bootstrap_ci(mae, np.arange(10.0), np.arange(10.0) + 1)
    (1.0, 1.0, 1.0)
    """
    n = len(np.asarray(target))
    res = score_interval(score, pred, target, np.arange(n) if clusters is None else clusters,
                         n_resamples=n_boot, level=level, method=method, seed=seed)
    return res.value, res.low, res.high
