"""Reducing slices to the network's pixel size, as the paper did (1000 px -> 256 px).

Grayscale slices are area-averaged: each output pixel is the mean of the input
area it covers, with fractional weights where the factor is not an integer
(1000 / 256 = 3.906). Binary slices are reduced by area fraction: an output
pixel is grain when at least half of its area is grain.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["area_weights", "reduce_gray", "reduce_binary", "center_crop", "square_tiles"]


@lru_cache(maxsize=32)
def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Matrix ``R`` (n_out, n_in) with ``R[i, j]`` = share of input pixel j in output pixel i.

    Each row sums to one, so ``R @ x`` is the exact area average of a 1D
    signal ``x`` over the output pixels.

    >>> area_weights(4, 2)
    array([[0.5, 0.5, 0. , 0. ],
           [0. , 0. , 0.5, 0.5]])
    """
    if n_out < 1 or n_in < n_out:
        raise ValueError(f"cannot reduce {n_in} px to {n_out} px (need 1 <= n_out <= n_in)")
    edges_in = np.arange(n_in + 1) / n_in
    edges_out = np.arange(n_out + 1) / n_out
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return np.clip(hi - lo, 0, None) * n_out  # cached: callers must not modify it


def _reduce(images: np.ndarray, size: int) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or a stack (N, H, W), got shape {images.shape}")
    h, w = images.shape[-2:]
    rows, cols = area_weights(h, size), area_weights(w, size)
    return rows @ images @ cols.T


def reduce_gray(images: np.ndarray, size: int) -> np.ndarray:
    """Area-average grayscale slices to ``size`` x ``size`` (float64)."""
    return _reduce(images, size)


def reduce_binary(images: np.ndarray, size: int) -> np.ndarray:
    """Reduce binary slices (1 = grain) by area fraction: grain where >= 0.5 is grain."""
    images = np.asarray(images)
    if images.dtype != bool and (images.min(initial=0) < 0 or images.max(initial=0) > 1
                                 or not np.array_equal(images, np.rint(images))):
        raise ValueError(
            f"binary images must hold only 0 and 1, found values {np.unique(images)[:10]}"
        )
    return (_reduce(images, size) >= 0.5 - 1e-12).astype(np.uint8)


def center_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window of each slice."""
    h, w = images.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"cannot crop {size} px from slices of {h} x {w}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def square_tiles(images: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` tiles of each slice, row by row, (M, size, size).

    Edges that do not fill a whole tile are dropped.

    >>> square_tiles(np.arange(16).reshape(1, 4, 4), 2)[1].tolist()
    [[2, 3], [6, 7]]
    """
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    n, h, w = images.shape
    if size > min(h, w):
        raise ValueError(f"cannot cut {size} px tiles from slices of {h} x {w}")
    rows, cols = h // size, w // size
    cut = images[:, : rows * size, : cols * size]
    return cut.reshape(n, rows, size, cols, size).swapaxes(2, 3).reshape(-1, size, size)
