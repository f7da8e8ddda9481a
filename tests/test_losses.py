import math

import pytest
import torch

from dmtnn.losses import REGRESSION_SCALE, regression_loss, segmentation_loss


def test_segmentation_loss_by_hand():
    mask = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    assert float(segmentation_loss(torch.zeros(1, 1, 2, 2), mask)) == pytest.approx(math.log(2))
    # logit 2 everywhere: -log sigmoid(2) on the two 1s, -log(1 - sigmoid(2)) on the two 0s
    s = 1 / (1 + math.exp(-2))
    expect = (-math.log(s) * 2 - math.log(1 - s) * 2) / 4
    assert float(segmentation_loss(torch.full((1, 1, 2, 2), 2.0), mask)) == pytest.approx(expect)


def test_regression_loss_is_scaled_mse():
    pred, target = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])
    assert REGRESSION_SCALE == 1000.0
    assert float(regression_loss(pred, target)) == pytest.approx(1000 * (1 + 4) / 2)
    assert float(regression_loss(pred, target, scale=1.0)) == pytest.approx(2.5)
