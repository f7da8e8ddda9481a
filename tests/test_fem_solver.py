"""Tests of dmtnn.fem's batched PCG solver against exact and reference results.

The references are written independently of the solver: exact laminate formulas,
Hill's equal-shear theorem, the 2D Hashin-Shtrikman bound, the library's float64
sparse direct solve (itself checked in ``test_fem_direct.py``) and, where installed,
muSpectre's FEM.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from scipy import ndimage

from dmtnn import fem
from tests.fem_helpers import KS, MS, TIGHT, direct_case, laminate_C, smooth_image

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# --------------------------------------------------------------------------------------
# Basic cases and laminates
# --------------------------------------------------------------------------------------
def test_homogeneous_and_empty():
    r = fem.elastic_moduli(np.ones((2, 12, 10)), device="cpu")
    np.testing.assert_allclose(r.C, np.broadcast_to(fem.isotropic_stiffness_2d(KS, MS), r.C.shape),
                               rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(r.kappa, KS)
    np.testing.assert_allclose(r.mu, MS)
    assert r.converged.all() and (r.n_iter == 0).all()
    r0 = fem.elastic_moduli(np.zeros((9, 9), dtype=bool), device="cpu")
    assert np.all(r0.C == 0) and r0.kappa[0] == 0 and r0.mu[0] == 0 and r0.converged[0]


@pytest.mark.parametrize("plane", ["strain", "stress"])
@pytest.mark.parametrize("rows", [[0, 0, 1, 2, 2, 2, 1, 1], [2, 2, 0, 1, 1, 1, 1, 0, 0, 2],
                                  [1, 1, 1, 2, 2, 2], [1, 2, 1, 3, 3, 2]])
def test_laminates(plane, rows):
    table = {0: (0.0, 0.0), 1: (36.6, 45.0), 2: (5.0, 3.0), 3: (2.25, 0.0)}
    rows = np.array(rows)
    img = np.repeat(rows[:, None], 6, axis=1)  # layers normal to y (constant along rows)
    ids = sorted(set(rows.tolist()))
    km = {p: fem.solid_moduli_2d(*table[p], plane) for p in ids}
    fr = [np.mean(rows == p) for p in ids]
    expected = laminate_C(fr, [km[p][0] for p in ids], [km[p][1] for p in ids])
    C = fem.effective_stiffness(img, phase_moduli=table, plane=plane, **TIGHT)[0].numpy()
    np.testing.assert_allclose(C, expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    # transposed laminate: layers normal to x, C11 <-> C22
    Ct = fem.effective_stiffness(img.T, phase_moduli=table, plane=plane, **TIGHT)[0].numpy()
    P = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(Ct, P @ expected @ P, rtol=1e-8,
                               atol=1e-8 * np.abs(expected).max())
    # the library's sparse direct solve (pore-only dofs eliminated, fluid modes refined)
    for im, ref in ((img, expected), (img.T, P @ expected @ P)):
        Cd = fem.effective_stiffness_direct(im, phase_moduli=table, plane=plane)[0]
        np.testing.assert_allclose(Cd, ref, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize("case", range(4))
def test_matches_sparse_direct_solve(case):
    img, table, _, _ = direct_case(case)
    C_ref = fem.effective_stiffness_direct(img, phase_moduli=table)[0]
    r = fem.elastic_moduli(img, phase_moduli=table, tol=1e-10, max_iter=20000,
                           dtype=torch.float64, device="cpu")
    assert r.converged.all()
    np.testing.assert_allclose(r.C[0], C_ref, rtol=0, atol=1e-6 * np.abs(C_ref).max())
    kr, mr, _ = fem.isotropic_projection(C_ref)
    assert r.kappa[0] == pytest.approx(kr, rel=1e-6)
    assert r.mu[0] == pytest.approx(mr, rel=1e-6)


# --------------------------------------------------------------------------------------
# Physics checks
# --------------------------------------------------------------------------------------
def test_hill_equal_shear_theorem():
    # two solid phases with the same shear modulus: kappa* is geometry independent
    img = smooth_image(128, 0.4, 5, sigma=3.0)
    table = {0: (8.0, 30.0), 1: (36.6, 30.0)}
    r = fem.elastic_moduli(img, phase_moduli=table, tol=1e-7, dtype=torch.float64, device="cpu")
    k0, m0 = fem.solid_moduli_2d(*table[0])
    k1, m1 = fem.solid_moduli_2d(*table[1])
    assert m0 == m1
    f1 = img.mean()
    hill = 1.0 / ((1 - f1) / (k0 + m0) + f1 / (k1 + m0)) - m0
    assert r.kappa[0] == pytest.approx(hill, rel=5e-3)


@pytest.fixture(scope="module")
def porous_batch():
    imgs = [smooth_image(64, phi, s, sigma=2.0) for s, phi in enumerate([0.1, 0.2, 0.3, 0.4])]
    imgs.append((np.random.default_rng(9).random((64, 64)) > 0.2).astype(np.uint8))
    imgs = np.stack(imgs)
    return imgs, fem.elastic_moduli(imgs, tol=1e-9, dtype=torch.float64, device="cpu")


def test_hashin_shtrikman_upper_bound(porous_batch):
    imgs, r = porous_batch
    assert r.converged.all()
    phi = 1 - imgs.reshape(len(imgs), -1).mean(1)
    k_hs, m_hs = fem.hashin_shtrikman_upper_2d(phi, KS, MS)
    assert np.all(r.kappa < k_hs)
    assert np.all(r.kappa > 0) and np.all(r.mu > 0)
    # bounds reduce to the solid / to zero at the ends
    assert fem.hashin_shtrikman_upper_2d(0.0, KS, MS) == pytest.approx((KS, MS))
    assert fem.hashin_shtrikman_upper_2d(1.0, KS, MS) == pytest.approx((0.0, 0.0), abs=1e-12)


def test_symmetry_and_invariances(porous_batch):
    imgs, r = porous_batch
    C = r.C
    np.testing.assert_allclose(C, np.swapaxes(C, 1, 2), rtol=0, atol=1e-8 * np.abs(C).max())
    img = imgs[2]
    variants = np.stack([np.roll(img, (7, -13), (0, 1)), np.rot90(img), img.T])
    rv = fem.elastic_moduli(variants, tol=1e-9, dtype=torch.float64, device="cpu")
    scale = np.abs(C[2]).max()
    np.testing.assert_allclose(rv.C[0], C[2], rtol=0, atol=1e-9 * scale)  # periodic shift
    assert rv.kappa[1] == pytest.approx(r.kappa[2], rel=1e-8)  # 90 degree rotation
    assert rv.mu[1] == pytest.approx(r.mu[2], rel=1e-8)
    assert rv.C[1][0, 0] == pytest.approx(C[2][1, 1], rel=1e-8)
    assert rv.C[2][0, 0] == pytest.approx(C[2][1, 1], rel=1e-8)  # transpose swaps C11, C22
    assert rv.C[2][1, 1] == pytest.approx(C[2][0, 0], rel=1e-8)
    assert rv.C[2][2, 2] == pytest.approx(C[2][2, 2], rel=1e-8)
    assert rv.C[2][0, 2] == pytest.approx(C[2][1, 2], rel=1e-6, abs=1e-8 * scale)


def test_float32_matches_float64(porous_batch):
    imgs, r = porous_batch
    r32 = fem.elastic_moduli(imgs, dtype=torch.float32, device="cpu")  # default tol
    assert r32.converged.all()
    np.testing.assert_allclose(r32.kappa, r.kappa, rtol=1e-3)
    np.testing.assert_allclose(r32.mu, r.mu, rtol=1e-3)
    r64 = fem.elastic_moduli(imgs, device="cpu")  # default dtype on CPU is float64
    np.testing.assert_allclose(r64.kappa, r.kappa, rtol=1e-4)
    np.testing.assert_allclose(r64.mu, r.mu, rtol=1e-4)
    assert np.all(r64.rel_residual <= 2e-5) and np.all(r64.n_iter > 0)


def test_batch_equals_single_and_chunks(porous_batch):
    imgs, r = porous_batch
    one = fem.elastic_moduli(torch.from_numpy(imgs[1]), tol=1e-9, dtype=torch.float64,
                             device="cpu")
    np.testing.assert_allclose(one.C[0], r.C[1], rtol=0, atol=1e-9 * np.abs(r.C[1]).max())
    batched = fem.elastic_moduli_batched(imgs[:3], batch_size=2, progress=False, tol=1e-9,
                                         dtype=torch.float64, device="cpu")
    np.testing.assert_allclose(batched.kappa, r.kappa[:3], rtol=1e-8)
    assert batched.C.shape == (3, 3, 3) and batched.converged.shape == (3,)


# --------------------------------------------------------------------------------------
# Failure reporting
# --------------------------------------------------------------------------------------
def test_nonconverged_is_nan_and_warned(caplog):
    imgs = np.stack([smooth_image(32, 0.3, 11), np.ones((32, 32), np.uint8)])
    with caplog.at_level(logging.WARNING, logger="dmtnn.fem"):
        r = fem.elastic_moduli(imgs, max_iter=2, device="cpu")
    assert not r.converged[0] and r.converged[1]
    assert np.isnan(r.kappa[0]) and np.isnan(r.mu[0]) and np.all(np.isnan(r.C[0]))
    assert r.kappa[1] == pytest.approx(KS)
    assert r.n_iter[0] == 2 and r.rel_residual[0] > 1e-5
    assert "did not converge" in caplog.text
    C = fem.effective_stiffness(imgs[:1], max_iter=2, device="cpu")
    assert torch.isnan(C).all()


def test_float32_unreachable_tolerance_is_reported():
    img = smooth_image(48, 0.3, 12)
    r = fem.elastic_moduli(img, tol=1e-9, dtype=torch.float32, max_iter=3000, device="cpu")
    assert not r.converged[0] and np.isnan(r.kappa[0])
    assert r.n_iter[0] < 3000  # stagnation detected, not run to max_iter


def test_water_filled_pores_stiffen():
    img = smooth_image(48, 0.25, 13)
    dry = fem.elastic_moduli(img, device="cpu")
    wet = fem.elastic_moduli(img, phase_moduli=[(2.25, 0.0), (36.6, 45.0)], device="cpu")
    assert wet.converged[0] and dry.converged[0]
    assert dry.kappa[0] < wet.kappa[0] < KS


# --------------------------------------------------------------------------------------
# Peer code and GPU
# --------------------------------------------------------------------------------------
def muspectre_stiffness(msp, img, table):
    """C of a phase map with muSpectre's FEM solver (bilinear quadrangle, 4 quad points).

    muSpectre's first grid axis is our y (image rows), so its (00, 11, 01) stress and
    strain components are our (yy, xx, xy).
    """
    n0, n1 = img.shape
    cols = []
    for E in (np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 0.0]]),
              np.array([[0.0, 0.5], [0.5, 0.0]])):  # our xx, yy, engineering xy
        cd = msp.cell.CellData.make([n0, n1], [float(n0), float(n1)])
        cd.nb_quad_pts = 4
        mats = {}
        for pid, (K, G) in table.items():
            young = 9 * K * G / (3 * K + G)
            poisson = (3 * K - 2 * G) / (2 * (3 * K + G))
            mats[pid] = msp.material.MaterialLinearElastic1_2d.make(cd, f"p{pid}", young,
                                                                     poisson)
        for idx, (p0, p1) in cd.pixels.enumerate():
            mats[int(img[p0, p1])].add_pixel(idx)
        disc = msp.Discretisation(msp.FEMStencil.bilinear_quadrangle(cd))
        krylov = msp.solvers.KrylovSolverCG(1e-12, 5000, msp.Verbosity.Silent)
        solver = msp.solvers.SolverFEMNewtonCG(disc, krylov, msp.Verbosity.Silent, 1e-10,
                                               1e-12, 20)
        solver.formulation = msp.Formulation.small_strain
        solver.initialise_cell()
        res = solver.solve_load_increment(E)
        s = np.asarray(res.stress).reshape(2, 2, -1).mean(-1)
        cols.append([s[1, 1], s[0, 0], s[0, 1]])
    return np.array(cols).T


def test_peer_muspectre():
    msp = pytest.importorskip(
        "muSpectre", reason="muSpectre not installed (pip install muspectre==0.27.0)"
    )
    table = {0: (10.0, 5.0), 1: (36.6, 45.0), 2: (2.0, 1.0)}
    rng = np.random.default_rng(21)
    imgs = [rng.integers(0, 2, (8, 6)), rng.integers(0, 3, (12, 16)),
            ndimage.median_filter(rng.integers(0, 3, (24, 20)), 3, mode="wrap")]
    for img in imgs:
        ref = muspectre_stiffness(msp, img, table)
        C = fem.effective_stiffness(img, phase_moduli=table, **TIGHT)[0].numpy()
        np.testing.assert_allclose(C, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu(porous_batch):
    imgs, r = porous_batch
    rg = fem.elastic_moduli(imgs, device="cuda")  # float32 by default on CUDA
    assert rg.converged.all()
    np.testing.assert_allclose(rg.kappa, r.kappa, rtol=1e-3)
    np.testing.assert_allclose(rg.mu, r.mu, rtol=1e-3)
    rg64 = fem.elastic_moduli(imgs, device="cuda", dtype=torch.float64, tol=1e-9)
    np.testing.assert_allclose(rg64.C, r.C, rtol=0, atol=1e-8 * np.abs(r.C).max())
