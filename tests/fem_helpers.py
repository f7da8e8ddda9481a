"""Shared helpers of the dmtnn.fem tests: quartz moduli, test images, exact laminates.

Not a test module (no ``test_`` prefix); imported by ``tests/test_fem_*.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from dmtnn import fem

KS, MS = fem.solid_moduli_2d(fem.QUARTZ_K, fem.QUARTZ_G, "strain")
TIGHT = dict(tol=1e-11, max_iter=20000, dtype=torch.float64, device="cpu")


def smooth_image(n, phi, seed, sigma=2.0, shape=None):
    """Binary image (1 = grain): thresholded Gaussian-smoothed periodic noise."""
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.standard_normal(shape or (n, n)), sigma, mode="wrap")
    return (g > np.quantile(g, phi)).astype(np.uint8)


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
