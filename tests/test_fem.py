"""Tests of dmtnn.fem: periodic Q4 elasticity of pixel images.

The reference solutions are written independently of the module: exact laminate
formulas, Hill's equal-shear theorem, the 2D Hashin-Shtrikman bound and a float64
scipy.sparse direct solve of the same discretisation (assembled below from the
textbook isoparametric Q4 element on [-1, 1]^2).  The library's own direct solver
(``fem.effective_stiffness_direct``) is checked against that independent assembly and
the exact laminate formulas, and then serves as the reference for the PCG.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from scipy import ndimage

from dmtnn import fem

KS, MS = fem.solid_moduli_2d(fem.QUARTZ_K, fem.QUARTZ_G, "strain")
TIGHT = dict(tol=1e-11, max_iter=20000, dtype=torch.float64, device="cpu")


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Run torch on one thread: these small grids gain nothing from two, and a contended
    2-core CPU (other processes busy) slows torch's thread pool down by 10-100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def smooth_image(n, phi, seed, sigma=2.0, shape=None):
    """Binary image (1 = grain): thresholded Gaussian-smoothed periodic noise."""
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal(shape or (n, n)), sigma, mode="wrap")
    return (g > np.quantile(g, phi)).astype(np.uint8)


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
# Basic cases
# --------------------------------------------------------------------------------------
def test_solid_moduli_and_isotropic_projection():
    k, m = fem.solid_moduli_2d(36.6, 45.0, "strain")
    assert k == pytest.approx(36.6 + 15.0) and m == 45.0
    # plane stress: kappa = 9KG / (3K + 4G) = E / (2 (1 - nu))
    E = 9 * 36.6 * 45 / (3 * 36.6 + 45)
    nu = (3 * 36.6 - 2 * 45) / (2 * (3 * 36.6 + 45))
    k2, _ = fem.solid_moduli_2d(36.6, 45.0, "stress")
    assert k2 == pytest.approx(E / (2 * (1 - nu)))
    for kappa, mu in [(51.6, 45.0), (2.0, 7.0), (0.0, 0.0)]:
        C = fem.isotropic_stiffness_2d(kappa, mu)
        kp, mp, an = fem.isotropic_projection(C)
        assert kp == pytest.approx(kappa) and mp == pytest.approx(mu) and an < 1e-14
    # projection is orthogonal: residual is Frobenius-orthogonal (Mandel) to the basis
    C = np.random.default_rng(0).standard_normal((3, 3))
    C = C + C.T
    kp, mp, an = fem.isotropic_projection(C)
    w = np.array([1, 1, np.sqrt(2)])
    R = (C - fem.isotropic_stiffness_2d(kp, mp)) * np.outer(w, w)
    for basis in (fem.isotropic_stiffness_2d(1, 0), fem.isotropic_stiffness_2d(0, 1)):
        assert abs(np.sum(R * basis * np.outer(w, w))) < 1e-12
    assert an > 0


def test_homogeneous_and_empty():
    r = fem.elastic_moduli(np.ones((2, 12, 10)), device="cpu")
    np.testing.assert_allclose(r.C, np.broadcast_to(fem.isotropic_stiffness_2d(KS, MS), r.C.shape),
                               rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(r.kappa, KS)
    np.testing.assert_allclose(r.mu, MS)
    assert r.converged.all() and (r.n_iter == 0).all()
    r0 = fem.elastic_moduli(np.zeros((9, 9), dtype=bool), device="cpu")
    assert np.all(r0.C == 0) and r0.kappa[0] == 0 and r0.mu[0] == 0 and r0.converged[0]


def test_phase_map_homogeneous_plane_stress():
    img = np.full((8, 8), 3)
    C = fem.effective_stiffness(img, phase_moduli={3: (10.0, 6.0)}, plane="stress", device="cpu")
    k, m = fem.solid_moduli_2d(10.0, 6.0, "stress")
    np.testing.assert_allclose(C[0].numpy(), fem.isotropic_stiffness_2d(k, m), rtol=1e-14)


# --------------------------------------------------------------------------------------
# Laminates
# --------------------------------------------------------------------------------------
def laminate_C(fracs, kappas, mus):
    """Exact C of a laminate with layers normal to y (Voigt, engineering shear).

    In every layer e_xx = E_xx while s_yy and s_xy are uniform:
    C22 = <1/a>^-1, C12 = <b/a>/<1/a>, C33 = <1/m>^-1,
    C11 = <a - b^2/a> + <b/a>^2/<1/a> with a = k + m, b = k - m.
    A void layer (a = m = 0) cuts the load path across the layers: C22 = C12 =
    C33 = 0 and C11 = sum over solid layers f (a - b^2/a).
    """
    f, k, m = (np.asarray(v, float) for v in (fracs, kappas, mus))
    a, b = k + m, k - m
    C = np.zeros((3, 3))
    if np.any(a == 0):
        s = a > 0
        C[0, 0] = np.sum(f[s] * (a[s] - b[s] ** 2 / a[s]))
        return C
    ia, ba = np.sum(f / a), np.sum(f * b / a)
    C[0, 0] = np.sum(f * (a - b**2 / a)) + ba**2 / ia
    C[1, 1] = 1 / ia
    C[0, 1] = C[1, 0] = ba / ia
    C[2, 2] = 0.0 if np.any(m == 0) else 1 / np.sum(f / m)
    return C


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


# --------------------------------------------------------------------------------------
# Sparse direct reference
# --------------------------------------------------------------------------------------
def direct_case(case):
    """(image, phase table, 2D kappa map, 2D mu map) of the direct-solve test cases."""
    if case == 0:
        img = smooth_image(48, 0.25, 1)
        table = None
    elif case == 1:
        img = smooth_image(0, 0.35, 2, sigma=1.5, shape=(40, 56))
        table = None
    elif case == 2:  # pixel noise: many floating grains and corner hinges
        img = (np.random.default_rng(3).random((32, 32)) > 0.3).astype(np.uint8)
        table = None
    else:  # three phases incl. water-free void and a soft solid
        rng = np.random.default_rng(4)
        img = rng.integers(0, 3, size=(36, 36))
        img = ndimage.median_filter(img, size=3, mode="wrap")
        table = {0: (0.0, 0.0), 1: (36.6, 45.0), 2: (10.0, 4.0)}
    if table is None:
        kap = np.where(img == 1, KS, 0.0)
        mu = np.where(img == 1, MS, 0.0)
    else:
        k2 = {p: fem.solid_moduli_2d(*v) for p, v in table.items()}
        kap = np.vectorize(lambda p: k2[p][0])(img)
        mu = np.vectorize(lambda p: k2[p][1])(img)
    return img, table, kap, mu


@pytest.mark.parametrize("case", [2, 3])
def test_direct_solver_matches_independent_assembly(case):
    img, table, kap, mu = direct_case(case)
    C_ref = direct_stiffness(kap, mu)  # the test's own element and assembly
    C = fem.effective_stiffness_direct(img, phase_moduli=table)
    assert C.shape == (1, 3, 3) and C.dtype == np.float64
    np.testing.assert_allclose(C[0], C_ref, rtol=0, atol=1e-7 * np.abs(C_ref).max())


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


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(images=np.full((4, 4), 2)), ValueError, "binary"),
        (dict(images=np.ones((2, 3, 4, 4))), ValueError, "2-D"),
        (dict(images=np.ones((4, 4)), plane="3d"), ValueError, "plane"),
        (dict(images=np.array([[0, 1], [2, 5]]), phase_moduli={0: (1, 1), 1: (2, 2)}),
         ValueError, r"phase ids \[2, 5\]"),
    ],
)
def test_direct_bad_inputs(kwargs, exc, match):
    kwargs = dict(kwargs)
    images = kwargs.pop("images")
    with pytest.raises(exc, match=match):
        fem.effective_stiffness_direct(images, **kwargs)


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
    lab = fem.label_images(imgs[:3], batch_size=2, progress=False, tol=1e-9,
                           dtype=torch.float64, device="cpu")
    np.testing.assert_allclose(lab.kappa, r.kappa[:3], rtol=1e-8)
    assert lab.C.shape == (3, 3, 3) and lab.converged.shape == (3,)


# --------------------------------------------------------------------------------------
# Failure reporting and input validation
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


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(images=np.full((4, 4), 2)), ValueError, "binary"),
        (dict(images=np.array([[0.0, np.nan], [1.0, 1.0]])), ValueError, "NaN"),
        (dict(images=np.ones((2, 3, 4, 4))), ValueError, "2-D"),
        (dict(images=np.ones(5)), ValueError, "2-D"),
        (dict(images=np.ones((0, 4, 4))), ValueError, "empty"),
        (dict(images="abc"), TypeError, "images"),
        (dict(images=np.ones((4, 4), dtype=complex)), TypeError, "dtype"),
        (dict(images=np.ones((4, 4)), plane="3d"), ValueError, "plane"),
        (dict(images=np.ones((4, 4)), tol=0.0), ValueError, "tol"),
        (dict(images=np.ones((4, 4)), max_iter=0), ValueError, "max_iter"),
        (dict(images=np.ones((4, 4)), dtype=torch.float16), TypeError, "dtype"),
        (dict(images=np.array([[0, 1], [2, 5]]), phase_moduli={0: (1, 1), 1: (2, 2)}),
         ValueError, r"phase ids \[2, 5\]"),
        (dict(images=np.ones((4, 4)), phase_moduli={1: (-1.0, 2.0)}), ValueError,
         "phase_moduli"),
        (dict(images=np.ones((4, 4)), phase_moduli=3.0), TypeError, "phase_moduli"),
        (dict(images=np.full((4, 4), 0.5), phase_moduli=[(1, 1), (2, 2)]), ValueError,
         "integer phase ids"),
    ],
)
def test_bad_inputs(kwargs, exc, match):
    kwargs = dict(kwargs)
    images = kwargs.pop("images")
    with pytest.raises(exc, match=match):
        fem.effective_stiffness(images, device="cpu", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        fem.effective_stiffness(np.ones((4, 4)), device="cuda")


def test_water_filled_pores_stiffen():
    img = smooth_image(48, 0.25, 13)
    dry = fem.elastic_moduli(img, device="cpu")
    wet = fem.elastic_moduli(img, phase_moduli=[(2.25, 0.0), (36.6, 45.0)], device="cpu")
    assert wet.converged[0] and dry.converged[0]
    assert dry.kappa[0] < wet.kappa[0] < KS


def test_label_images_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        fem.label_images(np.ones((2, 4, 4)), batch_size=0, progress=False)


# --------------------------------------------------------------------------------------
# Local fields
# --------------------------------------------------------------------------------------
LOADS = {"xx": 0, "yy": 1, "xy": 2}


def von_mises_3d(sxx, syy, szz, sxy):
    return np.sqrt(0.5 * ((sxx - syy) ** 2 + (syy - szz) ** 2 + (szz - sxx) ** 2)
                   + 3 * sxy**2)


@pytest.mark.parametrize("plane", ["strain", "stress"])
def test_local_fields_homogeneous(plane):
    K, G = 10.0, 6.0
    img = np.full((10, 12), 4)
    k, m = fem.solid_moduli_2d(K, G, plane)
    D = fem.isotropic_stiffness_2d(k, m)
    for load, j in LOADS.items():
        f = fem.local_fields(img, load=load, phase_moduli={4: (K, G)}, plane=plane,
                             device="cpu")
        E = np.eye(3)[j]
        assert f.converged and f.n_iter == 0 and f.load == load
        np.testing.assert_array_equal(f.macro_strain, E)
        assert f.strain.shape == f.stress.shape == (3, 10, 12)
        assert f.von_mises.shape == f.energy_density.shape == (10, 12)
        np.testing.assert_allclose(f.strain, np.broadcast_to(E[:, None, None], (3, 10, 12)),
                                   atol=1e-14)
        sig = D @ E
        np.testing.assert_allclose(f.stress, np.broadcast_to(sig[:, None, None], (3, 10, 12)),
                                   rtol=1e-13, atol=1e-13)
        # out-of-plane stress from the 3D moduli: lambda tr(e) (plane strain) or 0
        szz = (K - 2 * G / 3) * (E[0] + E[1]) if plane == "strain" else 0.0
        np.testing.assert_allclose(f.von_mises, von_mises_3d(*sig[:2], szz, sig[2]), rtol=1e-13)
        np.testing.assert_allclose(f.energy_density, 0.5 * E @ D @ E, rtol=1e-13)


def test_local_fields_average_to_effective_stiffness():
    img = smooth_image(32, 0.3, 14)
    C = fem.effective_stiffness(img, tol=1e-10, dtype=torch.float64, device="cpu")[0].numpy()
    scale = np.abs(C).max()
    pore = img == 0
    for load, j in LOADS.items():
        f = fem.local_fields(torch.from_numpy(img), load=load, tol=1e-10, device="cpu")
        assert f.converged and f.n_iter > 0 and f.rel_residual <= 2e-10
        np.testing.assert_allclose(f.stress.mean(axis=(1, 2)), C[:, j], rtol=0,
                                   atol=1e-8 * scale)
        np.testing.assert_allclose(f.strain.mean(axis=(1, 2)), np.eye(3)[j], atol=1e-12)
        assert np.all(f.stress[:, pore] == 0) and np.all(f.von_mises[pore] == 0)
        assert np.all(f.energy_density[pore] == 0)
        # Hill-Mandel: the mean energy density is 0.5 E . C E
        assert f.energy_density.mean() == pytest.approx(0.5 * C[j, j], rel=1e-8)
        assert np.all(f.energy_density >= 0) and np.all(np.isfinite(f.von_mises))
        assert f.von_mises[~pore].max() > 0
    # float32 (default tolerance) is close to float64
    f32 = fem.local_fields(img, load="xy", dtype=torch.float32, device="cpu")
    f64 = fem.local_fields(img, load="xy", tol=1e-10, device="cpu")
    assert f32.converged and f32.stress.dtype == np.float64
    np.testing.assert_allclose(f32.stress, f64.stress, rtol=0, atol=1e-3 * scale)


def test_local_fields_laminate_exact():
    # layers normal to y: under E_yy, s_yy is uniform (= C22) and e_xx = 0 everywhere;
    # under engineering shear, s_xy is uniform (= C33).  Phase 3 is a fluid (G = 0).
    table = {1: (36.6, 45.0), 2: (5.0, 3.0), 3: (2.25, 0.0)}
    rows = np.array([1, 2, 1, 3, 3, 2, 2, 1])
    img = np.repeat(rows[:, None], 5, axis=1)
    ids = [1, 2, 3]
    km = {p: fem.solid_moduli_2d(*table[p]) for p in ids}
    expected = laminate_C([np.mean(rows == p) for p in ids], [km[p][0] for p in ids],
                          [km[p][1] for p in ids])
    f = fem.local_fields(img, load="yy", phase_moduli=table, **TIGHT)
    np.testing.assert_allclose(f.stress[1], expected[1, 1], rtol=1e-9)
    np.testing.assert_allclose(f.stress[0].mean(), expected[0, 1], rtol=1e-9)
    np.testing.assert_allclose(f.strain[0], 0.0, atol=1e-10)
    np.testing.assert_allclose(f.stress[2], 0.0, atol=1e-9)
    # fluid layers carry a hydrostatic stress only (plane strain: s_zz = K tr e)
    fluid = img == 3
    assert np.all(f.stress[1][fluid] > 0)
    np.testing.assert_allclose(f.von_mises[fluid], 0.0, atol=1e-9)
    assert f.von_mises[~fluid].min() > 0.1
    # with a fluid layer there is no shear stiffness: zero shear stress everywhere
    fs = fem.local_fields(img, load="xy", phase_moduli=table, **TIGHT)
    assert expected[2, 2] == 0
    np.testing.assert_allclose(fs.stress, 0.0, atol=1e-9)
    solid = np.where(img == 3, 2, img)  # replace the fluid by the soft solid
    e2 = laminate_C([np.mean(solid[:, 0] == p) for p in (1, 2)], [km[1][0], km[2][0]],
                    [km[1][1], km[2][1]])
    fs = fem.local_fields(solid, load="xy", phase_moduli=table, **TIGHT)
    np.testing.assert_allclose(fs.stress[2], e2[2, 2], rtol=1e-9)


def test_local_fields_empty_nonconverged_and_bad_inputs(caplog):
    f = fem.local_fields(np.zeros((4, 5), np.uint8), load="yy", device="cpu")
    assert f.converged and np.all(f.stress == 0) and np.all(f.energy_density == 0)
    with caplog.at_level(logging.WARNING, logger="dmtnn.fem"):
        f = fem.local_fields(smooth_image(32, 0.3, 11), max_iter=2, device="cpu")
    assert not f.converged and f.n_iter == 2 and f.rel_residual > 1e-5
    assert "did not converge" in caplog.text
    with pytest.raises(ValueError, match=r"load.*'zz'"):
        fem.local_fields(np.ones((4, 4)), load="zz", device="cpu")
    with pytest.raises(ValueError, match="load"):
        fem.local_fields(np.ones((4, 4)), load=0, device="cpu")
    with pytest.raises(ValueError, match="one image"):
        fem.local_fields(np.ones((2, 4, 4)), device="cpu")
    with pytest.raises(ValueError, match="tol"):
        fem.local_fields(np.ones((4, 4)), tol=2.0, device="cpu")
    with pytest.raises(ValueError, match="binary"):
        fem.local_fields(np.full((4, 4), 3), device="cpu")
    with pytest.raises(ValueError, match="plane"):
        fem.local_fields(np.ones((4, 4)), plane="3d", device="cpu")


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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_local_fields():
    img = smooth_image(48, 0.3, 15)
    ref = fem.local_fields(img, load="xx", tol=1e-10, device="cpu")
    g = fem.local_fields(img, load="xx", device="cuda")  # float32 by default
    assert g.converged
    np.testing.assert_allclose(g.stress, ref.stress, rtol=0, atol=1e-3 * np.abs(ref.stress).max())
