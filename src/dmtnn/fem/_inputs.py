"""Validation of the images and of the PCG parameters; the default tolerance per dtype.

Precision rule: float64 on the CPU, float32 on CUDA (the solver is bound by memory
traffic, so the narrower type is the faster one).  float32 PCG reaches a true relative
residual only down to its rounding floor (about 1e-5 to 3e-5 on porous images), so its
default tolerance is 1e-4; float64 gets 1e-5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dmtnn.settings import resolve_device

_DEFAULT_TOL = {torch.float64: 1e-5, torch.float32: 1e-4}
_DEFAULT_MAX_ITER = 5000


def _as_image_array(images: Any) -> np.ndarray:
    """Validate ``images`` and return them as a numpy batch (B, H, W)."""
    if isinstance(images, torch.Tensor):
        arr = images.detach().cpu().numpy()
    elif isinstance(images, np.ndarray):
        arr = images
    elif isinstance(images, (list, tuple)):
        try:
            arr = np.asarray(images)
        except ValueError as exc:  # ragged lists
            raise ValueError(f"images could not be converted to an array: {exc}") from exc
    else:
        raise TypeError(
            f"images must be a numpy array or torch tensor, got {type(images).__name__}"
        )
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"images must have a real numeric or bool dtype, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"images must be 2-D (H, W) or a batch (B, H, W), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise ValueError("images is an empty batch (B = 0)")
    if arr.shape[1] < 2 or arr.shape[2] < 2:
        raise ValueError(f"images must be at least 2 x 2 pixels, got shape {tuple(arr.shape)}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError("images contains NaN or infinite values")
    return arr


def _solver_args(
    tol: Any, max_iter: Any, device: Any, dtype: Any
) -> tuple[torch.device, torch.dtype, float]:
    """Validate the PCG parameters; return (device, dtype, tol) with defaults filled in."""
    dev = resolve_device(device)  # a CUDA device without CUDA raises ValueError
    if dtype is None:
        dtype = torch.float64 if dev.type == "cpu" else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if tol is None:
        tol = _DEFAULT_TOL[dtype]
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise ValueError(f"tol must be a float in (0, 1), got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    return dev, dtype, float(tol)

