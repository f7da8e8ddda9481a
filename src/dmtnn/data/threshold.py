"""Threshold segmentation: the binary masks the segmenter learns (the paper's labels).

The portal's binary volumes, and so the paper's labels, come from a global
threshold of the grayscale scan. We use Otsu's method [1]_: the threshold that
maximises the between-class variance of the gray-level histogram, computed
once per rock (one global threshold, as for a whole scanned volume) and
applied to every slice: grain where ``gray > threshold``. Like the portal's
binary volumes, which were segmented from its filtered grayscale, the
dataset thresholds the denoised image (:func:`dmtnn.data.ct.denoise`) at the
scan's native resolution, then reduces the binary image by area fraction.

The elastic labels (porosity and moduli by FEM) are in
:mod:`dmtnn.data.fem_labels`.

References
----------
.. [1] Otsu, N. (1979). A threshold selection method from gray-level
   histograms. IEEE Trans. Systems, Man, and Cybernetics 9(1), 62-66.
"""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

__all__ = ["otsu_threshold", "threshold_segment"]


def otsu_threshold(gray: np.ndarray) -> float:
    """Otsu's threshold of a grayscale image or stack (any shape).

    >>> otsu_threshold(np.array([10, 10, 12, 200, 202, 202], dtype=np.uint8))
    12.0
    """
    gray = np.asarray(gray)
    if gray.size == 0:
        raise ValueError("cannot threshold an empty image")
    if np.issubdtype(gray.dtype, np.floating) and not np.isfinite(gray).all():
        raise ValueError("grayscale image contains NaN or infinite values")
    if gray.min() == gray.max():
        raise ValueError(f"grayscale image is constant ({gray.min()}): nothing to threshold")
    return float(threshold_otsu(gray))


def threshold_segment(gray: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Binary segmentation, 1 = grain (``gray > threshold``), 0 = pore.

    Parameters
    ----------
    gray : array
        Grayscale image(s); pores dark.
    threshold : float, optional
        Default: Otsu's threshold of ``gray`` itself.
    """
    if threshold is None:
        threshold = otsu_threshold(gray)
    return (np.asarray(gray) > threshold).astype(np.uint8)
