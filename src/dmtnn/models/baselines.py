"""Baselines on the grayscale image: the paper's CNN (Fig. 8) and Fig. 2's sharing schemes.

- :class:`CNN`: convolutions then fully connected layers, three outputs
  (porosity, shear, bulk); about 1.7e6 parameters at 256 px, as the paper's.
- :class:`HardSharing` (Fig. 2b): the CNN's convolutional trunk shared by
  the three tasks, one fully connected head per task.
- :class:`SoftSharing` (Fig. 2a): one convolutional column per task, linked
  after every stage by cross-stitch units (Misra et al. 2016): each column's
  next input is a learned mixture of all columns' features, initialised near
  the identity (0.9 own, 0.05 each other).

The paper does not give the CNN's layers; four stages of 3x3 conv + BN + ReLU
+ 2x2 max-pool (16, 32, 64, 64 channels) and fully connected layers of 100
and 3 give its parameter count at 256 x 256. The hidden layer is normalised
(:class:`NormLinear`) so that its units do not die in the first steps.

These networks pool after every stage, so they are cheap at any ``width``
(the CNN: 0.10 GFLOP per 128 px image forward at width 1, against DMTNN's
0.77 at width 0.125): :func:`dmtnn.multitask.build_network` builds them at
the configuration's ``head_width`` (registry ``scaling="head"``), not at the
``width`` that shrinks DMTNN's full-resolution trunk. At width 0.125 the CNN
had 4-channel stages, a 12-unit hidden layer and 7,287 parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dmtnn.models.blocks import channels, init_weights
from dmtnn.models.dmtnn_net import TASKS, conv_bn_relu

__all__ = ["CNN", "HardSharing", "SoftSharing", "CrossStitch", "NormLinear", "cnn",
           "hard_sharing", "soft_sharing"]

_STAGES = (16, 32, 64, 64)


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(c_in, c_out), nn.MaxPool2d(2))


def _trunk(in_channels: int, width: float) -> tuple[nn.Sequential, int]:
    c = [channels(s, width) for s in _STAGES]
    stages = [_stage(a, b) for a, b in zip((in_channels, *c[:-1]), c, strict=True)]
    return nn.Sequential(*stages), c[-1]


def _flat(image_size: int, c: int) -> int:
    side = image_size // 2 ** len(_STAGES)
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for {len(_STAGES)} poolings")
    return c * side * side


class NormLinear(nn.Linear):
    """A fully connected layer whose outputs are batch-normalised: (B, n_in) -> (B, n_out).

    ``Linear(n_in, n_out)`` without bias, then ``BatchNorm1d(n_out)`` (its
    shift is the bias): a hidden layer whose units cannot all be switched
    off for every image by a few large steps. In training, a batch of one
    image, which has no batch statistics, is normalised with the running
    ones (as in evaluation), and they are left unchanged.
    """

    def __init__(self, n_in: int, n_out: int):
        super().__init__(n_in, n_out, bias=False)
        self.norm = nn.BatchNorm1d(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)  # (B, n_out)
        n = self.norm
        if n.training and y.shape[0] == 1:
            return F.batch_norm(y, n.running_mean, n.running_var, n.weight, n.bias, False, 0.0,
                                n.eps)
        return n(y)


def _head(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    """Flatten, a batch-normalised hidden layer with ReLU, the outputs.

    The normalisation keeps the hidden units alive: without it, Adam's first
    steps at lr 3e-3 on the 4096 non-negative inputs (128 px) switched most of
    the 100 ReLUs off for every image, and for 1 seed in 20 all of them, so
    that the CNN predicted a constant (6 seeds in 20 at width 0.125; the quick
    profile's images of 3 rocks, 5 epochs). With it, none of 20 seeds
    collapsed at either width.
    """
    return nn.Sequential(nn.Flatten(), NormLinear(n_in, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, n_out))


class CNN(nn.Module):
    """The paper's baseline CNN: one network, three outputs ``phi``, ``mu``, ``kappa``."""

    def __init__(self, in_channels: int = 1, image_size: int = 256, width: float = 1.0):
        super().__init__()
        self.features, c = _trunk(in_channels, width)
        self.head = _head(_flat(image_size, c), channels(100, width), len(TASKS))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.head(self.features(x))  # (B, 3)
        return {t: y[:, i] for i, t in enumerate(TASKS)}


class HardSharing(nn.Module):
    """Fig. 2b: a shared convolutional trunk and one fully connected head per task."""

    def __init__(self, in_channels: int = 1, image_size: int = 256, width: float = 1.0):
        super().__init__()
        self.features, c = _trunk(in_channels, width)
        n = _flat(image_size, c)
        self.heads = nn.ModuleDict({t: _head(n, channels(100, width), 1) for t in TASKS})
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)  # (B, c, H/16, W/16)
        return {t: head(f)[:, 0] for t, head in self.heads.items()}


class CrossStitch(nn.Module):
    """A cross-stitch unit: per channel, each task's output mixes all tasks' inputs."""

    def __init__(self, n_tasks: int, c: int, own: float = 0.9):
        super().__init__()
        other = (1 - own) / max(1, n_tasks - 1)
        a = torch.full((n_tasks, n_tasks), other) + torch.eye(n_tasks) * (own - other)
        self.alpha = nn.Parameter(a[:, :, None].repeat(1, 1, c))  # (T_out, T_in, C)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        x = torch.stack(xs, 1)  # (B, T, C, H, W)
        y = torch.einsum("oic,bichw->bochw", self.alpha.to(x.dtype), x)
        return list(y.unbind(1))


class SoftSharing(nn.Module):
    """Fig. 2a: one column per task, linked by cross-stitch units after every stage."""

    def __init__(self, in_channels: int = 1, image_size: int = 256, width: float = 1.0):
        super().__init__()
        c = [channels(s, width) for s in _STAGES]
        self.columns = nn.ModuleDict({
            t: nn.ModuleList(_stage(a, b) for a, b in zip((in_channels, *c[:-1]), c,
                                                          strict=True))
            for t in TASKS})
        self.stitches = nn.ModuleList(CrossStitch(len(TASKS), b) for b in c)
        self.heads = nn.ModuleDict({t: _head(_flat(image_size, c[-1]), channels(100, width), 1)
                                    for t in TASKS})
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        xs = [x] * len(TASKS)
        for k, stitch in enumerate(self.stitches):
            xs = stitch([self.columns[t][k](xi) for t, xi in zip(TASKS, xs, strict=True)])
        return {t: self.heads[t](xi)[:, 0] for t, xi in zip(TASKS, xs, strict=True)}


def cnn(in_channels: int = 1, image_size: int = 256, width: float = 1.0) -> CNN:
    """The paper's baseline CNN (Fig. 8), about 1.7e6 parameters at 256 px."""
    return CNN(in_channels, image_size, width)


def hard_sharing(in_channels: int = 1, image_size: int = 256, width: float = 1.0
                 ) -> HardSharing:
    """Hard parameter sharing (Fig. 2b)."""
    return HardSharing(in_channels, image_size, width)


def soft_sharing(in_channels: int = 1, image_size: int = 256, width: float = 1.0
                 ) -> SoftSharing:
    """Soft parameter sharing with cross-stitch units (Fig. 2a)."""
    return SoftSharing(in_channels, image_size, width)
