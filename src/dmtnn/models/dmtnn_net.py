"""DMTNN (paper Fig. 3): a frozen segmenter, a parameter-sharing network and three subnets.

- **Segmentation network** (black box): the trained LinkNet of notebook 04,
  frozen: its weights and BatchNorm statistics never change, and no gradient
  flows into it (the paper's "transfer learning").
- **Parameter-sharing network** (red box), on the segmenter's output (the
  grain probability, one channel at full resolution): two 3x3 convolutions of
  256 channels, two of 128, each with BatchNorm and ReLU, then a 1x1
  convolution to 64 channels: a 64-channel map at full resolution.
- **Information-extraction network** (blue box): one subnet per parameter.
  Each is two feature-extraction modules (two 3x3 conv + BN + ReLU, then a
  4x4 average-pool down-sampling) and fully connected layers (240, 64, 1). The
  shear and bulk subnets concatenate the porosity subnet's features of the
  same stage after each of their modules: porosity informs the moduli.

The paper gives the module structure and the totals (about 2.2e7 parameters,
1.10e7 trainable, 1.15e7 frozen) but not every layer's size: the feature
width (32), the pooling (4x4 average) and the fully connected sizes are ours, chosen
so that the totals match at 256 x 256 (see ``tests/test_models.py``).

``mtnn_ws`` is the same network without the segmentation module (Appendix
A): the grayscale image enters the parameter-sharing network directly.

Two channel multipliers (1 = the paper's sizes): ``width`` scales what runs at
full resolution, the sharing network and each subnet's first feature module
(nearly all the FLOPs); ``head_width`` the rest of the subnets, which runs on
pooled maps and on vectors. A small ``width`` thus makes DMTNN cheap without
starving its later modules and fully connected layers: at 128 px and width
0.125, ``head_width`` 1 instead of 0.125 raises the extraction network's
forward FLOPs from 45 to 116 M per image, beside the sharing network's 542 M,
and widens the second modules from 4 to 32 channels and the fully connected
layers from (32, 8) to (240, 64) units.

Appendix A's depth variants (``depth`` feature modules per subnet) pool so
that every depth ends on the map size of depth 2 (:func:`stage_pools`): from
depth 2 on, their fully connected layers are the same and their trainable
parameters differ only by feature modules; depth 1 pools less where its one
module is narrower (:class:`InformationExtraction`). Every depth stays
within a factor 2 of depth 2's trainable parameters (``tests/test_models.py``).

The builders are :func:`dmtnn_net` (registry name ``"dmtnn"``; the module and
the function are not called ``dmtnn``, which is the package) and
:func:`mtnn_ws`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dmtnn.models.blocks import channels, init_weights

__all__ = ["TASKS", "conv_bn_relu", "stage_pools", "SharingNetwork", "FeatureModule", "Subnet",
           "InformationExtraction", "DMTNN", "dmtnn_net", "mtnn_ws"]

#: The regression outputs: porosity, shear modulus, 2D bulk modulus (the paper's "K").
TASKS = ("phi", "mu", "kappa")


def conv_bn_relu(c_in: int, c_out: int, k: int = 3) -> nn.Sequential:
    """k x k convolution (same padding), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def stage_pools(image_size: int, depth: int, reduction: int = 16) -> tuple[int, ...]:
    """Down-sampling factor of each of ``depth`` feature modules.

    The factors are powers of 2 that multiply to ``reduction`` (DMTNN's two
    4 x 4 poolings: 16), the larger ones first, so that every depth ends on
    the same map of ``image_size / reduction`` pixels a side; a module
    down-samples by at least 2 (so more than log2(reduction) modules reduce
    more), and the total is lowered where the map would fall under 4 pixels
    a side.

    >>> [stage_pools(256, d) for d in (1, 2, 3, 4)]
    [(16,), (4, 4), (4, 2, 2), (2, 2, 2, 2)]
    >>> stage_pools(32, 2)
    (4, 2)
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    halvings = max(depth, round(math.log2(reduction)))
    while halvings > depth and image_size >> halvings < 4:
        halvings -= 1
    if image_size >> halvings < 1:
        raise ValueError(f"image_size {image_size} is too small for {depth} "
                         f"down-samplings by 2")
    q, r = divmod(halvings, depth)
    return (2 ** (q + 1),) * r + (2 ** q,) * (depth - r)


def _per_stage(value: int | Sequence[int], depth: int, name: str) -> tuple[int, ...]:
    """``value`` for each of ``depth`` feature modules (an int: the same for all)."""
    if isinstance(value, int):
        return (value,) * depth
    value = tuple(value)
    if len(value) != depth:
        raise ValueError(f"{name} must give one value per feature module ({depth}), "
                         f"got {value}")
    return value


class SharingNetwork(nn.Module):
    """The parameter-sharing network: 256, 256, 128, 128 channels of 3x3, then 1x1 to 64."""

    def __init__(self, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = channels(256, width), channels(128, width), channels(64, width)
        self.out_channels = c3
        self.conv1 = nn.Sequential(conv_bn_relu(in_channels, c1), conv_bn_relu(c1, c1))
        self.conv2 = nn.Sequential(conv_bn_relu(c1, c2), conv_bn_relu(c2, c2))
        self.conv3 = conv_bn_relu(c2, c3, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, 256, H, W)
        x = self.conv2(x)  # (B, 128, H, W)
        return self.conv3(x)  # (B, 64, H, W)


class FeatureModule(nn.Module):
    """Two 3x3 conv + BN + ReLU, then ``pool`` x ``pool`` average-pool down-sampling.

    The paper says "down-sampling" without its kind. Average pooling keeps area
    fractions, which is what porosity and, to first order, the moduli are; on
    the quick profile it gave test R2 0.54 / 0.59 (mu / kappa) against 0.36 / 0.48
    with max pooling (both with augmentation, 10 epochs, learning rate 1e-3).
    """

    def __init__(self, c_in: int, c_out: int, pool: int = 4):
        super().__init__()
        self.conv = nn.Sequential(conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out))
        self.pool = nn.AvgPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class Subnet(nn.Module):
    """One parameter's subnet: feature modules, then fully connected layers to one number.

    Parameters
    ----------
    c_in : int
        Channels of the input map (the sharing network's output).
    features : int or sequence of int
        Output channels of each feature module (one int: the same for all).
    flat_px : int
        Pixels of the last module's output (its side squared).
    hidden : (int, int)
        Sizes of the two hidden fully connected layers.
    depth : int
        Number of feature modules.
    extra : int or sequence of int
        Channels of another subnet's features concatenated to each module's
        output (given to ``forward``); 0: none.
    pool : int or sequence of int
        Down-sampling factor of each module.
    """

    def __init__(self, c_in: int, features: int | Sequence[int], flat_px: int,
                 hidden: tuple[int, int], depth: int = 2, extra: int | Sequence[int] = 0,
                 pool: int | Sequence[int] = 4):
        super().__init__()
        features, extra, pool = (_per_stage(v, depth, name) for v, name in
                                 ((features, "features"), (extra, "extra"), (pool, "pool")))
        mods, c = [], c_in
        for f, e, k in zip(features, extra, pool, strict=True):
            mods.append(FeatureModule(c, f, k))
            c = f + e
        self.modules_ = nn.ModuleList(mods)
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * flat_px, hidden[0]), nn.ReLU(inplace=True),
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(inplace=True),
            nn.Linear(hidden[1], 1),
        )

    def forward(self, x: torch.Tensor, others: list[torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        stages = []
        for k, module in enumerate(self.modules_):
            x = module(x)  # (B, f, H / pool^(k+1), W / pool^(k+1))
            stages.append(x)
            if others is not None:
                x = torch.cat([x, others[k]], 1)  # (B, 2f, ...)
        return self.fc(x)[:, 0], stages  # (B,)


class InformationExtraction(nn.Module):
    """Porosity, shear and bulk subnets; the moduli subnets see the porosity features.

    ``tasks`` may be a subset (single-task models, Appendix A): without the
    porosity subnet the moduli subnets have no features to concatenate.

    Two channel multipliers: ``width`` scales the first feature module, whose
    convolutions run at the full resolution of the sharing network's map (the
    costly part), and ``head_width`` the rest, which runs at a 4x (or more)
    pooled resolution or on vectors: the later modules and the fully connected
    layers (cheap in FLOPs; see ``bench/budget.py``). ``head_width=None``
    scales everything by ``width``.

    Appendix A's depth variants are kept of comparable capacity: the
    modules' down-samplings (``pool``, default :func:`stage_pools`) multiply to
    16 whatever the ``depth``, so every depth ends on depth 2's map and has its
    fully connected layers. Depth 1 alone ends on a first module, of ``width``
    channels; when that is fewer (by a factor r) than the ``head_width``
    channels that end depth 2, it pools by 16 / 2^k, k = floor(log2(r) / 2),
    so that its first fully connected layer takes between half and all of
    depth 2's inputs.
    """

    def __init__(self, c_in: int, image_size: int, width: float = 1.0, depth: int = 2,
                 pool: int | None = None, tasks: tuple[str, ...] = TASKS,
                 head_width: float | None = None):
        super().__init__()
        unknown = set(tasks) - set(TASKS)
        if unknown or not tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        head = width if head_width is None else head_width
        features = (channels(32, width),) + (channels(32, head),) * (depth - 1)
        hidden = (channels(240, head), channels(64, head))
        if pool is None:
            k = math.floor(math.log2(channels(32, head) / features[-1]) / 2)
            pools = stage_pools(image_size, depth, reduction=16 / 2 ** k)
        else:
            pools = (pool,) * depth
        side = image_size
        for p in pools:
            side //= p
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {depth} "
                             f"down-samplings by {pool}")
        self.tasks = tuple(t for t in TASKS if t in tasks)
        extra = features if "phi" in self.tasks else 0
        for t in self.tasks:
            setattr(self, t, Subnet(c_in, features, side * side, hidden, depth,
                                    extra=0 if t == "phi" else extra, pool=pools))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, stages = {}, None
        if "phi" in self.tasks:
            out["phi"], stages = self.phi(x)
        for t in self.tasks:
            if t != "phi":
                out[t], _ = getattr(self, t)(x, stages)
        return out


class DMTNN(nn.Module):
    """The digital-rock multi-task network.

    Parameters
    ----------
    segmenter : nn.Module or None
        A trained segmenter (logits (B, 1, H, W)); frozen when ``freeze``.
        ``None`` gives MTNN_WS: the image goes straight to the sharing network.
    image_size : int
        Side of the (square) input in pixels; sets the fully connected sizes.
    width : float
        Channel multiplier of the full-resolution parts: the sharing network
        and the first feature module of each subnet.
    depth : int
        Feature-extraction modules per subnet (Appendix A varies it).
    tasks : tuple of str
        The parameters predicted; a single one gives a single-task model.
    head_width : float, optional
        Channel multiplier of the extraction network's pooled-resolution
        modules and fully connected layers; default ``width``
        (:class:`InformationExtraction`).

    Returns (forward)
    -----------------
    dict with ``"phi"``, ``"mu"``, ``"kappa"`` (B,) and, with a segmenter, the
    segmentation logits ``"mask"`` (B, 1, H, W).
    """

    def __init__(self, segmenter: nn.Module | None, image_size: int = 256,
                 width: float = 1.0, depth: int = 2, freeze: bool = True,
                 tasks: tuple[str, ...] = TASKS, head_width: float | None = None):
        super().__init__()
        self.segmenter = segmenter
        self.freeze = freeze and segmenter is not None
        if self.freeze:
            for p in segmenter.parameters():
                p.requires_grad_(False)
        self.sharing = SharingNetwork(1, width)
        self.extraction = InformationExtraction(self.sharing.out_channels, image_size, width,
                                                depth, tasks=tuple(tasks),
                                                head_width=head_width)
        init_weights(self.sharing)
        init_weights(self.extraction)

    def train(self, mode: bool = True):
        """Train mode everywhere except in a frozen segmenter (its BatchNorm stays fixed)."""
        super().train(mode)
        if self.freeze:
            self.segmenter.eval()
        return self

    @property
    def frozen_segmenter(self) -> nn.Module | None:
        """The segmenter when it is frozen, else None (it trains, or MTNN_WS has none).

        A frozen segmenter stays in eval mode without gradients, so its logits
        for an image depend on that image alone: the training loop computes
        them once per image and symmetry and passes them back to
        :meth:`forward` as ``seg_logits`` (:mod:`dmtnn.train`).
        """
        return self.segmenter if self.freeze else None

    def forward(self, x: torch.Tensor, seg_logits: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Parameters (B,) per task and, with a segmenter, its logits ``"mask"`` (B, 1, H, W).

        ``x`` is the standardised image (B, 1, H, W). ``seg_logits`` are the
        frozen segmenter's logits of ``x`` computed beforehand (B, 1, H, W);
        without them the segmenter runs on ``x``.
        """
        out = {}
        if seg_logits is not None and self.frozen_segmenter is None:
            raise ValueError("seg_logits given to a DMTNN without a frozen segmenter; call it "
                             "with the image alone")
        if self.segmenter is not None:
            if seg_logits is None:
                with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
                    seg_logits = self.segmenter(x)  # (B, 1, H, W)
            out["mask"] = seg_logits
            x = torch.sigmoid(seg_logits)  # grain probability
        shared = self.sharing(x)  # (B, 64, H, W)
        return {**self.extraction(shared), **out}


def dmtnn_net(segmenter: nn.Module, image_size: int = 256, width: float = 1.0,
              depth: int = 2, tasks: tuple[str, ...] = TASKS,
              head_width: float | None = None) -> DMTNN:
    """DMTNN on a trained segmenter (frozen); about 2.2e7 parameters at 256 px, width 1.

    ``width`` scales the full-resolution parts, ``head_width`` (default
    ``width``) the rest of the extraction network (:class:`DMTNN`).
    """
    return DMTNN(segmenter, image_size, width, depth, tasks=tasks, head_width=head_width)


def mtnn_ws(image_size: int = 256, width: float = 1.0, depth: int = 2,
            tasks: tuple[str, ...] = TASKS, head_width: float | None = None) -> DMTNN:
    """MTNN_WS: DMTNN without the segmentation network (Appendix A)."""
    return DMTNN(None, image_size, width, depth, tasks=tasks, head_width=head_width)
