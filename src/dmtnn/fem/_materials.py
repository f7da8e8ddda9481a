"""Materials: quartz, 2D moduli of a 3D solid, isotropic projection, 2D HS bounds, phase tables.

Moduli are in GPa; 2D stiffness matrices are in Voigt notation with engineering
shear strain, ``sigma = C @ (e_xx, e_yy, 2 e_xy)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from dmtnn.rocks import QUARTZ_G, QUARTZ_K

__all__ = [
    "QUARTZ_K",
    "QUARTZ_G",
    "solid_moduli_2d",
    "hashin_shtrikman_upper_2d",
    "isotropic_projection",
    "isotropic_stiffness_2d",
]



def _check_plane(plane: str) -> None:
    if plane not in ("strain", "stress"):
        raise ValueError(f"plane must be 'strain' or 'stress', got {plane!r}")


def solid_moduli_2d(K: Any, G: Any, plane: str = "strain") -> tuple[Any, Any]:
    """2D (in-plane) bulk and shear moduli of an isotropic 3D solid.

    Parameters
    ----------
    K, G : float or array_like
        3D bulk and shear moduli (GPa), ``K >= 0``, ``G >= 0``.
    plane : {"strain", "stress"}
        Plane strain: ``kappa = K + G/3`` (= lambda + mu).  Plane stress:
        ``kappa = 9 K G / (3 K + 4 G)`` (= lambda* + mu with
        ``lambda* = 2 lambda mu / (lambda + 2 mu)``); ``0`` when ``3K + 4G = 0``.

    Returns
    -------
    kappa, mu : float or ndarray
        2D area bulk modulus and shear modulus (GPa); ``mu = G``.  The 2D
        Voigt stiffness is ``[[k+m, k-m, 0], [k-m, k+m, 0], [0, 0, m]]``.
    """
    _check_plane(plane)
    K_arr = np.asarray(K, dtype=float)
    G_arr = np.asarray(G, dtype=float)
    if plane == "strain":
        kappa = K_arr + G_arr / 3.0
    else:
        den = 3.0 * K_arr + 4.0 * G_arr
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = np.where(den > 0, 9.0 * K_arr * G_arr / np.where(den > 0, den, 1.0), 0.0)
    mu = G_arr
    if kappa.ndim == 0:
        return float(kappa), float(mu)
    return kappa, mu


def isotropic_stiffness_2d(kappa: float, mu: float) -> np.ndarray:
    """2D isotropic Voigt stiffness ``[[k+m, k-m, 0], [k-m, k+m, 0], [0, 0, m]]`` (GPa)."""
    return np.array(
        [[kappa + mu, kappa - mu, 0.0], [kappa - mu, kappa + mu, 0.0], [0.0, 0.0, mu]]
    )


def isotropic_projection(C: Any) -> tuple[Any, Any, Any]:
    """Orthogonal projection of 2D stiffness matrices onto isotropic tensors.

    With Mandel notation (``C_M = W C W``, ``W = diag(1, 1, sqrt 2)`` applied to
    the Voigt matrix with engineering shear, i.e. ``C_M[2,2] = 2 C[2,2]``), the
    Frobenius inner product of matrices equals that of fourth-order tensors.
    2D isotropic tensors are ``2 kappa J + 2 mu K`` with the orthogonal
    projectors ``J = (1/2) I (x) I`` (rank 1) and ``K = I_sym - J`` (rank 2), so

        kappa = <C, J> / 2 = (C11 + C12 + C21 + C22) / 4,
        mu    = <C, K> / 4 = (C11 + C22 - C12 - C21) / 8 + C33 / 2,

    where C is the Voigt (engineering-shear) matrix.  An isotropic C returns its
    own kappa and mu.  The anisotropy indicator is the relative Frobenius
    distance ``||C_M - C_iso_M||_F / ||C_M||_F`` (0 for isotropic C, 0 for C = 0).

    Parameters
    ----------
    C : array_like or torch.Tensor, shape (..., 3, 3)
        Voigt stiffness (GPa).

    Returns
    -------
    kappa, mu, anisotropy : same type as ``C`` (floats for a single numpy C), shape (...)
    """
    is_torch = isinstance(C, torch.Tensor)
    Ct = C if is_torch else torch.as_tensor(np.asarray(C, dtype=float))
    kappa = (Ct[..., 0, 0] + Ct[..., 0, 1] + Ct[..., 1, 0] + Ct[..., 1, 1]) / 4.0
    mu = (Ct[..., 0, 0] + Ct[..., 1, 1] - Ct[..., 0, 1] - Ct[..., 1, 0]) / 8.0 + Ct[..., 2, 2] / 2.0
    w = torch.tensor([1.0, 1.0, math.sqrt(2.0)], dtype=Ct.dtype, device=Ct.device)
    Wm = w[:, None] * w[None, :]
    CM = Ct * Wm
    iso = _iso_voigt(kappa, mu) * Wm
    num = torch.linalg.matrix_norm(CM - iso)
    den = torch.linalg.matrix_norm(CM)
    aniso = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), 0.0 * den)
    if is_torch:
        return kappa, mu, aniso
    if kappa.ndim == 0:
        return float(kappa), float(mu), float(aniso)
    return kappa.numpy(), mu.numpy(), aniso.numpy()


def _iso_voigt(kappa: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(kappa)
    rows = [
        torch.stack([kappa + mu, kappa - mu, z], -1),
        torch.stack([kappa - mu, kappa + mu, z], -1),
        torch.stack([z, z, mu], -1),
    ]
    return torch.stack(rows, -2)


def hashin_shtrikman_upper_2d(phi: Any, kappa_s: float, mu_s: float) -> tuple[Any, Any]:
    """2D Hashin-Shtrikman upper bounds for a solid with empty pores.

    For phases with area fractions ``f_i``, the 2D HS upper bounds (Torquato
    2002, with the stiffest phase s) are

        kappa_HS+ = [sum_i f_i / (kappa_i + mu_s)]^-1 - mu_s,
        mu_HS+    = [sum_i f_i / (mu_i + zeta_s)]^-1 - zeta_s,
        zeta_s    = kappa_s mu_s / (kappa_s + 2 mu_s).

    With void pores (``kappa = mu = 0``, fraction ``phi``):
    ``kappa_HS+ = 1 / ((1-phi)/(kappa_s+mu_s) + phi/mu_s) - mu_s`` and
    ``mu_HS+ = 1 / ((1-phi)/(mu_s+zeta_s) + phi/zeta_s) - zeta_s``.
    The kappa bound holds for the hydrostatic energy ``kappa`` of
    :func:`isotropic_projection` for any (also anisotropic) geometry.

    Parameters
    ----------
    phi : float or array_like
        Porosity (area fraction of pores), in [0, 1].
    kappa_s, mu_s : float
        2D bulk and shear moduli of the solid (GPa), e.g. from
        :func:`solid_moduli_2d`.

    Returns
    -------
    kappa_hs, mu_hs : float or ndarray
        Upper bounds (GPa).
    """
    phi_a = np.asarray(phi, dtype=float)
    if np.any(~np.isfinite(phi_a)) or np.any((phi_a < 0) | (phi_a > 1)):
        raise ValueError("phi must be a porosity in [0, 1]")
    if kappa_s <= 0 or mu_s <= 0:
        raise ValueError("kappa_s and mu_s must be positive")
    zeta = kappa_s * mu_s / (kappa_s + 2.0 * mu_s)
    k = 1.0 / ((1.0 - phi_a) / (kappa_s + mu_s) + phi_a / mu_s) - mu_s
    m = 1.0 / ((1.0 - phi_a) / (mu_s + zeta) + phi_a / zeta) - zeta
    if k.ndim == 0:
        return float(k), float(m)
    return k, m


# --------------------------------------------------------------------------------------
# Phase tables
# --------------------------------------------------------------------------------------
def _phase_table(phase_moduli: Any, plane: str) -> dict[int, tuple[float, float]]:
    """Normalise a phase table to {id: (kappa_2d, mu_2d)}."""
    if isinstance(phase_moduli, Mapping):
        items = list(phase_moduli.items())
    elif isinstance(phase_moduli, (Sequence, np.ndarray)) and not isinstance(phase_moduli, str):
        items = list(enumerate(phase_moduli))
    else:
        raise TypeError(
            "phase_moduli must be a mapping {phase_id: (K, G)} or a sequence of (K, G) "
            f"indexed by phase id, got {type(phase_moduli).__name__}"
        )
    if not items:
        raise ValueError("phase_moduli is empty")
    table: dict[int, tuple[float, float]] = {}
    for pid, kg in items:
        if isinstance(pid, (bool, np.bool_)) or not isinstance(pid, (int, np.integer)):
            raise TypeError(f"phase_moduli keys must be integer phase ids, got {pid!r}")
        try:
            K, G = (float(v) for v in kg)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"phase_moduli[{pid}] must be a pair (K, G) of numbers in GPa, got {kg!r}"
            ) from exc
        if not (math.isfinite(K) and math.isfinite(G)) or K < 0 or G < 0:
            raise ValueError(f"phase_moduli[{pid}] = ({K}, {G}) must be finite and >= 0 GPa")
        table[int(pid)] = solid_moduli_2d(K, G, plane)
    return table


def _phase_lut(
    arr: np.ndarray, phase_moduli: Any, plane: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the images; return (phase ids present, 2D kappa, 2D mu per id) in GPa."""
    if phase_moduli is None:
        vals = np.unique(arr)
        if not np.all(np.isin(vals, (0, 1))):
            bad = vals[~np.isin(vals, (0, 1))][:5]
            raise ValueError(
                "images must be binary (1 = grain, 0 = pore) when phase_moduli is None; "
                f"found values such as {bad.tolist()}"
            )
        ks, ms = solid_moduli_2d(QUARTZ_K, QUARTZ_G, plane)
        return np.array([0, 1]), np.array([0.0, ks]), np.array([0.0, ms])
    table = _phase_table(phase_moduli, plane)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
        raise ValueError("images must hold integer phase ids when phase_moduli is given")
    present = np.unique(arr).astype(np.int64)
    missing = [int(p) for p in present if int(p) not in table]
    if missing:
        raise ValueError(
            f"images contains phase ids {missing[:10]} that are not in phase_moduli "
            f"(known ids: {sorted(table)})"
        )
    lut_k = np.array([table[int(p)][0] for p in present])
    lut_m = np.array([table[int(p)][1] for p in present])
    return present, lut_k, lut_m

