import numpy as np
import pytest

from dmtnn.metrics import pixel_accuracy


def test_pixel_accuracy_hand_case_and_degenerate_prediction():
    label = np.array([[1, 0], [1, 1]])
    assert pixel_accuracy(label, label) == 1.0
    # predicting all grain: PA = 1 - porosity
    assert pixel_accuracy(np.ones_like(label), label) == 0.75
    stack = np.stack([label, 1 - label])
    assert pixel_accuracy(np.ones_like(stack), stack, per_image=True).tolist() == [0.75, 0.25]
    with pytest.raises(ValueError, match="shapes differ"):
        pixel_accuracy(label, label[:1])
