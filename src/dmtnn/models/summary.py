"""Layer tables: what a network of :mod:`dmtnn.models` is made of, from the code itself.

:func:`layer_table` runs one forward pass through a network and lists every
layer or block with its output shape and parameter count; :func:`paper_tables`
makes the tables of the paper's DMTNN (on a LinkNet segmenter) and baseline CNN;
:func:`table_markdown` writes a table as a Markdown pipe table. The diagrams of
Figs. 3 and 8 (:mod:`dmtnn.diagrams`) are drawn from these tables, so they
cannot drift from the code.

Like the rest of :mod:`dmtnn.models`, this module imports nothing else from
``dmtnn``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from dmtnn.models.baselines import CrossStitch, cnn
from dmtnn.models.blocks import BasicBlock
from dmtnn.models.dmtnn_net import dmtnn_net
from dmtnn.models.linknet import DecoderBlock, linknet18

__all__ = ["format_shape", "layer_table", "paper_tables", "table_markdown"]

_COLUMNS = ["block", "layer", "output shape", "parameters", "trainable"]

_LEAVES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d,
           nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.BatchNorm1d, nn.BatchNorm2d)
_BLOCKS = (BasicBlock, DecoderBlock, CrossStitch)
_QUIET = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.Flatten, nn.Identity, nn.Dropout,
          nn.Sigmoid)


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


def _kernel(k, s=1) -> str:
    (kh, kw), (sh, sw) = _pair(k), _pair(s)
    out = f"{kh}×{kw}"
    if (sh, sw) != (1, 1):
        out += f"/{sh}" if sh == sw else f"/{sh}×{sw}"
    return out


def _is_conv_unit(m: nn.Module) -> bool:
    """A ``Sequential`` of one convolution followed only by BatchNorm and activations."""
    if not isinstance(m, nn.Sequential) or len(m) < 2:
        return False
    first, *rest = list(m)
    return (isinstance(first, nn.Conv2d | nn.ConvTranspose2d)
            and all(isinstance(r, _QUIET) for r in rest))


def _describe(m: nn.Module) -> str | None:
    """A short description of a layer or block; ``None`` for BatchNorm and activations."""
    if isinstance(m, nn.ConvTranspose2d):
        return (f"transposed conv {_kernel(m.kernel_size, m.stride)}, "
                f"{m.in_channels} → {m.out_channels}")
    if isinstance(m, nn.Conv2d):
        return f"conv {_kernel(m.kernel_size, m.stride)}, {m.in_channels} → {m.out_channels}"
    if isinstance(m, nn.Linear):
        return f"linear {m.in_features} → {m.out_features}"
    if isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
        kind = "max" if isinstance(m, nn.MaxPool2d) else "avg"
        k, s = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
        return f"{kind}-pool {_kernel(k)}" + ("" if s == k else f"/{s[0]}")
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        return f"adaptive pool to {m.output_size}"
    if isinstance(m, _QUIET):
        return None
    if isinstance(m, CrossStitch):
        return f"cross-stitch unit, {m.alpha.shape[0]} tasks"
    if _is_conv_unit(m):
        extra = [type(r).__name__ for r in list(m)[1:]]
        extra = ["BN" if e.startswith("BatchNorm") else e for e in extra]
        return " + ".join([_describe(m[0]), *extra])
    if isinstance(m, BasicBlock):
        return (f"residual block {_kernel(3, m.conv1.stride)}, "
                f"{m.conv1.in_channels} → {m.conv1.out_channels}")
    parts = [d for c in m.children() if (d := _describe(c))]
    if not parts:
        return type(m).__name__
    runs: list[list] = []
    for p in parts:  # run-length: "2 × residual block 3×3, 64"
        if runs and runs[-1][0] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    text = " + ".join(p if n == 1 else f"{n} × {p}" for p, n in runs)
    if isinstance(m, DecoderBlock):
        text = f"decoder block: {text}"
    return text


def _select_rows(model: nn.Module, collapse: set[str] | None) -> list[tuple[str, nn.Module, bool]]:
    """The modules that get a row: ``(name, module, recurse)``; ``recurse`` counts the subtree."""
    rows: list[tuple[str, nn.Module, bool]] = []
    seen: set[int] = set()

    def visit(name: str, m: nn.Module) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        params = list(m.parameters())
        if name:  # the root never collapses
            if collapse is not None:
                if name in collapse:
                    rows.append((name, m, True))
                    return
            elif params and not any(p.requires_grad for p in params) and (
                    isinstance(m, (nn.Sequential, *_BLOCKS, *_LEAVES))):
                rows.append((name, m, True))  # a stage of a frozen network
                return
            if _is_conv_unit(m) or isinstance(m, (*_BLOCKS, *_LEAVES)):
                rows.append((name, m, True))
                return
        if list(m.parameters(recurse=False)):
            rows.append((name, m, False))  # its own parameters; children get their rows
        for child, sub in m.named_children():
            visit(f"{name}.{child}" if name else child, sub)

    visit("", model)
    return rows


def _shape(out) -> tuple | None:
    """Output shape per sample (batch dimension dropped); a tuple of them for sequences."""
    if isinstance(out, torch.Tensor):
        return tuple(out.shape[1:])
    if isinstance(out, list | tuple) and out and all(isinstance(o, torch.Tensor) for o in out):
        return tuple(tuple(o.shape[1:]) for o in out)
    if isinstance(out, dict):
        return tuple(tuple(o.shape[1:]) for o in out.values())
    return None


def layer_table(model: nn.Module, input_shape: Sequence[int], *,
                collapse: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per layer or block of ``model``, with output shape and parameters.

    Runs one forward pass on zeros of ``input_shape`` in eval mode without
    gradients, with forward hooks on the modules that get a row, and restores
    the model's train/eval mode afterwards.

    Parameters
    ----------
    model : nn.Module
        Any network of :mod:`dmtnn.models` (or another ``nn.Module``).
    input_shape : sequence of int
        Shape of the input batch, e.g. ``(1, 1, 256, 256)`` (B, C, H, W).
    collapse : iterable of str, optional
        Dotted module names to show as one row each (their whole subtree).
        Default: every frozen sub-network (no parameter requiring a gradient,
        such as DMTNN's segmenter) is shown as its stages (its ``Sequential``
        containers, residual and decoder blocks and bare layers), and the
        trainable parts layer by layer.

    Returns
    -------
    pandas.DataFrame
        Columns ``block`` (dotted module name), ``layer`` (what it is:
        "conv 3×3, 256 → 128 + BN + ReLU", "avg-pool 4×4", "linear 240 → 64"...),
        ``output shape`` (tuple, per sample, without the batch dimension;
        ``None`` for a module the forward pass never called),
        ``parameters`` (int) and ``trainable`` ("yes", "no", "partly", or "–"
        for no parameters), in the order the forward pass reached them.
        ``attrs`` holds ``model`` (the class name) and ``input_shape``.

    Notes
    -----
    Convolutions, pools, fully connected layers, conv + BN + ReLU units and
    residual / decoder / cross-stitch blocks get rows; BatchNorm and
    activations count with the convolution before them. Every parameter is
    in exactly one row (a shared one in the first), so the ``parameters``
    column sums to :func:`dmtnn.models.count_parameters` of the model, and
    its ``trainable == "yes"`` rows to ``count_parameters(model, trainable=True)``.

    Examples
    --------
    >>> from dmtnn.models import cnn
    >>> t = layer_table(cnn(image_size=64, width=0.25), (1, 1, 64, 64))
    >>> t.iloc[-1]["layer"], t.iloc[-1]["output shape"]
    ('linear 24 → 3', (3,))
    """
    input_shape = tuple(int(s) for s in input_shape)
    rows = _select_rows(model, None if collapse is None else set(collapse))
    shapes: dict[str, tuple | None] = {}
    order: dict[str, int] = {}

    def hook(name):
        def record(module, args, out):
            shapes[name] = _shape(out)
            order.setdefault(name, len(order))
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m, _ in rows]
    first = next(model.parameters(), None)
    x = torch.zeros(input_shape, dtype=first.dtype if first is not None else torch.float32,
                    device=first.device if first is not None else "cpu")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    records, counted = [], set()
    for name, m, recurse in rows:
        params = [p for p in m.parameters(recurse=recurse) if id(p) not in counted]
        counted.update(id(p) for p in params)
        n = sum(p.numel() for p in params)
        grads = {p.requires_grad for p in params}
        trainable = "–" if not params else {frozenset({True}): "yes",
                                            frozenset({False}): "no"}.get(frozenset(grads),
                                                                          "partly")
        if not recurse:
            layer = f"{type(m).__name__} (own parameters)"
        else:  # a bare BatchNorm (outside a conv unit) or another quiet layer: its class
            layer = _describe(m) or re.sub(r"\dd$", "", type(m).__name__)
        records.append({"block": name or type(model).__name__, "layer": layer,
                        "output shape": shapes.get(name), "parameters": n,
                        "trainable": trainable, "_order": order.get(name, len(rows))})
    table = (pd.DataFrame(records).sort_values("_order", kind="stable")
             .drop(columns="_order").reset_index(drop=True))
    table = table[_COLUMNS]
    table.attrs.update(model=type(model).__name__, input_shape=input_shape)
    return table


def paper_tables(image_size: int = 256, width: float = 1.0) -> dict[str, pd.DataFrame]:
    """Layer tables of DMTNN (on a LinkNet segmenter) and the baseline CNN.

    Parameters
    ----------
    image_size : int
        Side of the input in pixels (256: the paper's size).
    width : float
        Channel multiplier of the builders (1.0: the paper's networks).

    Returns
    -------
    dict
        ``{"dmtnn": table, "cnn": table}`` for one ``(1, 1, image_size,
        image_size)`` input. The global torch random state is left as it was.
    """
    shape = (1, 1, image_size, image_size)
    with torch.random.fork_rng(devices=[]):
        nets = {"dmtnn": dmtnn_net(linknet18(width=width), image_size=image_size, width=width),
                "cnn": cnn(image_size=image_size, width=width)}
    tables = {k: layer_table(net, shape) for k, net in nets.items()}
    for k, t in tables.items():
        t.attrs["call"] = (f"dmtnn_net(linknet18(width={width:g}), image_size={image_size}, "
                           f"width={width:g})" if k == "dmtnn"
                           else f"cnn(image_size={image_size}, width={width:g})")
    return tables


def format_shape(shape) -> str:
    """An ``output shape`` of a layer table as text: "64×256×256", "1, 1" for several, "–".

    >>> format_shape((64, 256, 256)), format_shape(((1,), (1,))), format_shape(None)
    ('64×256×256', '1, 1', '–')
    """
    if shape is None:
        return "–"
    if shape and isinstance(shape[0], tuple):
        return ", ".join(format_shape(s) for s in shape)
    return "×".join(str(s) for s in shape) if shape else "scalar"


def table_markdown(table: pd.DataFrame, caption: str | None = None) -> str:
    """A layer table as a MyST / GitHub pipe table, after a one-line caption.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`layer_table`.
    caption : str, optional
        Default: a sentence saying the table is generated from the code, for
        which call and input, with the total, trainable and frozen counts.

    Returns
    -------
    str
        Markdown text ending in a newline; the last table row is the total.
    """
    total = int(table["parameters"].sum())
    trainable = int(table.loc[table["trainable"] == "yes", "parameters"].sum())
    frozen = int(table.loc[table["trainable"] == "no", "parameters"].sum())
    if caption is None:
        what = table.attrs.get("call", table.attrs.get("model", "the model"))
        shape = "×".join(str(s) for s in table.attrs.get("input_shape", ()))
        caption = (f"Generated from the model code by `dmtnn.models.layer_table` for "
                   f"`{what}` on a {shape} input: {total:,} parameters, {trainable:,} "
                   f"trainable and {frozen:,} frozen (output shapes per image, "
                   f"channels × height × width).")
    lines = [caption, "", "| block | layer | output shape | parameters | trainable |",
             "|:--|:--|:--|--:|:-:|"]
    for r in table.itertuples(index=False):
        lines.append(f"| `{r.block}` | {r.layer} | {format_shape(r[2])} | {r.parameters:,} "
                     f"| {r.trainable} |")
    lines.append(f"| **total** | | | **{total:,}** | |")
    return "\n".join(lines) + "\n"

