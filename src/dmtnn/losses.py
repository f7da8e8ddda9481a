r"""Task losses and the weights that combine them (section 2.3 of the paper).

Losses
------
- segmentation: binary cross-entropy of the logits against the mask (the
  segmenter's training only);
- regression: :math:`C \cdot \mathrm{MSE}` with :math:`C = 1000`, so that the
  regression losses are on the scale of the segmentation loss.

Weighting strategies
--------------------
A strategy is an ``nn.Module`` that turns the per-task losses of a batch into
the total loss (``combine``), reports its current weights (``weights``) and
learns from each finished epoch (``end_epoch``: the training-set KPIs and
mean task losses). Its state travels with the training checkpoint, so a
resumed run continues with the same weights. :class:`FixedWeights` is the
paper's fixed ratios (1:1:1, 1:10:3); later strategies plug into the same
training loop.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "REGRESSION_SCALE",
    "segmentation_loss",
    "regression_loss",
    "Weighting",
    "FixedWeights",
]

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


class Weighting(nn.Module):
    """Base of the strategies: ``total = sum_t w_t L_t`` with weights from :meth:`weights`."""

    def __init__(self, tasks: tuple[str, ...]):
        super().__init__()
        if not tasks:
            raise ValueError("a weighting needs at least one task")
        self.tasks = tuple(tasks)

    def weights(self) -> dict[str, float]:
        raise NotImplementedError

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The total loss of a batch from its per-task losses."""
        missing = set(self.tasks) - set(losses)
        if missing:
            raise KeyError(f"no loss for task(s) {sorted(missing)}")
        w = self.weights()
        return sum(w[t] * losses[t] for t in self.tasks)

    def end_epoch(self, kpis: Mapping[str, float], losses: Mapping[str, float]) -> None:
        """Update from a finished epoch's training KPIs and mean task losses."""

    def get_extra_state(self) -> dict:
        return {}

    def set_extra_state(self, state: dict) -> None:
        pass


class FixedWeights(Weighting):
    """Constant task weights, e.g. the paper's phi:mu:K = 1:10:3.

    >>> FixedWeights({"phi": 1, "mu": 10, "K": 3}).weights()
    {'phi': 1.0, 'mu': 10.0, 'K': 3.0}
    """

    def __init__(self, weights: Mapping[str, float]):
        super().__init__(tuple(weights))
        bad = {t: w for t, w in weights.items() if not w >= 0}
        if bad:
            raise ValueError(f"task weights must be non-negative numbers, got {bad}")
        self._w = {t: float(w) for t, w in weights.items()}

    def weights(self) -> dict[str, float]:
        return dict(self._w)

    def get_extra_state(self) -> dict:
        return {"weights": self._w}

    def set_extra_state(self, state: dict) -> None:
        if state and state["weights"] != self._w:
            raise ValueError(f"checkpoint has fixed weights {state['weights']}, "
                             f"this run {self._w}")
