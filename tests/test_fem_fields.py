"""Tests of dmtnn.fem.local_fields: pixel strain, stress, von Mises stress, energy density."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from dmtnn import fem
from tests.fem_helpers import TIGHT, laminate_C, smooth_image

pytestmark = pytest.mark.usefixtures("torch_one_thread")

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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_local_fields():
    img = smooth_image(48, 0.3, 15)
    ref = fem.local_fields(img, load="xx", tol=1e-10, device="cpu")
    g = fem.local_fields(img, load="xx", device="cuda")  # float32 by default
    assert g.converged
    np.testing.assert_allclose(g.stress, ref.stress, rtol=0, atol=1e-3 * np.abs(ref.stress).max())
