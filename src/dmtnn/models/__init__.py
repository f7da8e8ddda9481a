"""The networks: plain ``nn.Module``s that import nothing else from ``dmtnn``.

``linknet18``
    The paper's segmentation network (LinkNet, ResNet18 encoder).
``unet``
    The U-Net segmentation baseline.
``dmtnn``, ``mtnn_ws``
    DMTNN on a frozen segmenter, and the same network without it (Appendix A).
``cnn``, ``hard_sharing``, ``soft_sharing``
    The paper's baseline CNN (Fig. 8) and Fig. 2's sharing schemes.

Every builder takes a ``width`` channel multiplier; the regression networks
also take ``image_size`` (it sets their fully connected layers). :func:`build`
makes one by name, :func:`count_parameters` counts them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dmtnn.models.baselines import CNN, HardSharing, SoftSharing, cnn, hard_sharing, soft_sharing
from dmtnn.models.blocks import BasicBlock, ResNetEncoder, channels
from dmtnn.models.dmtnn import DMTNN, TASKS, dmtnn, mtnn_ws
from dmtnn.models.linknet import LinkNet, linknet18
from dmtnn.models.unet import UNet, unet

__all__ = [
    "BUILDERS",
    "TASKS",
    "BasicBlock",
    "CNN",
    "DMTNN",
    "HardSharing",
    "SoftSharing",
    "cnn",
    "dmtnn",
    "hard_sharing",
    "mtnn_ws",
    "soft_sharing",
    "LinkNet",
    "ResNetEncoder",
    "UNet",
    "build",
    "channels",
    "count_parameters",
    "linknet18",
    "unet",
]

#: Model builders by name.
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "linknet": linknet18,
    "unet": unet,
    "dmtnn": dmtnn,
    "mtnn_ws": mtnn_ws,
    "cnn": cnn,
    "hard_sharing": hard_sharing,
    "soft_sharing": soft_sharing,
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
