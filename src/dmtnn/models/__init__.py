"""The networks: plain ``nn.Module``s that import nothing else from ``dmtnn``.

``linknet18``
    The paper's segmentation network (LinkNet, ResNet18 encoder).
``unet``
    The U-Net segmentation baseline.
``dmtnn`` (:func:`dmtnn_net`), ``mtnn_ws``
    DMTNN on a frozen segmenter, and the same network without it (Appendix A).
``cnn``, ``hard_sharing``, ``soft_sharing``
    The paper's baseline CNN (Fig. 8) and Fig. 2's sharing schemes.

Every builder takes a ``width`` channel multiplier; the regression networks
also take ``image_size`` (it sets their fully connected layers). The one
registry of them all, segmenters included, is :data:`REGISTRY`
(:mod:`dmtnn.models.registry`: what each takes and returns); :func:`build`
makes one by name, :func:`names` lists them, :func:`count_parameters` counts
their parameters, and :func:`layer_table`
lists a network's layers with their output shapes and parameters
(:mod:`dmtnn.models.summary`).
"""

from __future__ import annotations

from torch import nn

from dmtnn.models.baselines import CNN, HardSharing, SoftSharing, cnn, hard_sharing, soft_sharing
from dmtnn.models.blocks import BasicBlock, ResNetEncoder, channels
from dmtnn.models.dmtnn_net import DMTNN, TASKS, dmtnn_net, mtnn_ws
from dmtnn.models.linknet import LinkNet, linknet18
from dmtnn.models.registry import REGISTRY, Network, build, names, network
from dmtnn.models.summary import format_shape, layer_table, paper_tables, table_markdown
from dmtnn.models.unet import UNet, unet

__all__ = [
    "REGISTRY",
    "TASKS",
    "BasicBlock",
    "CNN",
    "DMTNN",
    "HardSharing",
    "SoftSharing",
    "cnn",
    "dmtnn_net",
    "hard_sharing",
    "mtnn_ws",
    "soft_sharing",
    "LinkNet",
    "Network",
    "ResNetEncoder",
    "UNet",
    "build",
    "channels",
    "count_parameters",
    "format_shape",
    "layer_table",
    "linknet18",
    "names",
    "network",
    "paper_tables",
    "table_markdown",
    "unet",
]


def count_parameters(model: nn.Module, *, trainable: bool | None = None) -> int:
    """Number of parameters: all, or only (non-)trainable ones."""
    return sum(
        p.numel() for p in model.parameters()
        if trainable is None or p.requires_grad == trainable
    )
