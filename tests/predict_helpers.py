"""Shared helpers of the tests of dmtnn.images, dmtnn.weights, dmtnn.predict and the CLI.

Not a test module (no ``test_`` prefix). :func:`tiny_weights` writes a
randomly initialised ci-sized DMTNN (LinkNet segmenter inside) as a weights
folder; :func:`ct_like` draws CT-like slices (dark pores, bright grains, grains
several pixels wide, mild noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from dmtnn import models
from dmtnn.config import PAPER_PIXEL_UM
from dmtnn.weights import save_network

#: The tiny networks: ci sizes (64 px windows, width 0.125).
SIZE, WIDTH = 64, 0.125
SEG_KWARGS = {"in_channels": 1, "width": WIDTH}
DMTNN_KWARGS = {"image_size": SIZE, "width": WIDTH, "depth": 2, "tasks": ["phi", "mu", "kappa"]}
SCALES = {"input": (0.45, 0.2), "phi": (0.2, 0.05), "mu": (10.0, 3.0), "kappa": (12.0, 4.0)}
DATA = {"pixel_um": PAPER_PIXEL_UM, "image_size": SIZE, "native_pixel_um": 2.25}


def tiny_dmtnn(seed: int = 0) -> torch.nn.Module:
    """A randomly initialised DMTNN of :data:`DMTNN_KWARGS` on a LinkNet of :data:`SEG_KWARGS`."""
    torch.manual_seed(seed)
    seg = models.build("linknet", **SEG_KWARGS)
    kw = {**DMTNN_KWARGS, "tasks": tuple(DMTNN_KWARGS["tasks"])}
    return models.build("dmtnn", segmenter=seg, **kw).eval()


def tiny_weights(folder: Path, seed: int = 0) -> Path:
    """Write :func:`tiny_dmtnn` as a weights folder; return the folder."""
    return save_network(folder, tiny_dmtnn(seed), network="dmtnn", kwargs=DMTNN_KWARGS,
                        scales=SCALES, data=DATA,
                        segmenter={"network": "linknet", "kwargs": SEG_KWARGS},
                        training={"profile": "test", "commit": "none"},
                        fem={"K": 36.6, "G": 45.0, "plane": "strain"})


def ct_like(n: int, h: int, w: int, seed: int = 0, phi: float = 0.2, grain_px: float = 3.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """CT-like uint8 slices (n, h, w) and their geometry (1 = grain), pores dark.

    Thresholded Gaussian-smoothed noise (``grain_px`` smoothing, pore
    fraction ``phi``) at gray 55 (pore) and 150 (grain), plus noise of 6 levels.
    """
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, h, w)), (0, grain_px, grain_px))
    solid = np.stack([(f > np.quantile(f, phi)).astype(np.uint8) for f in field])
    gray = np.where(solid == 1, 150.0, 55.0) + rng.normal(0, 6, solid.shape)
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8), solid
