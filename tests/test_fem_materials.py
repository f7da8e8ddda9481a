"""Tests of dmtnn.fem's materials: 2D moduli, isotropic projection, phase tables."""

from __future__ import annotations

import numpy as np
import pytest

from dmtnn import fem

pytestmark = pytest.mark.usefixtures("torch_one_thread")


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


def test_phase_map_homogeneous_plane_stress():
    img = np.full((8, 8), 3)
    C = fem.effective_stiffness(img, phase_moduli={3: (10.0, 6.0)}, plane="stress", device="cpu")
    k, m = fem.solid_moduli_2d(10.0, 6.0, "stress")
    np.testing.assert_allclose(C[0].numpy(), fem.isotropic_stiffness_2d(k, m), rtol=1e-14)
