"""CT forward model: from a phase map to an 8-bit grayscale micro-CT slice.

A deliberately simple model of what makes threshold segmentation of real
scans good but not perfect:

- each phase has its own mean intensity: pore (dark), clay (intermediate:
  microporous, partly resolved), quartz, feldspar (brighter);
- partial-volume blur: a Gaussian point-spread function of ``psf_um``;
- a slow intensity drift: a linear trend through the stack (source decay)
  and radial cupping (beam hardening);
- Gaussian noise of ``noise`` gray levels per native voxel; an image of
  coarser pixels averages ``(pixel / native)^2`` voxels and has
  proportionally less noise;
- rounding to uint8, as the portal's files are stored (``bits=16``: to
  uint16, the 8-bit gray levels scaled by 65535 / 255, as many scanners store).

The portal also ships a filtered grayscale volume, from which its binary
volume was segmented; :func:`denoise` plays that part here (a 3 x 3 median
filter, a simple edge-preserving stand-in for the portal's filter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dmtnn.data.synthetic import CLAY, FELDSPAR, PORE, QUARTZ

__all__ = ["CTModel", "CT_MODEL", "forward", "denoise"]


@dataclass(frozen=True)
class CTModel:
    """Parameters of the forward model (intensities in 8-bit gray levels)."""

    pore: float = 55.0
    clay: float = 108.0
    quartz: float = 150.0
    feldspar: float = 180.0
    psf_um: float = 2.5  # standard deviation of the Gaussian point-spread function
    noise: float = 22.0  # per native voxel
    native_pixel_um: float = 2.25
    drift: float = 0.04  # relative intensity change from the first to the last slice
    cupping: float = 0.04  # relative darkening at the centre of the field
    bits: int = 8  # stored bit depth: 8 (uint8) or 16 (uint16, levels x 65535 / 255)

    def levels(self) -> np.ndarray:
        table = np.zeros(4)
        table[[PORE, CLAY, QUARTZ, FELDSPAR]] = self.pore, self.clay, self.quartz, self.feldspar
        return table


CT_MODEL = CTModel()


def forward(
    phases: np.ndarray,
    pixel_um: float,
    *,
    depth: float = 0.5,
    model: CTModel = CT_MODEL,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate the grayscale CT image of a phase map.

    Parameters
    ----------
    phases : (H, W) uint8
        Phase ids (PORE, QUARTZ, FELDSPAR, CLAY).
    pixel_um : float
        Pixel size of ``phases``, micrometres.
    depth : float
        Position of the slice in the stack, 0 (first) to 1 (last), for the drift.
    model : CTModel
        Intensities, blur, noise and drift.
    rng : numpy Generator, optional
        Noise source; None gives a noise-free image.

    Returns
    -------
    (H, W) uint8, or uint16 for ``model.bits == 16``
    """
    phases = np.asarray(phases)
    if phases.ndim != 2 or phases.max(initial=0) > max(PORE, QUARTZ, FELDSPAR, CLAY):
        raise ValueError(f"phases must be a 2D map of ids 0..3, got shape {phases.shape}")
    image = model.levels()[phases]
    image = ndimage.gaussian_filter(image, sigma=model.psf_um / pixel_um, mode="reflect")
    h, w = phases.shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    radial = 1 - model.cupping * np.clip(1 - (yy**2 + xx**2) / 2, 0, 1)
    image *= (1 + model.drift * (depth - 0.5)) * radial
    if rng is not None:
        sigma = model.noise * model.native_pixel_um / pixel_um
        image += sigma * rng.standard_normal(image.shape)
    if model.bits == 16:
        return np.clip(np.rint(image * (65535 / 255)), 0, 65535).astype(np.uint16)
    if model.bits != 8:
        raise ValueError(f"CTModel.bits must be 8 or 16, got {model.bits}")
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def denoise(gray: np.ndarray) -> np.ndarray:
    """Edge-preserving noise reduction before thresholding: a 3 x 3 median per slice.

    Works on one slice (H, W) or a stack (N, H, W); the dtype is kept.
    """
    gray = np.asarray(gray)
    size = (1, 3, 3) if gray.ndim == 3 else 3
    return ndimage.median_filter(gray, size=size, mode="reflect")
