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
                                 ``tasks``, ``head_width``
``mtnn_ws``        regression    ``image_size``, ``depth``, ``tasks``, ``head_width``
``cnn``            regression    ``in_channels``, ``image_size``
``hard_sharing``   regression    ``in_channels``, ``image_size``
``soft_sharing``   regression    ``in_channels``, ``image_size``
=================  ============  ===========================================================

Channel multipliers: every builder takes ``width``; what it scales depends
on where the network spends its FLOPs (:attr:`Network.scaling`). The
segmenters run at full resolution throughout (``"trunk"``: ``width`` scales
everything); DMTNN and MTNN_WS have a costly full-resolution part and a cheap
pooled one (``"split"``: ``width`` for the first, ``head_width`` for the
second); the CNN and the sharing schemes pool after every stage, so they are
cheap throughout (``"head"``: built at ``head_width``).
:meth:`Network.width_kwargs` turns a configuration's pair of multipliers into
the builder's arguments.

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

__all__ = ["KINDS", "SCALINGS", "Network", "REGISTRY", "network", "names", "build"]

#: The kinds of network: what they are trained on.
KINDS = ("segmentation", "regression")

#: How a network's channels follow the two multipliers (:attr:`Network.scaling`).
SCALINGS = ("trunk", "split", "head")


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
    scaling : {"trunk", "split", "head"}
        Which channel multiplier the network is built at: ``width`` for all
        of it, ``width`` for its full-resolution part and ``head_width`` for
        the rest, or ``head_width`` for all of it (see the module docstring).
    """

    name: str
    builder: Callable[..., nn.Module]
    kind: str
    sized: bool = False
    segmenter: bool = False
    variants: bool = False
    multiple: int = 1
    scaling: str = "trunk"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")

    def width_kwargs(self, width: float, head_width: float) -> dict[str, float]:
        """The builder's width arguments for a configuration's two multipliers.

        >>> network("cnn").width_kwargs(0.125, 1.0)
        {'width': 1.0}
        >>> network("dmtnn").width_kwargs(0.125, 1.0)
        {'width': 0.125, 'head_width': 1.0}
        """
        if self.scaling == "head":
            return {"width": head_width}
        if self.scaling == "split":
            return {"width": width, "head_width": head_width}
        return {"width": width}

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
            multiple=32, scaling="split"),
    Network("mtnn_ws", mtnn_ws, "regression", sized=True, variants=True, scaling="split"),
    Network("cnn", cnn, "regression", sized=True, scaling="head"),
    Network("hard_sharing", hard_sharing, "regression", sized=True, scaling="head"),
    Network("soft_sharing", soft_sharing, "regression", sized=True, scaling="head"),
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
