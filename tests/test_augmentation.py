"""Augmentation: the square's symmetries keep the labels; a scanner's rendering keeps the mask."""

import numpy as np
import pytest
import torch

from dmtnn.augmentation import INTENSITY_RANGES, _blur, apply_symmetry, draw_intensity


def test_symmetries_keep_the_labels(torch_one_thread):
    from dmtnn import fem

    x = torch.tensor([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    assert apply_symmetry(x, (1, False)).flatten().tolist() == [2, 4, 1, 3]
    assert apply_symmetry(x, (0, True)).flatten().tolist() == [2, 1, 4, 3]
    wide = torch.zeros(1, 1, 2, 4)
    assert apply_symmetry(wide, (1, False)).shape == wide.shape  # no quarter turn
    # the labels: porosity and the moduli of every turned or flipped image are the same
    rng = np.random.default_rng(4)
    solid = (rng.random((16, 16)) > 0.35).astype(np.uint8)
    images = [apply_symmetry(torch.from_numpy(solid)[None, None], (k, f))[0, 0].numpy()
              for k in range(4) for f in (False, True)]
    res = fem.elastic_moduli(np.stack(images), dtype=torch.float64, tol=1e-10)
    np.testing.assert_allclose(res.kappa, res.kappa[0], rtol=1e-7)
    np.testing.assert_allclose(res.mu, res.mu[0], rtol=1e-7)
    assert len({float(im.mean()) for im in images}) == 1


def test_blur_keeps_the_mean_and_a_zero_width_keeps_the_image():
    x = torch.rand(3, 1, 16, 16)
    y = _blur(x, torch.tensor([0.0, 0.5, 1.2]))
    torch.testing.assert_close(y[0], x[0])
    # a Gaussian of unit sum with reflecting edges keeps a constant image constant
    c = _blur(torch.full((1, 1, 16, 16), 0.3), torch.tensor([1.0]))
    torch.testing.assert_close(c, torch.full_like(c, 0.3))
    assert y[2].std() < y[1].std() < x[1].std() + 1e-6  # wider blurs smooth more
    # a unit impulse spreads with the variance of the Gaussian
    imp = torch.zeros(1, 1, 33, 33)
    imp[0, 0, 16, 16] = 1
    out = _blur(imp, torch.tensor([1.0]))[0, 0]
    t = torch.arange(33.0) - 16
    var = float((out.sum(0) * t**2).sum())
    assert var == pytest.approx(1.0, rel=0.02)


def test_intensity_draws_are_reproducible_in_range_and_quantised():
    a = draw_intensity(torch.Generator().manual_seed(5), 64)
    b = draw_intensity(torch.Generator().manual_seed(5), 64)
    for name in ("blur_px", "noise", "gamma", "gain", "offset", "levels"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))
        if name != "levels":
            lo, hi = INTENSITY_RANGES[name]
            v = getattr(a, name)
            assert lo <= float(v.min()) and float(v.max()) <= hi
    assert set(a.levels.tolist()) <= {2.0**k for k in INTENSITY_RANGES["bits"]}
    x = torch.rand(64, 1, 16, 16)
    y = a(x)
    torch.testing.assert_close(y, b(x))  # the noise is seeded too
    assert y.min() >= 0 and y.max() <= 1
    top = (a.levels - 1).view(-1, 1, 1, 1)
    torch.testing.assert_close(y * top, torch.round(y * top))  # on the bit depth's levels


def test_intensity_keeps_the_order_of_gray_levels_without_noise_and_blur():
    # a monotone rendering: pore stays darker than grain, so the mask stays the label
    r = draw_intensity(torch.Generator().manual_seed(1), 16)
    r = type(r)(**{**r.__dict__, "noise": torch.zeros(16), "blur_px": torch.zeros(16),
                   "levels": torch.full((16,), 65536.0)})
    x = torch.linspace(0, 1, 64).repeat(16, 1, 64, 1)
    y = r(x)
    assert bool((y.diff(dim=-1) >= -1e-6).all())
