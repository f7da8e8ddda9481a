r"""Morphology of binary rock images: porosity, two-point correlation, chords, REV.

The statistics digital rock physics uses to say whether two pore spaces look
alike (Torquato, *Random Heterogeneous Materials*, 2002):

- porosity :math:`\phi`, the pore fraction;
- the two-point correlation :math:`S_2(r)`, the probability that two points
  a distance :math:`r` apart are both pore; :math:`S_2(0) = \phi` and
  :math:`S_2(\infty) = \phi^2`;
- the chord-length distribution: lengths of the straight runs of pore (or
  grain) along the grid axes, chords cut by the image border excluded;
- the representative elementary volume (REV): how the porosity of a square
  window spreads with its size (paper, Fig. 7).

Images follow the portal's convention, 1 = grain and 0 = pore, unless a
function says otherwise. Functions take 2D slices or 3D volumes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "porosity",
    "two_point_correlation",
    "chord_lengths",
    "rev_porosity",
    "rev_size",
    "growing_window_porosity",
    "rev_size_growing",
    "describe",
    "compare",
]


def _binary(solid: np.ndarray, name: str = "solid") -> np.ndarray:
    solid = np.asarray(solid)
    if solid.dtype != bool:
        if solid.size and (solid.min() < 0 or solid.max() > 1):
            raise ValueError(f"{name} must be binary (0 = pore, 1 = grain), found values "
                             f"{np.unique(solid)[:10]}")
        solid = solid.astype(bool)
    return solid


def porosity(solid: np.ndarray, axis: tuple[int, ...] | int | None = None) -> np.ndarray | float:
    """Pore fraction of a binary image (1 = grain, 0 = pore).

    Parameters
    ----------
    solid : array of 0/1 or bool
    axis : int or tuple, optional
        Axes to average over; e.g. ``(1, 2)`` gives one porosity per slice of
        a stack. Default: all.

    >>> porosity(np.array([[1, 0], [1, 1]]))
    0.25
    """
    pore = ~_binary(solid)
    value = pore.mean(axis=axis)
    return float(value) if np.ndim(value) == 0 else value


def two_point_correlation(
    solid: np.ndarray, max_lag: int, *, phase: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Two-point correlation :math:`S_2(r)` along the grid axes.

    :math:`S_2(r)` is the fraction of point pairs a lag :math:`r` apart
    (along each axis, no wrap-around) that are both in ``phase``, averaged
    over the axes of the image, each pair counted once.

    Parameters
    ----------
    solid : (H, W) or (D, H, W) binary array, 1 = grain
    max_lag : int
        Largest lag in pixels.
    phase : {0, 1}
        0 (default) for the pore phase, 1 for grain.

    Returns
    -------
    lags : (max_lag + 1,) int array
    s2 : (max_lag + 1,) float array; ``s2[0]`` is the phase fraction.

    >>> lags, s2 = two_point_correlation(np.array([[0, 0, 1, 0]]), 2)
    >>> s2.tolist()  # only lags along the row exist for a single row
    [0.75, 0.3333333333333333, 0.5]
    """
    image = _binary(solid) == bool(phase)
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    s2 = np.zeros(max_lag + 1)
    s2[0] = image.mean()
    for lag in range(1, max_lag + 1):
        hits, pairs = 0, 0
        for axis, n in enumerate(image.shape):
            if lag < n:
                a = np.take(image, np.arange(n - lag), axis=axis)
                b = np.take(image, np.arange(lag, n), axis=axis)
                hits += np.count_nonzero(a & b)
                pairs += a.size
        if pairs == 0:
            raise ValueError(f"max_lag={max_lag} is not smaller than any side of {image.shape}")
        s2[lag] = hits / pairs
    return np.arange(max_lag + 1), s2


def chord_lengths(solid: np.ndarray, *, phase: int = 0, axes=None) -> np.ndarray:
    """Lengths (pixels) of the runs of ``phase`` along the grid axes.

    Runs that touch the image border are cut and left out.

    Parameters
    ----------
    solid : binary array, 1 = grain
    phase : {0, 1}
        0 (default) for pore chords, 1 for grain chords.
    axes : sequence of int, optional
        Axes to scan; default all.

    >>> chord_lengths(np.array([[1, 0, 0, 1, 0, 1, 1, 0]])).tolist()
    [2, 1]
    """
    image = _binary(solid) == bool(phase)
    out = []
    for axis in range(image.ndim) if axes is None else axes:
        lines = np.moveaxis(image, axis, -1).reshape(-1, image.shape[axis]).astype(np.int8)
        padded = np.pad(lines, ((0, 0), (1, 1)))
        edges = np.diff(padded, axis=1)
        row_s, start = np.nonzero(edges == 1)
        _, stop = np.nonzero(edges == -1)
        inner = (start > 0) & (stop < lines.shape[1])
        out.append((stop - start)[inner])
    return np.concatenate(out) if out else np.empty(0, int)


def rev_porosity(
    solid: np.ndarray,
    sizes,
    *,
    windows: int = 64,
    rng: np.random.Generator | int | None = 0,
) -> pd.DataFrame:
    """Porosity of random square windows of each size, over a stack of slices.

    Parameters
    ----------
    solid : (N, H, W) or (H, W) binary array, 1 = grain
    sizes : sequence of int
        Window sides in pixels, at most ``min(H, W)``.
    windows : int
        Random windows per size and slice (one when the window fills the slice).
    rng : Generator or seed

    Returns
    -------
    DataFrame with one row per size: ``size``, ``mean``, ``std``, ``p05``,
    ``p95`` of the window porosity, ``cv`` = std / mean, and ``n``.
    """
    stack = _binary(solid)
    if stack.ndim == 2:
        stack = stack[None]
    n, h, w = stack.shape
    rng = np.random.default_rng(rng)
    # Summed-area table: the pore count of any window in O(1).
    table = np.zeros((n, h + 1, w + 1), dtype=np.int64)
    table[:, 1:, 1:] = (~stack).cumsum(1).cumsum(2)
    rows = []
    for size in sizes:
        if not 1 <= size <= min(h, w):
            raise ValueError(f"window size {size} px does not fit slices of {h} x {w}")
        k = 1 if size == min(h, w) == max(h, w) else windows
        s = np.repeat(np.arange(n), k)
        y = rng.integers(0, h - size + 1, n * k)
        x = rng.integers(0, w - size + 1, n * k)
        pores = (table[s, y + size, x + size] - table[s, y, x + size]
                 - table[s, y + size, x] + table[s, y, x])
        phi = pores / size**2
        mean, std = phi.mean(), phi.std()
        rows.append({
            "size": size,
            "mean": mean,
            "std": std,
            "p05": np.quantile(phi, 0.05),
            "p95": np.quantile(phi, 0.95),
            "cv": std / mean if mean > 0 else np.inf,
            "n": len(phi),
        })
    return pd.DataFrame(rows)


def rev_size(curve: pd.DataFrame, cv_tol: float) -> float:
    """Smallest window size from which the spread (``cv``) stays below ``cv_tol``.

    NaN when no size in the curve reaches it.
    """
    below = (curve["cv"] <= cv_tol).to_numpy()
    # From that size on, every larger window must also satisfy the tolerance.
    tail_ok = np.flip(np.logical_and.accumulate(np.flip(below)))
    return float(curve["size"].to_numpy()[tail_ok][0]) if tail_ok.any() else float("nan")


def growing_window_porosity(solid: np.ndarray, sizes) -> pd.DataFrame:
    """Porosity of a centred window growing to the whole slice, per slice of a stack.

    The classic REV plot: starting from the centre, the window porosity
    fluctuates while the window holds a few grains and settles on the
    slice's porosity as it grows.

    Returns
    -------
    DataFrame with one row per size: ``size``, ``mean`` over slices and
    ``dev``, the root-mean-square deviation over slices from the porosity of
    the whole stack (so at full size ``dev`` is the slice-to-slice spread).
    """
    stack = _binary(solid)
    if stack.ndim == 2:
        stack = stack[None]
    n, h, w = stack.shape
    phi_all = porosity(stack)
    rows = []
    for size in sizes:
        if not 1 <= size <= min(h, w):
            raise ValueError(f"window size {size} px does not fit slices of {h} x {w}")
        top, left = (h - size) // 2, (w - size) // 2
        phi = porosity(stack[:, top : top + size, left : left + size], axis=(1, 2))
        rows.append({"size": size, "mean": phi.mean(),
                     "dev": float(np.sqrt(np.mean((phi - phi_all) ** 2)))})
    return pd.DataFrame(rows)


def rev_size_growing(curve: pd.DataFrame, tol: float) -> float:
    """Smallest size from which a growing window's porosity is within ``tol`` (rms) of the rock's."""
    ok = (curve["dev"] <= tol).to_numpy()
    tail_ok = np.flip(np.logical_and.accumulate(np.flip(ok)))
    return float(curve["size"].to_numpy()[tail_ok][0]) if tail_ok.any() else float("nan")


def describe(solid: np.ndarray, max_lag: int = 30) -> dict:
    """Porosity, normalised two-point correlation and chord lengths of a stack of slices.

    The statistics are taken in the plane of each slice (axes 1 and 2 of a
    stack), as the networks see them.

    Returns
    -------
    dict with ``porosity``; ``lags`` and ``s2_norm`` = (S2 - phi^2) / (phi - phi^2),
    which falls from 1 at r = 0 towards 0; ``corr_length`` (px) where
    ``s2_norm`` first drops below 1/e; ``pore_chords``, ``grain_chords`` (px)
    and their means.
    """
    stack = _binary(solid)
    if stack.ndim == 2:
        stack = stack[None]
    phi = porosity(stack)
    per_slice = [two_point_correlation(s, max_lag)[1] for s in stack]
    s2 = np.mean(per_slice, axis=0)
    lags = np.arange(max_lag + 1)
    norm = (s2 - phi**2) / (phi - phi**2)
    below = np.flatnonzero(norm < np.exp(-1))
    if below.size:
        k = below[0]
        corr = k - 1 + (norm[k - 1] - np.exp(-1)) / (norm[k - 1] - norm[k])
    else:
        corr = float("nan")
    pore = chord_lengths(stack, phase=0, axes=(1, 2))
    grain = chord_lengths(stack, phase=1, axes=(1, 2))
    return {
        "porosity": phi,
        "lags": lags,
        "s2_norm": norm,
        "corr_length": float(corr),
        "pore_chords": pore,
        "grain_chords": grain,
        "mean_pore_chord": float(pore.mean()) if pore.size else float("nan"),
        "mean_grain_chord": float(grain.mean()) if grain.size else float("nan"),
    }


def compare(stacks: dict[str, np.ndarray], pixel_um: float, max_lag: int = 30):
    """Describe several samples at one pixel size; a table in micrometres and the details.

    Parameters
    ----------
    stacks : {name: binary stack (1 = grain)}
    pixel_um : float
        Pixel size shared by all stacks.

    Returns
    -------
    table : DataFrame indexed by name: porosity, correlation length, mean
        pore and grain chord (µm)
    stats : {name: :func:`describe` dict}
    """
    stats = {name: describe(stack, max_lag) for name, stack in stacks.items()}
    table = pd.DataFrame({
        name: {
            "porosity": s["porosity"],
            "correlation length (µm)": s["corr_length"] * pixel_um,
            "mean pore chord (µm)": s["mean_pore_chord"] * pixel_um,
            "mean grain chord (µm)": s["mean_grain_chord"] * pixel_um,
        }
        for name, s in stats.items()
    }).T
    return table, stats
