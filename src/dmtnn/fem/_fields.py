"""Local strain, stress, von Mises stress and energy density of one image (one unit load)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dmtnn.fem._inputs import _DEFAULT_MAX_ITER, _as_image_array, _solver_args
from dmtnn.fem._materials import _check_plane, _phase_lut
from dmtnn.fem._pcg import _reference_medium, _solve_chunk

__all__ = ["LocalFields", "local_fields"]

logger = logging.getLogger(__package__)  # one logger, "dmtnn.fem", for the package

_LOADS = {"xx": 0, "yy": 1, "xy": 2}


@dataclass(frozen=True)
class LocalFields:
    """Local strain and stress fields of one image under one unit macroscopic strain.

    All fields are pixel (element) values at the pixel centres, ``x`` along image
    columns and ``y`` along rows.  Because strain and stress are linear within a
    Q4 pixel, the centre values equal the pixel averages.

    Attributes
    ----------
    load : str
        ``"xx"``, ``"yy"`` or ``"xy"``: the imposed unit macroscopic strain.
    macro_strain : ndarray, shape (3,)
        Imposed macroscopic strain ``(E_xx, E_yy, 2 E_xy)`` (dimensionless).
    strain : ndarray, shape (3, H, W)
        Total strain ``(e_xx, e_yy, 2 e_xy)`` (engineering shear, dimensionless);
        its pixel mean is ``macro_strain``.  In pixels of an empty pore phase
        (``K = G = 0``) it is not physically determined (the displacement of nodes
        touched only by pores is held at zero), and in ``G = 0`` fluid pixels only
        its volumetric part is.
    stress : ndarray, shape (3, H, W)
        Stress ``(s_xx, s_yy, s_xy)`` in GPa; exactly zero in empty pores.  Its pixel
        mean is the column ``load`` of :func:`effective_stiffness` (to the solver
        tolerance).
    von_mises : ndarray, shape (H, W)
        Von Mises equivalent stress in GPa,
        ``sqrt(((s_xx - s_yy)^2 + (s_yy - s_zz)^2 + (s_zz - s_xx)^2) / 2 + 3 s_xy^2)``,
        with the out-of-plane stress of the 2D model: ``s_zz = lambda (e_xx + e_yy)``
        in plane strain (``lambda = K - 2G/3`` = 2D ``kappa - mu``) and ``s_zz = 0`` in
        plane stress.  Zero in empty pores and in ``G = 0`` fluid pixels.
    energy_density : ndarray, shape (H, W)
        Strain-energy density in GPa (= GJ / m^3): the pixel average of
        ``0.5 sigma : eps``, integrated exactly (2 x 2 Gauss points), i.e. the
        centre value ``0.5 s . e`` plus the Q4 hourglass energy of the pixel.  Its
        pixel mean is ``0.5 C[load, load]`` (to the solver tolerance).
    converged : bool
        The PCG met the tolerance (true residual at most ``2 tol``).
    n_iter : int
        PCG iterations.
    rel_residual : float
        Final true relative residual ``||f - K u|| / ||f||``.
    """

    load: str
    macro_strain: np.ndarray
    strain: np.ndarray
    stress: np.ndarray
    von_mises: np.ndarray
    energy_density: np.ndarray
    converged: bool
    n_iter: int
    rel_residual: float


def local_fields(
    image: Any,
    *,
    load: str = "xx",
    phase_moduli: Any = None,
    plane: str = "strain",
    tol: float | None = None,
    max_iter: int = _DEFAULT_MAX_ITER,
    device: Any = None,
    dtype: torch.dtype | None = None,
) -> LocalFields:
    """Local strain, stress, von Mises stress and energy density of one image.

    Solves the periodic problem for one unit macroscopic strain with the PCG of
    :func:`effective_stiffness` (same discretisation, tolerance and precision
    defaults) and evaluates the fields at the pixel centres.

    Parameters
    ----------
    image : array_like or torch.Tensor, shape (H, W) (or (1, H, W))
        One binary image (1 = grain, 0 = pore) or, with ``phase_moduli``, one
        integer phase-id map.
    load : {"xx", "yy", "xy"}
        Unit macroscopic strain: ``E_xx = 1``, ``E_yy = 1`` or unit engineering shear
        ``2 E_xy = 1`` (all other components zero).  The fields are linear in the
        load, so they scale with any strain amplitude.
    phase_moduli, plane, tol, max_iter, device, dtype
        As in :func:`effective_stiffness`.

    Returns
    -------
    LocalFields
        Numpy (float64) fields ``strain`` (3, H, W), ``stress`` (3, H, W) in GPa,
        ``von_mises`` (H, W) in GPa and ``energy_density`` (H, W) in GPa, with
        ``converged``, ``n_iter`` and ``rel_residual``.  A solve that does not
        converge still returns its last iterate (``converged=False``) and logs a
        warning.

    Raises
    ------
    TypeError, ValueError
        For an invalid ``load``, a batch of several images, or invalid images,
        phase tables or solver parameters.
    """
    if not isinstance(load, str) or load not in _LOADS:
        raise ValueError(f"load must be one of 'xx', 'yy', 'xy', got {load!r}")
    _check_plane(plane)
    dev, dtype, tol = _solver_args(tol, max_iter, device, dtype)
    arr = _as_image_array(image)
    if arr.shape[0] != 1:
        raise ValueError(
            f"local_fields takes one image (H, W), got a batch of shape {tuple(arr.shape)}"
        )
    present, lut_k, lut_m = _phase_lut(arr, phase_moduli, plane)
    ids = np.searchsorted(present, arr[0].astype(np.int64))
    kap_px, mu_px = lut_k[ids], lut_m[ids]  # (H, W) 2D moduli in GPa
    j = _LOADS[load]
    E = np.eye(3)[j]
    H, W = kap_px.shape
    scale = float(max(lut_k.max(), lut_m.max()))
    if scale == 0:  # nothing but empty pores
        strain = np.broadcast_to(E[:, None, None], (3, H, W)).copy()
        hour = np.zeros((2, H, W))
        n_iter, rel_res, conv = 0, 0.0, True
    else:
        kappa0, mu0 = _reference_medium(lut_k / scale, lut_m / scale)
        kap_t = torch.as_tensor(kap_px / scale, dtype=dtype, device=dev)[None]
        mu_t = torch.as_tensor(mu_px / scale, dtype=dtype, device=dev)[None]
        *_, fields = _solve_chunk(
            kap_t, mu_t, kappa0, mu0, tol, max_iter, dev, dtype, loads=(j,), return_fields=True
        )
        u, eps, _, it, rr, cv = fields
        strain = eps[0].double().cpu().numpy()
        u = u[0].double().cpu().numpy()  # periodic fluctuation (2, H, W) at the nodes
        u01 = np.roll(u, -1, -1)
        u10 = np.roll(u, -1, -2)
        hour = u - u01 - u10 + np.roll(u10, -1, -1)  # E . x has no hourglass part
        n_iter, rel_res, conv = int(it[0]), float(rr[0]), bool(cv[0])
        if not conv:
            logger.warning(
                "local_fields: PCG did not converge (rel. residual %.2e after %d iterations, "
                "tol %.1e)", rel_res, n_iter, tol,
            )
    exx, eyy, gxy = strain
    k, m = kap_px, mu_px
    stress = np.stack([(k + m) * exx + (k - m) * eyy, (k - m) * exx + (k + m) * eyy, m * gxy])
    sxx, syy, sxy = stress
    szz = (k - m) * (exx + eyy) if plane == "strain" else np.zeros_like(sxx)
    vm = np.sqrt(
        0.5 * ((sxx - syy) ** 2 + (syy - szz) ** 2 + (szz - sxx) ** 2) + 3.0 * sxy**2
    )
    energy = 0.5 * (sxx * exx + syy * eyy + sxy * gxy) + (k + 2.0 * m) / 24.0 * (
        hour[0] ** 2 + hour[1] ** 2
    )
    return LocalFields(
        load=load,
        macro_strain=E,
        strain=strain,
        stress=stress,
        von_mises=vm,
        energy_density=energy,
        converged=conv,
        n_iter=n_iter,
        rel_residual=rel_res,
    )

