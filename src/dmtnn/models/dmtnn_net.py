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

The builders are :func:`dmtnn_net` (registry name ``"dmtnn"``; the module and
the function are not called ``dmtnn``, which is the package) and
:func:`mtnn_ws`.
"""

from __future__ import annotations

import torch
from torch import nn

from dmtnn.models.blocks import channels, init_weights

__all__ = ["TASKS", "conv_bn_relu", "SharingNetwork", "FeatureModule", "Subnet",
           "InformationExtraction", "DMTNN", "dmtnn_net", "mtnn_ws"]

#: The regression outputs: porosity, shear modulus, 2D bulk modulus (the paper's "K").
TASKS = ("phi", "mu", "kappa")


def conv_bn_relu(c_in: int, c_out: int, k: int = 3) -> nn.Sequential:
    """k x k convolution (same padding), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


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

    With ``extra`` channels, each module's output is concatenated with another
    subnet's features of the same stage (given to ``forward``).
    """

    def __init__(self, c_in: int, features: int, flat_px: int, hidden: tuple[int, int],
                 depth: int = 2, extra: int = 0, pool: int = 4):
        super().__init__()
        mods, c = [], c_in
        for _ in range(depth):
            mods.append(FeatureModule(c, features, pool))
            c = features + extra
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
    ``pool`` defaults to 4, or 2 where ``depth`` modules of 4 would leave fewer
    than 4 x 4 pixels (the deeper variants of Appendix A).
    """

    def __init__(self, c_in: int, image_size: int, width: float = 1.0, depth: int = 2,
                 pool: int | None = None, tasks: tuple[str, ...] = TASKS):
        super().__init__()
        unknown = set(tasks) - set(TASKS)
        if unknown or not tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if pool is None:
            pool = 4 if image_size // 4 ** depth >= 4 else 2
        side = image_size // pool ** depth
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {depth} "
                             f"down-samplings by {pool}")
        f = channels(32, width)
        hidden = (channels(240, width), channels(64, width))
        self.tasks = tuple(t for t in TASKS if t in tasks)
        extra = f if "phi" in self.tasks else 0
        for t in self.tasks:
            setattr(self, t, Subnet(c_in, f, side * side, hidden, depth,
                                    extra=0 if t == "phi" else extra, pool=pool))

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
        Channel multiplier of the sharing and extraction networks.
    depth : int
        Feature-extraction modules per subnet (Appendix A varies it).
    tasks : tuple of str
        The parameters predicted; a single one gives a single-task model.

    Returns (forward)
    -----------------
    dict with ``"phi"``, ``"mu"``, ``"kappa"`` (B,) and, with a segmenter, the
    segmentation logits ``"mask"`` (B, 1, H, W).
    """

    def __init__(self, segmenter: nn.Module | None, image_size: int = 256,
                 width: float = 1.0, depth: int = 2, freeze: bool = True,
                 tasks: tuple[str, ...] = TASKS):
        super().__init__()
        self.segmenter = segmenter
        self.freeze = freeze and segmenter is not None
        if self.freeze:
            for p in segmenter.parameters():
                p.requires_grad_(False)
        self.sharing = SharingNetwork(1, width)
        self.extraction = InformationExtraction(self.sharing.out_channels, image_size, width,
                                                depth, tasks=tuple(tasks))
        init_weights(self.sharing)
        init_weights(self.extraction)

    def train(self, mode: bool = True):
        """Train mode everywhere except in a frozen segmenter (its BatchNorm stays fixed)."""
        super().train(mode)
        if self.freeze:
            self.segmenter.eval()
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if self.segmenter is not None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
                logits = self.segmenter(x)  # (B, 1, H, W)
            out["mask"] = logits
            x = torch.sigmoid(logits)  # grain probability
        shared = self.sharing(x)  # (B, 64, H, W)
        return {**self.extraction(shared), **out}


def dmtnn_net(segmenter: nn.Module, image_size: int = 256, width: float = 1.0,
          depth: int = 2, tasks: tuple[str, ...] = TASKS) -> DMTNN:
    """DMTNN on a trained segmenter (frozen); about 2.2e7 parameters at 256 px, width 1."""
    return DMTNN(segmenter, image_size, width, depth, tasks=tasks)


def mtnn_ws(image_size: int = 256, width: float = 1.0, depth: int = 2,
            tasks: tuple[str, ...] = TASKS) -> DMTNN:
    """MTNN_WS: DMTNN without the segmentation network (Appendix A)."""
    return DMTNN(None, image_size, width, depth, tasks=tasks)
