"""The networks: plain ``nn.Module``s that import nothing else from ``dmtnn``.

``linknet18``
    The paper's segmentation network (LinkNet, ResNet18 encoder).
``unet``
    The U-Net segmentation baseline.

Every builder takes ``in_channels`` and a ``width`` channel multiplier;
:func:`build` makes one by name, :func:`count_parameters` counts them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dmtnn.models.blocks import BasicBlock, ResNetEncoder, channels
from dmtnn.models.linknet import LinkNet, linknet18
from dmtnn.models.unet import UNet, unet

__all__ = [
    "BUILDERS",
    "BasicBlock",
    "LinkNet",
    "ResNetEncoder",
    "UNet",
    "build",
    "channels",
    "count_parameters",
    "linknet18",
    "unet",
]

#: Model builders by name; each takes ``in_channels`` and ``width``.
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linknet": linknet18,
    "unet": unet,
}


def build(name: str, **kwargs) -> nn.Module:
    """Model ``name`` (a key of :data:`BUILDERS`) with builder arguments ``kwargs``."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[name](**kwargs)


def count_parameters(model: nn.Module, *, trainable: bool | None = None) -> int:
    """Number of parameters: all, or only (non-)trainable ones."""
    return sum(
        p.numel() for p in model.parameters()
        if trainable is None or p.requires_grad == trainable
    )
