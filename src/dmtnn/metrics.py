"""Scores of predictions against labels.

Pixel accuracy (section 4.1 of the paper): PA = (TP + TN) / all pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pixel_accuracy"]


def pixel_accuracy(pred: np.ndarray, target: np.ndarray, *, per_image: bool = False):
    """Fraction of pixels where two binary maps agree, PA = (TP + TN) / N.

    Parameters
    ----------
    pred, target : arrays of equal shape, values 0/1
    per_image : bool
        For stacks (N, H, W): return one PA per image instead of the pooled one.

    >>> pixel_accuracy(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [1, 1]]))
    0.75
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, target {target.shape}")
    if pred.size == 0:
        raise ValueError("empty input")
    agree = (pred.astype(bool) == target.astype(bool))
    if per_image:
        if agree.ndim < 3:
            raise ValueError(f"per_image needs a stack (N, H, W), got shape {agree.shape}")
        return agree.reshape(len(agree), -1).mean(axis=1)
    return float(agree.mean())
