"""Threshold segmentation: Otsu's threshold and the binary mask."""

import numpy as np
import pytest

from dmtnn.data.threshold import otsu_threshold, threshold_segment


def test_otsu_splits_a_bimodal_image():
    gray = np.array([[20, 22, 200], [21, 199, 201]], dtype=np.uint8)
    t = otsu_threshold(gray)
    assert 22 <= t < 199
    assert threshold_segment(gray).tolist() == [[0, 0, 1], [0, 1, 1]]
    assert threshold_segment(gray, threshold=199.5).tolist() == [[0, 0, 1], [0, 0, 1]]


def test_otsu_refuses_constant_empty_and_nan():
    with pytest.raises(ValueError, match="constant"):
        otsu_threshold(np.full((3, 3), 7))
    with pytest.raises(ValueError, match="empty"):
        otsu_threshold(np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        otsu_threshold(np.array([0.0, np.nan, 1.0]))
