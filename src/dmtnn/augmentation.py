"""Training-time augmentation: the square's symmetries and a scanner's gray-level rendering.

Two kinds, both drawn from the training loop's seeded generator, so that a run
repeats itself (``TrainConfig.augment``, ``TrainConfig.intensity``):

- **Symmetries** (:func:`draw_symmetry`, :func:`apply_symmetry`): a batch
  turned by a random multiple of 90 degrees and flipped at random. They leave
  every label unchanged (porosity, the 2D bulk modulus, the isotropic shear
  modulus; a mask turns with its image).
- **Intensity** (:class:`Intensity`, :func:`draw_intensity`): each image of a
  batch rendered as another scanner might have: a Gaussian blur (a wider
  point-spread function), added noise, a gamma curve, a gain and an offset,
  and rounding to fewer gray levels (a coarser bit depth). None of these moves
  a grain boundary, so the mask stays the label. Meant for the segmenters,
  whose input is the gray image; DMTNN sees the gray image only through its
  frozen segmenter.

The ranges (:data:`INTENSITY_RANGES`) cover the renderings of
:data:`dmtnn.data.ct.SCANNERS` and more, on gray levels scaled to 0..1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "INTENSITY_RANGES",
    "Intensity",
    "draw_symmetry",
    "apply_symmetry",
    "draw_intensity",
]

#: Ranges of the intensity augmentation, gray levels scaled to 0..1. Gain and gamma are
#: drawn log-uniformly, the rest uniformly; ``bits`` is one of the listed depths.
INTENSITY_RANGES: dict[str, tuple[float, ...]] = {
    "blur_px": (0.0, 1.2),  # standard deviation of the Gaussian blur, pixels
    "noise": (0.0, 0.08),  # standard deviation of the added noise
    "gamma": (0.6, 1.6),
    "gain": (0.5, 1.6),
    "offset": (-0.25, 0.25),
    "bits": (5, 6, 7, 8, 16),
}


def draw_symmetry(generator: torch.Generator | None) -> tuple[int, bool]:
    """A random element of the square's symmetry group: quarter turns and a flip."""
    k = int(torch.randint(4, (1,), generator=generator))
    return k, bool(torch.randint(2, (1,), generator=generator))


def apply_symmetry(x: torch.Tensor, turn: tuple[int, bool]) -> torch.Tensor:
    """``x`` (..., H, W) turned by ``turn[0]`` quarter turns, then flipped if ``turn[1]``.

    A non-square image skips odd quarter turns (they would change its shape).
    """
    k, flip = turn
    if k % 2 and x.shape[-1] != x.shape[-2]:
        k -= 1
    if k:
        x = torch.rot90(x, k, (-2, -1))
    return x.flip(-1) if flip else x


@dataclass(frozen=True)
class Intensity:
    """One batch's gray-level rendering: a value per image of each parameter, (B,) tensors."""

    blur_px: torch.Tensor
    noise: torch.Tensor
    gamma: torch.Tensor
    gain: torch.Tensor
    offset: torch.Tensor
    levels: torch.Tensor  # gray levels of the bit depth (2^bits)
    seed: int  # of the noise

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Render ``x`` (B, 1, H, W), gray levels in 0..1, anew: blur, noise, gamma, gain and
        offset, clipping to 0..1 and rounding to the bit depth's levels."""
        b = x.shape[0]
        dev = x.device
        x = _blur(x, self.blur_px.to(dev))
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(dev)
        x = x + self.noise.to(dev).view(b, 1, 1, 1) * noise
        x = x.clamp(0, 1) ** self.gamma.to(dev).view(b, 1, 1, 1)
        x = x * self.gain.to(dev).view(b, 1, 1, 1) + self.offset.to(dev).view(b, 1, 1, 1)
        top = (self.levels.to(dev) - 1).view(b, 1, 1, 1)
        return torch.round(x.clamp(0, 1) * top) / top


def draw_intensity(generator: torch.Generator | None, n: int) -> Intensity:
    """Random renderings of ``n`` images within :data:`INTENSITY_RANGES`."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    def log_uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.exp(uniform(math.log(lo), math.log(hi)))

    r = INTENSITY_RANGES
    bits = torch.tensor(r["bits"], dtype=torch.float32)
    pick = torch.randint(len(bits), (n,), generator=generator)
    return Intensity(
        blur_px=uniform(*r["blur_px"]),
        noise=uniform(*r["noise"]),
        gamma=log_uniform(*r["gamma"]),
        gain=log_uniform(*r["gain"]),
        offset=uniform(*r["offset"]),
        levels=2.0 ** bits[pick],
        seed=int(torch.randint(2**31 - 1, (1,), generator=generator)),
    )


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image (B, 1, H, W) blurred by a Gaussian of its own ``sigma`` (B,) pixels.

    Separable, reflecting at the edges; ``sigma`` 0 leaves an image unchanged.
    """
    b, _, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    s = sigma.clamp_min(1e-3).view(b, 1)
    k = torch.exp(-0.5 * (t.view(1, -1) / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, 2r+1); a tiny sigma gives a unit impulse
    y = F.pad(x.float().reshape(1, b, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(b, 1, 1, -1), groups=b)
    y = F.conv2d(y, k.view(b, 1, -1, 1), groups=b)
    return y.reshape(b, 1, h, w)
