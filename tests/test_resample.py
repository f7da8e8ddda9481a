import numpy as np
import pytest

from dmtnn.data.resample import area_weights, center_crop, reduce_binary, reduce_gray


@pytest.mark.parametrize("n_in, n_out", [(1000, 256), (500, 128), (7, 3), (8, 8)])
def test_area_weights_partition_every_input_pixel(n_in, n_out):
    w = area_weights(n_in, n_out)
    assert np.allclose(w.sum(axis=1), 1)  # each output is an average
    assert np.allclose(w.sum(axis=0), n_out / n_in)  # each input pixel is used exactly once


def test_integer_factor_is_the_block_mean():
    x = np.arange(64, dtype=float).reshape(8, 8)
    expected = x.reshape(4, 2, 4, 2).mean(axis=(1, 3))
    assert np.allclose(reduce_gray(x, 4), expected)


def test_area_average_keeps_the_mean_at_non_integer_factor():
    rng = np.random.default_rng(0)
    x = rng.random((1000, 1000))
    assert reduce_gray(x, 256).mean() == pytest.approx(x.mean(), rel=1e-12)


def test_binary_reduction_by_area_fraction():
    # 4x4 -> 2x2: blocks with 3/4, 2/4 (ties count as grain), 1/4 and 0/4 grain
    b = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=np.uint8)
    assert reduce_binary(b, 2).tolist() == [[1, 1], [0, 0]]
    with pytest.raises(ValueError, match="only 0 and 1"):
        reduce_binary(b * 255, 2)


def test_center_crop():
    x = np.arange(36).reshape(6, 6)
    assert center_crop(x, 2).tolist() == [[14, 15], [20, 21]]
    with pytest.raises(ValueError, match="cannot crop 7 px"):
        center_crop(x, 7)
