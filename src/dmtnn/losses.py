r"""The task losses (section 2.3 of the paper).

- segmentation: binary cross-entropy of the logits against the mask (the
  segmenter's training only);
- regression: :math:`C \cdot \mathrm{MSE}` with :math:`C = 1000`, so that the
  regression losses are on the scale of the segmentation loss.

How the task losses combine into one (fixed, dynamic, uncertainty and DWA
weights) is :mod:`dmtnn.weighting`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["REGRESSION_SCALE", "segmentation_loss", "regression_loss"]

#: The paper's C in C x MSE.
REGRESSION_SCALE = 1000.0


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of logits (B, 1, H, W) against a 0/1 mask of the same shape."""
    return F.binary_cross_entropy_with_logits(logits.float(), mask.float())


def regression_loss(
    pred: torch.Tensor, target: torch.Tensor, scale: float = REGRESSION_SCALE
) -> torch.Tensor:
    """``scale`` x mean squared error (the paper's C x MSE, C = 1000)."""
    return scale * F.mse_loss(pred.float(), target.float())
