"""The one registry of networks: every segmenter and regression network, by name.

Each entry (:class:`Network`) says how to build the network and what it
returns, so that callers (:mod:`dmtnn.segmentation`, :mod:`dmtnn.multitask`,
the benchmarks, the tests) need no list of their own:

=================  ============  ===========================================================
name               kind          builder arguments (besides ``width``)
=================  ============  ===========================================================
``linknet``        segmentation  ``in_channels``
``unet``           segmentation  ``in_channels``
``dmtnn``          regression    ``segmenter`` (trained, frozen), ``image_size``, ``depth``,
                                 ``tasks``
``mtnn_ws``        regression    ``image_size``, ``depth``, ``tasks``
``cnn``            regression    ``in_channels``, ``image_size``
``hard_sharing``   regression    ``in_channels``, ``image_size``
``soft_sharing``   regression    ``in_channels``, ``image_size``
=================  ============  ===========================================================

A segmenter returns one logit map (B, 1, H, W) (positive = grain): the
``"mask"`` task of :data:`dmtnn.samples.SEGMENTATION`. A regression network
returns a dict of ``(B,)`` tensors, one per task (``"phi"``, ``"mu"``, ``"kappa"``,
or the ``tasks`` it was built with) and, with a segmenter inside (DMTNN), that
segmenter's logits as ``"mask"`` (B, 1, H, W). :meth:`Network.outputs` gives
these shapes for an input size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from dmtnn.models.baselines import cnn, hard_sharing, soft_sharing
from dmtnn.models.dmtnn_net import TASKS, dmtnn_net, mtnn_ws
from dmtnn.models.linknet import linknet18
from dmtnn.models.unet import unet

__all__ = ["KINDS", "Network", "REGISTRY", "network", "names", "build"]

#: The kinds of network: what they are trained on.
KINDS = ("segmentation", "regression")


@dataclass(frozen=True)
class Network:
    """A registered network: its builder and what it takes and returns.

    Attributes
    ----------
    name : str
        Registry key.
    builder : callable
        Makes the network from keyword arguments (always ``width``).
    kind : {"segmentation", "regression"}
        A segmenter returns a logit map; a regression network a dict of scalars.
    sized : bool
        Takes ``image_size``: its fully connected layers depend on it, so it
        accepts square images of that side only.
    segmenter : bool
        Takes a trained segmenter (``segmenter=``), frozen inside it.
    variants : bool
        Takes Appendix A's ``depth`` (feature modules per subnet) and
        ``tasks`` (a subset of phi, mu, kappa).
    multiple : int
        Image sides must be multiples of this (the segmenters' down-samplings).
    """

    name: str
    builder: Callable[..., nn.Module]
    kind: str
    sized: bool = False
    segmenter: bool = False
    variants: bool = False
    multiple: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def build(self, **kwargs) -> nn.Module:
        """The network, from its builder's keyword arguments."""
        return self.builder(**kwargs)

    def outputs(self, batch: int, size: int | tuple[int, int],
                tasks: Sequence[str] = TASKS) -> dict[str, tuple[int, ...]]:
        """Output name -> shape for ``batch`` images of ``size`` (a side or (H, W)).

        A segmenter's single tensor is named ``"mask"``; ``tasks`` are a
        regression network's outputs (its ``tasks`` argument, default all).
        """
        h, w = (size, size) if isinstance(size, int) else size
        if self.kind == "segmentation":
            return {"mask": (batch, 1, h, w)}
        out = {t: (batch,) for t in TASKS if t in tasks}
        if self.segmenter:
            out["mask"] = (batch, 1, h, w)
        return out


#: Every network, by name.
REGISTRY: dict[str, Network] = {n.name: n for n in (
    Network("linknet", linknet18, "segmentation", multiple=32),
    Network("unet", unet, "segmentation", multiple=16),
    Network("dmtnn", dmtnn_net, "regression", sized=True, segmenter=True, variants=True,
            multiple=32),
    Network("mtnn_ws", mtnn_ws, "regression", sized=True, variants=True),
    Network("cnn", cnn, "regression", sized=True),
    Network("hard_sharing", hard_sharing, "regression", sized=True),
    Network("soft_sharing", soft_sharing, "regression", sized=True),
)}


def names(kind: str | None = None) -> tuple[str, ...]:
    """Registered names, all or of one kind, in registry order.

    >>> names("segmentation")
    ('linknet', 'unet')
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return tuple(n for n, spec in REGISTRY.items() if kind is None or spec.kind == kind)


def network(name: str, kind: str | None = None) -> Network:
    """The registry entry ``name``, checked to be of ``kind`` when given."""
    valid = names(kind)
    if name not in valid:
        what = "model" if kind is None else f"{kind} network"
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(valid)}")
    return REGISTRY[name]


def build(name: str, *, kind: str | None = None, **kwargs) -> nn.Module:
    """Network ``name`` (a key of :data:`REGISTRY`, of ``kind`` if given) from its
    builder's keyword arguments.

    >>> import torch
    >>> build("cnn", image_size=64, width=0.25)(torch.zeros(2, 1, 64, 64))["phi"].shape
    torch.Size([2])
    """
    return network(name, kind).build(**kwargs)
