import numpy as np
import pytest

from dmtnn.morphology import (
    chord_lengths,
    describe,
    growing_window_porosity,
    porosity,
    rev_porosity,
    rev_size,
    rev_size_growing,
    two_point_correlation,
)


def test_porosity_counts_zeros_as_pore():
    im = np.array([[1, 0, 0, 1], [1, 1, 1, 1]])
    assert porosity(im) == 0.25
    assert porosity(np.stack([im, 1 - im]), axis=(1, 2)).tolist() == [0.25, 0.75]
    with pytest.raises(ValueError, match="binary"):
        porosity(np.array([0, 2]))


def test_s2_of_stripes_by_hand():
    # vertical stripes, period 2: pore columns 0, 2; along rows pairs at odd lags never match
    im = np.tile([0, 1], (4, 2))  # 4 x 4, 1 = grain
    lags, s2 = two_point_correlation(im, 2)
    # lag 1: rows give 0 of 12 pairs, columns give 6 of 12 (pore columns) -> 6 / 24
    # lag 2: rows give 4 of 8 pairs (cols 0-2), columns give 4 of 8 -> 8 / 16
    assert s2.tolist() == [0.5, 0.25, 0.5]


def test_chords_exclude_runs_cut_by_the_border():
    im = np.array([[0, 1, 0, 0, 1, 0, 0, 0, 1, 1]])
    assert sorted(chord_lengths(im, phase=0).tolist()) == [2, 3]
    assert sorted(chord_lengths(im, phase=1).tolist()) == [1, 1]


def test_rev_full_window_is_the_slice_porosity_and_spread_shrinks():
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 64, 64)) > 0.3).astype(np.uint8)
    curve = rev_porosity(stack, [2, 8, 64], windows=50, rng=1)
    full = curve.set_index("size").loc[64]
    assert full["n"] == 3 and full["mean"] == pytest.approx(porosity(stack))
    assert curve["std"].is_monotonic_decreasing
    assert rev_size(curve, cv_tol=0.2) == 8.0
    assert np.isnan(rev_size(curve, cv_tol=1e-6))
    with pytest.raises(ValueError, match="does not fit"):
        rev_porosity(stack, [65])


def test_describe_of_random_pixels_has_no_correlation():
    rng = np.random.default_rng(0)
    stack = (rng.random((4, 128, 128)) > 0.25).astype(np.uint8)
    s = describe(stack, max_lag=5)
    assert s["s2_norm"][0] == pytest.approx(1.0)
    assert np.abs(s["s2_norm"][1:]).max() < 0.02
    assert s["corr_length"] < 1
    assert s["mean_pore_chord"] == pytest.approx(1 / 0.75, rel=0.05)  # geometric run lengths


def test_growing_window_settles_on_the_slice_porosity():
    im = np.ones((1, 8, 8), np.uint8)
    im[0, 3:5, 3:5] = 0  # a 2 x 2 pore in the centre: porosity 4 / 64
    curve = growing_window_porosity(im, [2, 4, 8])
    assert curve["mean"].tolist() == [1.0, 0.25, 0.0625]
    assert curve["dev"].tolist() == pytest.approx([0.9375, 0.1875, 0.0])  # one slice: rms = abs
    assert rev_size_growing(curve, tol=0.2) == 4.0
    assert rev_size_growing(curve, tol=0.01) == 8.0
