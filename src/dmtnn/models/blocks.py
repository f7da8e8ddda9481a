"""Building blocks shared by the networks: ResNet basic blocks and the ResNet18 encoder.

Written in the style of torchvision's ``resnet.py`` (whose PyPI build does not
import beside the CPU torch on our machines), with a ``width`` multiplier on
every channel count so that small profiles train on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["channels", "conv3x3", "conv1x1", "BasicBlock", "ResNetEncoder", "ImageStandardize", "INPUT_NORMS",
           "input_layer"]


def channels(base: int, width: float) -> int:
    """``base`` channels scaled by ``width``, at least 4 and a multiple of 4.

    >>> channels(64, 1.0), channels(64, 0.25), channels(512, 0.125)
    (64, 16, 64)
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(4, int(round(base * width / 4)) * 4)


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (a BatchNorm follows)."""
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class ImageStandardize(nn.Module):
    """Each image standardised by its own mean and standard deviation, per channel.

    The output does not change when an image's gray levels are scaled and
    shifted (a positive gain and any offset), so a network that starts with it
    does not depend on the gray levels a scanner assigns to pore and grain,
    only on the image's contrasts. Computed in float32 under autocast.

    >>> x = torch.rand(2, 1, 8, 8)
    >>> torch.allclose(ImageStandardize()(x), ImageStandardize()(3 * x + 7), atol=1e-4)
    True
    """

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        mean = x32.mean(dim=(-2, -1), keepdim=True)
        std = x32.std(dim=(-2, -1), keepdim=True)
        return ((x32 - mean) / (std + self.eps)).to(x.dtype)


#: The segmenters' input normalisations (``input_norm``).
INPUT_NORMS = ("global", "image")


def input_layer(input_norm: str) -> nn.Module:
    """The first layer of a segmenter for ``input_norm``.

    ``"global"`` (the paper): nothing; the input arrives standardised with the
    training split's mean and standard deviation. ``"image"``: each image
    standardised by its own (:class:`ImageStandardize`).
    """
    if input_norm not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
    return ImageStandardize() if input_norm == "image" else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016).

    A stride-2 block halves H and W; a 1x1 projection matches the shortcut
    whenever the shape changes.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetEncoder(nn.Module):
    """ResNet18 without its classifier: a stem and four stages of two basic blocks.

    Each stage holds four 3x3 convolutions (two blocks) with residual
    connections. The stem is a 7x7 stride-2 convolution and a stride-2 max
    pool; stages 2-4 halve H, W and double the channels, stage 1 keeps them
    (as in ResNet18), so the deepest features are at 1/32 of the input.

    Parameters
    ----------
    in_channels : int
        Input channels (1 for a grayscale slice).
    width : float
        Channel multiplier: stage widths are ``64, 128, 256, 512`` times it.

    Returns (forward)
    -----------------
    list of four tensors: the outputs of ``enc1`` ... ``enc4`` at 1/4, 1/8,
    1/16 and 1/32 of the input size.
    """

    def __init__(self, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c = [channels(b, width) for b in (64, 128, 256, 512)]
        self.out_channels = c
        self.conv1 = nn.Conv2d(in_channels, c[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.enc1 = nn.Sequential(BasicBlock(c[0], c[0]), BasicBlock(c[0], c[0]))
        self.enc2 = nn.Sequential(BasicBlock(c[0], c[1], 2), BasicBlock(c[1], c[1]))
        self.enc3 = nn.Sequential(BasicBlock(c[1], c[2], 2), BasicBlock(c[2], c[2]))
        self.enc4 = nn.Sequential(BasicBlock(c[2], c[3], 2), BasicBlock(c[3], c[3]))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, c0, H/4, W/4)
        e1 = self.enc1(x)  # (B, c0, H/4, W/4)
        e2 = self.enc2(e1)  # (B, c1, H/8, W/8)
        e3 = self.enc3(e2)  # (B, c2, H/16, W/16)
        e4 = self.enc4(e3)  # (B, c3, H/32, W/32)
        return [e1, e2, e3, e4]


def init_weights(module: nn.Module) -> None:
    """He initialisation of convolutions, unit BatchNorm, as torchvision's ResNet."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
