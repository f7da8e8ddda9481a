"""U-Net (Ronneberger et al. 2015), the segmentation baseline the paper cites.

The classic network: four down-sampling stages of two 3x3 conv + BN + ReLU
(64 to 1024 channels at ``width=1``), max-pool down, 2x2 transposed-conv up,
skip connections by concatenation, padded convolutions so the output has the
input's size, and a 1x1 convolution to one logit map. About 3.1e7
parameters at ``width=1``.
"""

from __future__ import annotations

import torch
from torch import nn

from dmtnn.models.blocks import channels, init_weights, input_layer
from dmtnn.models.linknet import _check_size

__all__ = ["UNet", "unet"]


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net segmenter: one logit map per pixel (positive = grain).

    >>> unet(width=0.125)(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """

    def __init__(self, in_channels: int = 1, width: float = 1.0, input_norm: str = "global"):
        super().__init__()
        self.norm = input_layer(input_norm)
        c = [channels(b, width) for b in (64, 128, 256, 512, 1024)]
        self.enc1 = _double_conv(in_channels, c[0])
        self.enc2 = _double_conv(c[0], c[1])
        self.enc3 = _double_conv(c[1], c[2])
        self.enc4 = _double_conv(c[2], c[3])
        self.bottom = _double_conv(c[3], c[4])
        self.pool = nn.MaxPool2d(2)
        self.up4 = nn.ConvTranspose2d(c[4], c[3], 2, stride=2)
        self.dec4 = _double_conv(2 * c[3], c[3])
        self.up3 = nn.ConvTranspose2d(c[3], c[2], 2, stride=2)
        self.dec3 = _double_conv(2 * c[2], c[2])
        self.up2 = nn.ConvTranspose2d(c[2], c[1], 2, stride=2)
        self.dec2 = _double_conv(2 * c[1], c[1])
        self.up1 = nn.ConvTranspose2d(c[1], c[0], 2, stride=2)
        self.dec1 = _double_conv(2 * c[0], c[0])
        self.head_seg = nn.Conv2d(c[0], 1, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, 16)
        e1 = self.enc1(self.norm(x))  # (B, c0, H, W)
        e2 = self.enc2(self.pool(e1))  # (B, c1, H/2, W/2)
        e3 = self.enc3(self.pool(e2))  # (B, c2, H/4, W/4)
        e4 = self.enc4(self.pool(e3))  # (B, c3, H/8, W/8)
        b = self.bottom(self.pool(e4))  # (B, c4, H/16, W/16)
        d4 = self.dec4(torch.cat([self.up4(b), e4], 1))  # (B, c3, H/8, W/8)
        d3 = self.dec3(torch.cat([self.up3(d4), e3], 1))  # (B, c2, H/4, W/4)
        d2 = self.dec2(torch.cat([self.up2(d3), e2], 1))  # (B, c1, H/2, W/2)
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))  # (B, c0, H, W)
        return self.head_seg(d1)  # (B, 1, H, W) logits


def unet(in_channels: int = 1, width: float = 1.0, input_norm: str = "global") -> UNet:
    """The U-Net baseline (about 3.1e7 parameters at ``width=1``); ``input_norm`` as LinkNet's."""
    return UNet(in_channels, width, input_norm)
