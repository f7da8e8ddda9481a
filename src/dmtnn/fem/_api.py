"""The public solver entry points: effective stiffness, elastic moduli and batch labelling."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dmtnn.fem._inputs import _DEFAULT_MAX_ITER
from dmtnn.fem._materials import isotropic_projection
from dmtnn.fem._pcg import _solve

__all__ = ["FEMResult", "effective_stiffness", "elastic_moduli", "elastic_moduli_batched"]


@dataclass(frozen=True)
class FEMResult:
    """Effective elastic properties of a batch of images.

    Attributes
    ----------
    kappa : ndarray, shape (B,)
        2D (area) bulk modulus ``(C11 + C12 + C21 + C22) / 4`` in GPa; NaN where
        the solve did not converge.
    mu : ndarray, shape (B,)
        Shear modulus of the isotropic projection,
        ``(C11 + C22 - C12 - C21) / 8 + C33 / 2`` in GPa; NaN where not converged.
    C : ndarray, shape (B, 3, 3)
        Effective Voigt stiffness (engineering shear) in GPa; NaN where not converged.
    anisotropy : ndarray, shape (B,)
        Relative Frobenius (Mandel) distance of C from its isotropic projection.
    converged : ndarray of bool, shape (B,)
        All three load cases met the relative-residual tolerance (true residual).
    n_iter : ndarray of int, shape (B,)
        PCG iterations (maximum over the three load cases).
    rel_residual : ndarray, shape (B,)
        Final true relative residual ``||f - K u|| / ||f||`` (max over load cases).
    """

    kappa: np.ndarray
    mu: np.ndarray
    C: np.ndarray
    anisotropy: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    rel_residual: np.ndarray


# The parameters shared by effective_stiffness and elastic_moduli, written once and put
# into both docstrings in place of their "{parameters}" line by @_solver_parameters.
_SOLVER_PARAMETERS = """\
    images : array_like or torch.Tensor, shape (H, W) or (B, H, W)
        Binary images (1 = grain, 0 = pore; bool, integer or 0./1. floats) when
        ``phase_moduli`` is None, otherwise integer phase-id maps.
    phase_moduli : mapping or sequence, optional
        Per-phase 3D moduli ``{phase_id: (K, G)}`` (GPa), or a sequence of
        ``(K, G)`` indexed by phase id, e.g. ``{0: (2.25, 0.0), 1: (36.6, 45.0)}``
        for water-filled pores in quartz.  Default: pores empty (zero stiffness),
        grains quartz ``K = 36.6, G = 45.0`` GPa (Mavko et al.).
    plane : {"strain", "stress"}
        Plane strain (default) or plane stress 2D moduli, see :func:`solid_moduli_2d`.
    tol : float, optional
        Relative residual ``||f - K u||_2 / ||f||_2`` at which each system (image x
        load case) stops; a system counts as converged when its *true* residual is
        at most ``2 tol``.  Default: 1e-5 for float64, 1e-4 for float32 (whose
        rounding floor is about 1e-5 to 3e-5 on 64-256 px porous images).  Measured
        moduli errors against a direct solve at these defaults: about 1e-6 (float64)
        and 1e-4 (float32) relative, see ``bench/fem.py``.
    max_iter : int
        Maximum number of PCG iterations; systems that have not converged by then
        are reported as not converged (NaN moduli and a logging warning).
    device : str or torch.device, optional
        ``"auto"`` or None (default): CUDA when available, else CPU
        (:func:`dmtnn.settings.resolve_device`).
    dtype : torch.dtype, optional
        ``torch.float32`` or ``torch.float64``.  Default: float64 on the CPU,
        float32 on CUDA.
    batch_size : int, optional
        Images per solver chunk (default: sized to about 2**18 pixel-systems on the
        CPU, 2**27 on CUDA).
"""


def _solver_parameters(func: Callable) -> Callable:
    """Put the shared parameter list into ``func.__doc__`` (its ``{parameters}`` line)."""
    if func.__doc__:  # None under python -OO
        func.__doc__ = func.__doc__.replace("    {parameters}\n", _SOLVER_PARAMETERS)
    return func


@_solver_parameters
def effective_stiffness(
    images: Any,
    *,
    phase_moduli: Any = None,
    plane: str = "strain",
    tol: float | None = None,
    max_iter: int = _DEFAULT_MAX_ITER,
    device: Any = None,
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Effective 2D stiffness of digital-rock images by periodic Q4 finite elements.

    Solves the three unit macroscopic strains with the batched FFT-preconditioned
    CG (see :mod:`dmtnn.fem`) and volume-averages the stress:
    ``C[:, :, j] = <D (E_j + eps(w_j))>``.

    Parameters
    ----------
    {parameters}

    Returns
    -------
    C : torch.Tensor, shape (B, 3, 3), float64, on the CPU
        Voigt stiffness (engineering shear) in GPa; rows and columns ordered
        ``(xx, yy, xy)`` with x along image columns.  NaN for images whose solve
        did not converge.

    Raises
    ------
    TypeError, ValueError
        For invalid images, phase tables or solver parameters.
    """
    return _solve(images, phase_moduli, plane, tol, max_iter, device, dtype, batch_size)[0]


@_solver_parameters
def elastic_moduli(
    images: Any,
    *,
    phase_moduli: Any = None,
    plane: str = "strain",
    tol: float | None = None,
    max_iter: int = _DEFAULT_MAX_ITER,
    device: Any = None,
    dtype: torch.dtype | None = None,
    batch_size: int | None = None,
) -> FEMResult:
    """Effective 2D bulk and shear moduli (GPa) of digital-rock images.

    ``kappa = (C11 + C12 + C21 + C22) / 4`` (2D area bulk modulus) and
    ``mu = (C11 + C22 - C12 - C21) / 8 + C33 / 2`` (isotropic projection, see
    :func:`isotropic_projection`) of the stiffness from :func:`effective_stiffness`.

    Parameters
    ----------
    {parameters}

    Returns
    -------
    FEMResult
        Per-image kappa, mu, C, anisotropy, converged, n_iter and rel_residual
        (numpy arrays).  Moduli of non-converged images are NaN.

    Raises
    ------
    TypeError, ValueError
        For invalid images, phase tables or solver parameters.
    """
    C, n_iter, rel_res, conv = _solve(
        images, phase_moduli, plane, tol, max_iter, device, dtype, batch_size
    )
    kappa, mu, aniso = isotropic_projection(C)
    return FEMResult(
        kappa=kappa.numpy(),
        mu=mu.numpy(),
        C=C.numpy(),
        anisotropy=aniso.numpy(),
        converged=conv,
        n_iter=n_iter,
        rel_residual=rel_res,
    )


def elastic_moduli_batched(
    images: Any,
    batch_size: int = 64,
    progress: bool = True,
    **kwargs: Any,
) -> FEMResult:
    """Elastic moduli of many images, batch by batch, with an optional tqdm bar.

    Parameters
    ----------
    images : array_like or torch.Tensor, shape (N, H, W)
        Binary images or phase maps (see :func:`elastic_moduli`).
    batch_size : int
        Images per call of :func:`elastic_moduli`.
    progress : bool
        Show a tqdm progress bar.
    **kwargs
        Passed on to :func:`elastic_moduli` (phase_moduli, plane, tol, ...).

    Returns
    -------
    FEMResult
        Concatenated over all images.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
        batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = len(images)
    if n == 0:
        raise ValueError("images is an empty batch (N = 0)")
    starts = range(0, n, batch_size)
    if progress:
        starts = tqdm(starts, total=math.ceil(n / batch_size), desc="FEM moduli", unit="batch")
    parts = [elastic_moduli(images[s : s + batch_size], **kwargs) for s in starts]
    return FEMResult(
        **{
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in FEMResult.__dataclass_fields__
        }
    )
