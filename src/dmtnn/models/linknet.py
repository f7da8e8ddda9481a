"""The segmentation network: LinkNet with a ResNet18 encoder (paper Fig. 3, black box).

The paper's description: a 1-channel 256 x 256 input; a 7x7, 64-channel,
stride-2 convolution and a stride-2 max pool; a ResNet18-like encoder of four
stages of four 3x3 convolutions with residual connections; a decoder that
doubles H, W and halves the channels per stage, joined with the encoder's
features; a final 1x1 convolution to one logit map at full resolution. About
1.15e7 parameters.

Where this implementation differs
---------------------------------
- From the paper's words: its first encoder stage keeps the resolution, as
  in ResNet18 (the paper says every stage halves H, W). The deepest features
  are at 1/32 of the input, so H and W must be multiples of 32.
- From the original LinkNet (Chaurasia & Culurciello 2017): the decoder
  blocks are the original ones (1x1 conv m -> m/4, 3x3 transposed conv x2,
  1x1 conv m/4 -> n, joined by addition), but the head ends in a 1x1
  convolution to one logit map, as the paper says, instead of LinkNet's 2x2
  transposed convolution to the class maps.
- The encoder starts from random weights: no ImageNet weights can be
  downloaded here, and grayscale CT slices are far from ImageNet anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from dmtnn.models.blocks import ResNetEncoder, channels, init_weights, input_layer

__all__ = ["DecoderBlock", "LinkNet", "linknet18"]


class DecoderBlock(nn.Module):
    """LinkNet decoder block: 1x1 conv m -> m/4, 3x3 transposed conv x2, 1x1 conv m/4 -> n."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        mid = max(1, c_in // 4)
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.up = nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1,
                                     bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, m/4, h, w)
        x = self.relu(self.bn2(self.up(x)))  # (B, m/4, 2h, 2w)
        return self.relu(self.bn3(self.conv2(x)))  # (B, n, 2h, 2w)


class LinkNet(nn.Module):
    """LinkNet segmenter: one logit map per pixel (positive = grain).

    Parameters
    ----------
    in_channels : int
        Input channels (1: a grayscale slice).
    width : float
        Channel multiplier of every layer (1.0: the paper's network).

    Examples
    --------
    >>> net = linknet18(width=0.125)
    >>> net(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
    """

    def __init__(self, in_channels: int = 1, width: float = 1.0, input_norm: str = "global"):
        super().__init__()
        self.norm = input_layer(input_norm)
        self.encoder = ResNetEncoder(in_channels, width)
        c = self.encoder.out_channels  # 64, 128, 256, 512 at width 1
        self.dec4 = DecoderBlock(c[3], c[2])
        self.dec3 = DecoderBlock(c[2], c[1])
        self.dec2 = DecoderBlock(c[1], c[0])
        self.dec1 = DecoderBlock(c[0], c[0])
        h = channels(32, width)
        self.head = nn.Sequential(
            nn.ConvTranspose2d(c[0], h, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU(inplace=True),
            nn.Conv2d(h, h, 3, padding=1, bias=False),
            nn.BatchNorm2d(h),
            nn.ReLU(inplace=True),
        )
        self.head_seg = nn.Conv2d(h, 1, 1)
        init_weights(self.dec4)
        init_weights(self.dec3)
        init_weights(self.dec2)
        init_weights(self.dec1)
        init_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, 32)
        e1, e2, e3, e4 = self.encoder(self.norm(x))
        d4 = self.dec4(e4) + e3  # (B, c2, H/16, W/16)
        d3 = self.dec3(d4) + e2  # (B, c1, H/8, W/8)
        d2 = self.dec2(d3) + e1  # (B, c0, H/4, W/4)
        d1 = self.dec1(d2)  # (B, c0, H/2, W/2)
        return self.head_seg(self.head(d1))  # (B, 1, H, W) logits


def _check_size(x: torch.Tensor, multiple: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"input H, W = {h}, {w} must be multiples of {multiple}")


def linknet18(in_channels: int = 1, width: float = 1.0, input_norm: str = "global") -> LinkNet:
    """The paper's segmentation network (about 1.15e7 parameters at ``width=1``).

    ``input_norm="image"`` standardises each image by its own statistics first
    (:func:`dmtnn.models.blocks.input_layer`): no parameters, the scanner's gray
    levels no longer matter.
    """
    return LinkNet(in_channels, width, input_norm)
