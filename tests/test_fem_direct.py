"""Tests of dmtnn.fem's float64 sparse direct solver (``fem.effective_stiffness_direct``).

It is checked against the test's own float64 scipy.sparse assembly of the textbook
isoparametric Q4 element on [-1, 1]^2 (below) and against exact results; it then
serves as the reference for the PCG in ``test_fem_solver.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from dmtnn import fem
from tests.fem_helpers import TIGHT, direct_case, smooth_image

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# --------------------------------------------------------------------------------------
# Independent sparse direct reference
# --------------------------------------------------------------------------------------
def q4_element(lam, mu):
    """Q4 stiffness on the unit square via the isoparametric element on [-1, 1]^2.

    Node order: (x, y) = (0, 0), (1, 0), (0, 1), (1, 1); DOFs (ux, uy) per node.
    Also returns the four Gauss-point B matrices (physical coordinates).
    """
    D = np.array([[lam + 2 * mu, lam, 0], [lam, lam + 2 * mu, 0], [0, 0, mu]], dtype=float)
    xi_n = np.array([-1, 1, -1, 1])
    eta_n = np.array([-1, -1, 1, 1])
    Ke = np.zeros((8, 8))
    Bs = []
    g = 1 / np.sqrt(3)
    for xi in (-g, g):
        for eta in (-g, g):
            dn_dxi = 0.25 * xi_n * (1 + eta_n * eta)
            dn_deta = 0.25 * eta_n * (1 + xi_n * xi)
            dn_dx, dn_dy = 2 * dn_dxi, 2 * dn_deta  # x = (xi + 1) / 2
            B = np.zeros((3, 8))
            B[0, 0::2] = dn_dx
            B[1, 1::2] = dn_dy
            B[2, 0::2] = dn_dy
            B[2, 1::2] = dn_dx
            Ke += B.T @ D @ B * 0.25  # weight 1 * det J (1/4)
            Bs.append(B)
    return Ke, D, Bs


def direct_stiffness(kappa, mu):
    """Effective Voigt C by a float64 sparse direct solve; kappa, mu (H, W) 2D moduli.

    Independent of ``fem.effective_stiffness_direct`` (own element, assembly and
    singular-mode handling: a plain Tikhonov shift, accurate to about 1e-7 relative).
    """
    H, W = kappa.shape
    n_dof = 2 * H * W
    ii, jj = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    nodes = np.stack(
        [ii * W + jj, ii * W + (jj + 1) % W, ((ii + 1) % H) * W + jj,
         ((ii + 1) % H) * W + (jj + 1) % W], 1)
    dofs = np.stack([2 * nodes, 2 * nodes + 1], 2).reshape(-1, 8)
    kv, mv = kappa.ravel(), mu.ravel()
    k1, _, _ = q4_element(1.0, 0.0)  # lambda-part (kappa - mu = lambda)
    k2, _, _ = q4_element(0.0, 1.0)  # mu-part
    lam = kv - mv
    Kes = lam[:, None, None] * k1 + mv[:, None, None] * k2
    rows = np.repeat(dofs, 8, axis=1).ravel()
    cols = np.tile(dofs, (1, 8)).ravel()
    K = sp.csr_matrix((Kes.ravel(), (rows, cols)), shape=(n_dof, n_dof))
    stiff = (kv > 0) | (mv > 0)
    active = np.zeros(n_dof, bool)
    active[dofs[stiff].ravel()] = True
    a = np.flatnonzero(active)
    Kaa = K[a][:, a].tocsc()
    # tiny Tikhonov shift: the system is singular (floating grains, hinges) but consistent
    diag = Kaa.diagonal()
    Kreg = Kaa + sp.identity(len(a), format="csc") * (1e-11 * diag.max())
    lu = spla.splu(Kreg)
    x_loc = np.array([0.0, 1.0, 0.0, 1.0])
    y_loc = np.array([0.0, 0.0, 1.0, 1.0])
    _, _, Bs = q4_element(0.0, 1.0)
    C = np.zeros((3, 3))
    for col, (exx, eyy, gxy) in enumerate(np.eye(3)):
        ue = np.zeros(8)
        ue[0::2] = exx * x_loc + 0.5 * gxy * y_loc
        ue[1::2] = 0.5 * gxy * x_loc + eyy * y_loc
        fe = -(Kes @ ue)  # (n_el, 8)
        f = np.bincount(dofs.ravel(), weights=fe.ravel(), minlength=n_dof)
        u = np.zeros(n_dof)
        u[a] = lu.solve(f[a])
        ue_all = u[dofs] + ue  # (n_el, 8)
        sig = np.zeros(3)
        for B in Bs:
            eps = ue_all @ B.T  # (n_el, 3)
            s = np.stack([(lam + 2 * mv) * eps[:, 0] + lam * eps[:, 1],
                          lam * eps[:, 0] + (lam + 2 * mv) * eps[:, 1], mv * eps[:, 2]], 1)
            sig += 0.25 * s.sum(0)
        C[:, col] = sig / (H * W)
    return C


# --------------------------------------------------------------------------------------
# The library's direct solver
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [2, 3])
def test_direct_solver_matches_independent_assembly(case):
    img, table, kap, mu = direct_case(case)
    C_ref = direct_stiffness(kap, mu)  # the test's own element and assembly
    C = fem.effective_stiffness_direct(img, phase_moduli=table)
    assert C.shape == (1, 3, 3) and C.dtype == np.float64
    np.testing.assert_allclose(C[0], C_ref, rtol=0, atol=1e-7 * np.abs(C_ref).max())


def test_direct_homogeneous_empty_batch_and_fluid():
    imgs = np.stack([np.ones((6, 8)), np.zeros((6, 8)), smooth_image(0, 0.3, 7, shape=(6, 8))])
    C = fem.effective_stiffness_direct(imgs, plane="stress")
    k, m = fem.solid_moduli_2d(fem.QUARTZ_K, fem.QUARTZ_G, "stress")
    np.testing.assert_allclose(C[0], fem.isotropic_stiffness_2d(k, m), rtol=1e-12, atol=1e-12)
    assert np.all(C[1] == 0)
    np.testing.assert_allclose(C[2], fem.effective_stiffness_direct(imgs[2], plane="stress")[0],
                               rtol=0, atol=1e-14 * np.abs(C[2]).max())  # batch = single
    # water-filled pores (G = 0: divergence-free zero-energy modes) against a tight PCG
    img = smooth_image(24, 0.3, 8)
    table = [(2.25, 0.0), (36.6, 45.0)]
    Cd = fem.effective_stiffness_direct(torch.from_numpy(img), phase_moduli=table)[0]
    Cp = fem.effective_stiffness(img, phase_moduli=table, **TIGHT)[0].numpy()
    np.testing.assert_allclose(Cd, Cp, rtol=0, atol=1e-8 * np.abs(Cp).max())
