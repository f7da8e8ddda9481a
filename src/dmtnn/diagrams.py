r"""The paper's four diagrams, drawn with matplotlib: Figs. 1, 2, 3 and 8.

``draw_workflow`` (Fig. 1)
    The digital-rock workflow: a grayscale micro-CT slice is segmented
    (threshold labels, or the LinkNet segmenter) into a binary image, whose
    pore fraction is the porosity and whose FEM simulation gives the shear
    and bulk moduli; DMTNN gives all four from the grayscale slice alone.
    Fixed content.
``draw_sharing`` (Fig. 2)
    (a) soft parameter sharing: one network per task, linked by
    cross-stitch units; (b) hard parameter sharing: a shared trunk and one
    head per task; (c) DMTNN: a frozen segmenter, a parameter-sharing network
    and three subnets, the porosity features fed into the moduli subnets.
    Schematic, fixed content.
``draw_dmtnn`` (Fig. 3) and ``draw_cnn`` (Fig. 8)
    The DMTNN architecture and the baseline CNN, **generated from the model
    code**: :func:`layer_table` runs one forward pass through the network
    built by :mod:`dmtnn.models` and lists every layer with its output
    shape and parameter count; the drawings take their boxes, shapes and
    counts from that table, so they cannot drift from the code. Colour code
    of the paper: black = segmentation network, red = parameter-sharing
    network, blue = information-extraction subnets.

:func:`write_all` writes the four SVGs and the two layer tables (Markdown)
into a folder; ``python -m dmtnn.diagrams FOLDER`` does the same.

The figures are :class:`matplotlib.figure.Figure` objects made without
pyplot (nothing is shown, nothing is left open), 700 px wide at 96 px per
inch, with no text below 9 pt at that width. Coordinates inside them are
inches from the top-left corner (y negative downwards).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from matplotlib.textpath import TextToPath
from torch import nn

from dmtnn.artifacts import atomic_write
from dmtnn.models import TASKS, BasicBlock, cnn, dmtnn, linknet18
from dmtnn.models.baselines import CrossStitch
from dmtnn.models.linknet import DecoderBlock

__all__ = [
    "COLORS",
    "FILES",
    "WIDTH_IN",
    "draw_cnn",
    "draw_dmtnn",
    "draw_sharing",
    "draw_workflow",
    "layer_table",
    "main",
    "paper_tables",
    "save_svg",
    "table_markdown",
    "write_all",
]

log = logging.getLogger(__name__)

#: Figure width in inches: a 700 px page column at 96 px per inch.
WIDTH_IN = 700 / 96

#: Edge colours of the paper's code (Fig. 3): segmentation, sharing, extraction, other.
COLORS = {"seg": "black", "share": "#c0392b", "extract": "#1f5fa8", "other": "0.35"}
_FILL = {"seg": "0.90", "share": "#fbe3e0", "extract": "#e1ecf8", "other": "0.96"}

#: The files :func:`write_all` writes.
FILES = ("fig01_workflow.svg", "fig02_sharing.svg", "fig03_dmtnn.svg", "fig08_cnn.svg",
         "fig03_dmtnn_layers.md", "fig08_cnn_layers.md")

_SIZE, _SMALL, _TITLE = 9.5, 9.0, 10.5  # font sizes (pt) at WIDTH_IN
_LINE = 1.3  # line height, in font sizes
_SVG_RC = {"svg.hashsalt": "dmtnn", "svg.fonttype": "path", "font.family": "DejaVu Sans"}
_COLUMNS = ["block", "layer", "output shape", "parameters", "trainable"]


# --------------------------------------------------------------------------------------
# Layer tables (Figs. 3 and 8 come from these)
# --------------------------------------------------------------------------------------

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
        nets = {"dmtnn": dmtnn(linknet18(width=width), image_size=image_size, width=width),
                "cnn": cnn(image_size=image_size, width=width)}
    tables = {k: layer_table(net, shape) for k, net in nets.items()}
    for k, t in tables.items():
        t.attrs["call"] = (f"dmtnn(linknet18(width={width:g}), image_size={image_size}, "
                           f"width={width:g})" if k == "dmtnn"
                           else f"cnn(image_size={image_size}, width={width:g})")
    return tables


def _fmt_shape(shape) -> str:
    if shape is None:
        return "–"
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_fmt_shape(s) for s in shape)
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
        caption = (f"Generated from the model code by `dmtnn.diagrams.layer_table` for "
                   f"`{what}` on a {shape} input: {total:,} parameters, {trainable:,} "
                   f"trainable and {frozen:,} frozen (output shapes per image, "
                   f"channels × height × width).")
    lines = [caption, "", "| block | layer | output shape | parameters | trainable |",
             "|:--|:--|:--|--:|:-:|"]
    for r in table.itertuples(index=False):
        lines.append(f"| `{r.block}` | {r.layer} | {_fmt_shape(r[2])} | {r.parameters:,} "
                     f"| {r.trainable} |")
    lines.append(f"| **total** | | | **{total:,}** | |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Drawing helpers: coordinates in inches from the top-left corner, y negative downwards
# --------------------------------------------------------------------------------------

_T2P = TextToPath()


def _text_width(s: str, size: float = _SIZE, bold: bool = False) -> float:
    """Width of ``s`` in inches at ``size`` points."""
    prop = FontProperties(family=_SVG_RC["font.family"], size=size,
                          weight="bold" if bold else "normal")
    return _T2P.get_text_width_height_descent(s, prop, ismath=False)[0] / 72


def _line_h(size: float = _SIZE) -> float:
    return size * _LINE / 72


def _canvas(height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH_IN, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH_IN)
    ax.set_ylim(-height, 0)
    ax.set_axis_off()
    return fig, ax


def _box(ax, x: float, y: float, w: float, lines: Sequence[str], *, kind: str = "other",
         h: float | None = None, size: float = _SIZE, bold_first: bool = True,
         fill: str | None = None, lw: float = 1.2, dashed: bool = False) -> tuple:
    """A rounded box with top-left corner (x, y) and centred lines; returns (x, y, w, h)."""
    pad = 0.06
    h = h if h is not None else len(lines) * _line_h(size) + 2 * pad
    ax.add_patch(FancyBboxPatch((x, y - h), w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                ec=COLORS[kind], fc=fill or _FILL[kind], lw=lw,
                                ls="--" if dashed else "-"))
    top = y - (h - len(lines) * _line_h(size)) / 2
    for i, line in enumerate(lines):
        ax.text(x + w / 2, top - (i + 0.5) * _line_h(size), line, ha="center", va="center",
                fontsize=size, fontweight="bold" if bold_first and i == 0 else "normal")
    return x, y, w, h


def _frame(ax, x: float, y: float, w: float, h: float, kind: str, title: str,
           note: str = "") -> None:
    """A group frame in the colour of ``kind``, its title and ``note`` at its top right.

    The title sits at the right so that arrows may enter the frame at its left.
    """
    ax.add_patch(FancyBboxPatch((x, y - h), w, h, boxstyle="round,pad=0,rounding_size=0.08",
                                ec=COLORS[kind], fc="none", lw=2.0))
    ty = y - 0.07 - _line_h(_TITLE) / 2
    right = x + w - 0.12
    if note:
        ax.text(right, ty, note, ha="right", va="center", fontsize=_SIZE, color=COLORS[kind])
        right -= _text_width(note) + 0.15
    ax.text(right, ty, title, ha="right", va="center", fontsize=_TITLE, fontweight="bold",
            color=COLORS[kind])


def _arrow(ax, *points, color: str = "0.15", dashed: bool = False, head: bool = True) -> None:
    """A polyline through ``points`` with an arrow head at the last one."""
    for a, b in zip(points[:-2], points[1:-1], strict=True):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=color, lw=1.2, ls="--" if dashed else "-",
                solid_capstyle="butt")
    ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>" if head else "-",
                                 mutation_scale=11, lw=1.2, color=color, shrinkA=0,
                                 shrinkB=0, ls="--" if dashed else "-"))


def _node(ax, x: float, y: float, symbol: str, color: str = "0.15") -> None:
    """A small circle with a symbol: ``+`` (addition), ``c`` (concatenation)."""
    ax.add_patch(Circle((x, y), 0.085, ec=color, fc="white", lw=1.2, zorder=3))
    ax.text(x, y, symbol, ha="center", va="center_baseline", fontsize=_SMALL, zorder=4,
            color=color)


def _left(b) -> tuple[float, float]:
    return b[0], b[1] - b[3] / 2


def _right(b) -> tuple[float, float]:
    return b[0] + b[2], b[1] - b[3] / 2


def _top(b) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1]


def _bottom(b) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1] - b[3]


def save_svg(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as SVG atomically, byte-for-byte the same on every run.

    The SVG ids are salted with a fixed string (``svg.hashsalt``) and the
    date is left out of the metadata.
    """
    def write(tmp: Path) -> None:
        with mpl.rc_context(_SVG_RC):
            fig.savefig(tmp, format="svg", metadata={"Date": None})
    return atomic_write(path, write)


# --------------------------------------------------------------------------------------
# Fig. 1: the workflow
# --------------------------------------------------------------------------------------

def draw_workflow() -> Figure:
    """Fig. 1: the digital-rock workflow and DMTNN's shortcut through it.

    Upper lane: the conventional workflow that makes the labels (threshold
    segmentation, or the trained LinkNet, gives the binary image; its pore
    fraction is the porosity; the FEM on it gives mu and K). Lower lane:
    DMTNN predicts the binary image, porosity, mu and K from the grayscale
    slice alone.

    Returns
    -------
    matplotlib.figure.Figure
    """
    lh = _line_h()
    h3 = 3 * lh + 0.12
    y1 = -0.45
    y_phi = y1 - h3 - 0.2
    y2 = y_phi - (lh + 0.12) - 0.55
    height = -y2 + h3 + 0.12
    with mpl.rc_context(_SVG_RC):
        fig, ax = _canvas(height)
        ax.text(1.6, y1 + 0.22, "conventional workflow: makes the labels", fontsize=_TITLE,
                fontweight="bold", va="center", color=COLORS["other"])
        seg = _box(ax, 1.6, y1, 1.3, ["segmentation", "threshold labels", "or LinkNet"],
                   kind="seg", h=h3)
        binary = _box(ax, 3.2, y1, 1.2, ["binary image", "pore / grain", "1 = grain"], h=h3)
        fem = _box(ax, 4.7, y1, 1.0, ["FEM", "2D, periodic,", "quartz grains"], h=h3)
        moduli = _box(ax, 6.0, y1, 1.17, ["shear modulus μ", "bulk modulus K"],
                      bold_first=False, h=h3)
        phi = _box(ax, 6.0, y_phi, 1.17, ["porosity φ"], bold_first=False)
        _arrow(ax, _right(seg), _left(binary))
        _arrow(ax, _right(binary), _left(fem))
        _arrow(ax, _right(fem), _left(moduli))
        _arrow(ax, _bottom(binary), (_bottom(binary)[0], _left(phi)[1]), _left(phi))
        ax.text(_bottom(binary)[0] + 0.08, _left(phi)[1] + 0.04, "pore fraction",
                fontsize=_SMALL, va="bottom", ha="left", color="0.25")

        ax.text(1.6, y2 + 0.22, "DMTNN: all four from the grayscale alone", fontsize=_TITLE,
                fontweight="bold", va="center", color=COLORS["extract"])
        net = _box(ax, 1.6, y2, 4.1, ["DMTNN", "frozen LinkNet → parameter-sharing network",
                                      "→ porosity, shear and bulk subnets"],
                   kind="extract", h=h3)
        outs = _box(ax, 6.0, y2, 1.17, ["mask, φ, μ, K"], bold_first=False, h=h3,
                    kind="extract")
        _arrow(ax, _right(net), _left(outs))
        xs = outs[0] + outs[2] / 2
        _arrow(ax, _bottom(phi), (xs, outs[1]), color=COLORS["other"], dashed=True)
        ax.text(xs + 0.08, (phi[1] - phi[3] + outs[1]) / 2, "labels", fontsize=_SMALL,
                va="center", ha="left", color="0.25")

        yg = (_left(seg)[1] + _left(net)[1]) / 2
        gray = _box(ax, 0.12, yg + h3 / 2, 1.15, ["grayscale", "micro-CT slice", "1×256×256"],
                    h=h3)
        _arrow(ax, _right(gray), (1.45, yg), (1.45, _left(seg)[1]), _left(seg))
        _arrow(ax, _right(gray), (1.45, yg), (1.45, _left(net)[1]), _left(net))
    return fig


# --------------------------------------------------------------------------------------
# Fig. 2: soft sharing, hard sharing, DMTNN
# --------------------------------------------------------------------------------------

_TASK_SYMBOLS = {"phi": "φ", "mu": "μ", "K": "K"}


def _legend(ax, x: float, y: float, items: Sequence[tuple[str, str, str]]) -> None:
    """One row of legend items ``(marker, colour kind, text)``; marker box, dot or arrow."""
    for marker, kind, text in items:
        if marker == "box":
            ax.add_patch(FancyBboxPatch((x, y - 0.07), 0.22, 0.14,
                                        boxstyle="round,pad=0,rounding_size=0.03",
                                        ec=COLORS[kind], fc=_FILL[kind], lw=1.2))
        elif marker == "dot":
            ax.plot([x, x + 0.22], [y, y], color=COLORS[kind], lw=1.2)
            ax.add_patch(Circle((x + 0.11, y), 0.05, fc=COLORS[kind], ec="none"))
        else:
            _arrow(ax, (x, y), (x + 0.22, y), color=COLORS[kind])
        ax.text(x + 0.3, y, text, fontsize=_SMALL, va="center", ha="left")
        x += 0.3 + _text_width(text, _SMALL) + 0.3


def draw_sharing() -> Figure:
    """Fig. 2: (a) soft parameter sharing, (b) hard parameter sharing, (c) DMTNN.

    Schematic, input at the bottom and the three tasks (porosity, shear and
    bulk modulus) at the top, as :class:`dmtnn.models.SoftSharing`,
    :class:`dmtnn.models.HardSharing` and :class:`dmtnn.models.DMTNN` are
    built: (a) one column per task with cross-stitch units after every
    stage, (b) a shared trunk and one head per task, (c) frozen segmenter
    (black), parameter-sharing network (red), subnets (blue) with the
    porosity features concatenated into the moduli subnets. Red marks shared
    parameters and blue task-specific ones in all three panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    order = ("mu", "phi", "K")  # porosity in the middle: its links in (c) need not cross
    pw, bh, gap = WIDTH_IN / 3, 0.26, 0.2
    cw = pw * 0.21  # width of a task column's box
    y_task = -0.52
    top = [-0.95 - (4 - i) * (bh + gap) for i in range(5)]  # top edge of level i (0 = input)
    y_leg = top[0] - bh - 0.3
    height = -y_leg + 0.3 + 0.2
    with mpl.rc_context(_SVG_RC):
        fig, ax = _canvas(height)
        for p, title in enumerate(("(a) soft sharing", "(b) hard sharing", "(c) DMTNN")):
            x0 = p * pw
            ax.text(x0 + pw / 2, -0.17, title, ha="center", va="center", fontsize=_TITLE,
                    fontweight="bold")
            cx = [x0 + pw * f for f in (0.2, 0.5, 0.8)]
            wide = (x0 + pw * 0.1, pw * 0.8)
            for t, x in zip(order, cx, strict=True):
                ax.text(x, y_task, _TASK_SYMBOLS[t], ha="center", va="center", fontsize=12)
            inp = _box(ax, wide[0], top[0], wide[1], ["input"], bold_first=False, h=bh)

            def column(x, levels, kind):
                bs = [_box(ax, x - cw / 2, top[i], cw, [], kind=kind, h=bh) for i in levels]
                for a, b in zip(bs[:-1], bs[1:], strict=True):
                    _arrow(ax, _top(a), _bottom(b))
                _arrow(ax, _top(bs[-1]), (x, y_task - 0.14))
                return bs

            if p == 0:  # one column per task, cross-stitch units after every stage
                for x in cx:
                    column(x, range(1, 5), "extract")
                    _arrow(ax, (x, inp[1]), (x, top[1] - bh))
                for i in (1, 2, 3):
                    ym = top[i] + gap / 2
                    ax.plot([cx[0], cx[2]], [ym, ym], color=COLORS["share"], lw=1.2)
                    for x in cx:
                        ax.add_patch(Circle((x, ym), 0.05, fc=COLORS["share"], ec="none",
                                            zorder=3))
            elif p == 1:  # a shared trunk, one head per task
                trunk = [_box(ax, wide[0], top[i], wide[1], ["shared layers"] if i == 2 else [],
                              kind="share", h=bh, bold_first=False) for i in (1, 2, 3)]
                for a, b in zip([inp, *trunk[:-1]], trunk, strict=True):
                    _arrow(ax, _top(a), _bottom(b))
                for x in cx:
                    head = column(x, [4], "extract")[0]
                    _arrow(ax, (x, trunk[-1][1]), _bottom(head))
            else:  # DMTNN
                seg = _box(ax, wide[0], top[1], wide[1], ["segmenter (frozen)"], kind="seg",
                           h=bh, bold_first=False)
                share = _box(ax, wide[0], top[2], wide[1], ["sharing network"], kind="share",
                             h=bh, bold_first=False)
                _arrow(ax, _top(inp), _bottom(seg))
                _arrow(ax, _top(seg), _bottom(share))
                subs = {t: column(x, [3, 4], "extract") for t, x in zip(order, cx, strict=True)}
                for x in cx:
                    _arrow(ax, (x, share[1]), (x, top[3] - bh))
                for k in (0, 1):
                    b = subs["phi"][k]
                    _arrow(ax, _left(b), _right(subs["mu"][k]), color=COLORS["extract"])
                    _arrow(ax, _right(b), _left(subs["K"][k]), color=COLORS["extract"])
        _legend(ax, 0.15, y_leg, [("box", "seg", "segmentation network (frozen)"),
                                  ("box", "share", "shared parameters"),
                                  ("box", "extract", "task-specific layers")])
        _legend(ax, 0.15, y_leg - 0.3, [("dot", "share", "cross-stitch unit"),
                                        ("arrow", "extract",
                                         "porosity features, concatenated")])
    return fig


# --------------------------------------------------------------------------------------
# Figs. 3 and 8: from the layer tables
# --------------------------------------------------------------------------------------

def _group(table: pd.DataFrame, prefixes: str | Sequence[str]) -> pd.DataFrame:
    """Rows whose block is one of ``prefixes`` or below one of them."""
    prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
    mask = table["block"].map(lambda b: any(b == p or b.startswith(p + ".") for p in prefixes))
    return table[mask]


def _summary(rows: pd.DataFrame) -> tuple[int, str]:
    """(parameters, output shape of the last row) of a group of rows."""
    if rows.empty:
        raise ValueError("the layer table has no rows for this block; is it the right model?")
    return int(rows["parameters"].sum()), _fmt_shape(rows.iloc[-1]["output shape"])


def _layer_lines(rows: pd.DataFrame) -> list[str]:
    """Run-length compressed layer descriptions, without input channels and BN / ReLU.

    The input channels go so that "conv 3×3, 64 → 32" and "conv 3×3, 32 → 32"
    read "2 × conv 3×3, 32"; the drawings show concatenations themselves.
    """
    descs = [re.sub(r" \+ BN \+ ReLU$", "", d) for d in rows["layer"]]
    descs = [re.sub(r"(conv [^,]+, )\d+ → ", r"\1", d) for d in descs]
    fc = [re.fullmatch(r"linear (\d+) → (\d+)", d) for d in descs]
    if descs and all(fc):  # a chain of fully connected layers: "131,072 → 240 → 64 → 1"
        sizes = [int(fc[0].group(1))] + [int(m.group(2)) for m in fc]
        return [" → ".join(f"{s:,}" for s in sizes)]
    out: list[list] = []
    for d in descs:
        if out and out[-1][0] == d:
            out[-1][1] += 1
        else:
            out.append([d, 1])
    return [d if n == 1 else f"{n} × {d}" for d, n in out]


def _params(n: int) -> str:
    return f"{n:,} parameters"


def _check_table(table: pd.DataFrame, model: str, prefixes: Sequence[str]) -> None:
    if table.attrs.get("model") not in (None, model) or not all(
            table["block"].str.startswith(p).any() for p in prefixes):
        raise ValueError(f"table is not a layer_table of {model}")


def _block_order(table: pd.DataFrame, prefix: str, level: int) -> list[str]:
    """The distinct ``level``-part names under ``prefix``, in table order."""
    names: list[str] = []
    for b in _group(table, prefix)["block"]:
        name = ".".join(b.split(".")[:level])
        if name not in names:
            names.append(name)
    return names


def draw_dmtnn(table: pd.DataFrame | None = None) -> Figure:
    """Fig. 3: the DMTNN architecture, drawn from its layer table.

    Parameters
    ----------
    table : pandas.DataFrame, optional
        :func:`layer_table` of a :class:`dmtnn.models.DMTNN` with a LinkNet
        segmenter and all three tasks (default: the paper's network,
        ``paper_tables()["dmtnn"]``). With the segmenter as stage rows (the
        default of :func:`layer_table`) its encoder and decoder are drawn; if
        collapsed into one row, as one box.

    Returns
    -------
    matplotlib.figure.Figure
        Black frame: the segmentation network; red: the parameter-sharing
        network; blue: the three subnets, with the porosity subnet's features
        concatenated (c) into the shear and bulk subnets after each module.
        Every shape and parameter count comes from ``table``.
    """
    if table is None:
        table = paper_tables()["dmtnn"]
    _check_table(table, "DMTNN", ("segmenter", "sharing", "extraction.phi", "extraction.mu",
                                  "extraction.K"))
    in_shape = table.attrs.get("input_shape", (1, 1, 256, 256))
    lh, m = _line_h(), 0.1
    staged = table["block"].str.startswith("segmenter.encoder").any()
    depth = len(_block_order(table, "extraction.phi.modules_", 4))
    box_h = 3 * lh + 0.12
    title_h, gap_v = 0.42, 0.36
    seg_h = title_h + (2 * box_h + 0.55 if staged else box_h) + 0.15
    share_h = title_h + 4 * lh + 0.12 + 0.15
    row_h, row_gap = 5 * lh + 0.12, 0.3
    ext_h = title_h + 3 * row_h + 2 * row_gap + 0.12
    height = 0.1 + seg_h + gap_v + share_h + gap_v + ext_h + 2 * lh + 0.2
    inner_x, inner_w = m + 0.12, WIDTH_IN - 2 * m - 0.24
    with mpl.rc_context(_SVG_RC):
        fig, ax = _canvas(height)
        # --- segmentation network (black)
        y0 = -0.1
        n_seg, _ = _summary(_group(table, "segmenter"))
        _frame(ax, m, y0, WIDTH_IN - 2 * m, seg_h, "seg", "Segmentation network (frozen)",
               f"LinkNet-ResNet18 · {_params(n_seg)}")
        ye = y0 - title_h
        if staged:
            cols, gap = 6, 0.16
            bw = (inner_w - (cols - 1) * gap) / cols
            xs = [inner_x + i * (bw + gap) for i in range(cols)]
            yd = ye - box_h - 0.55

            def stage(col, y, label, prefixes):
                n, shape = _summary(_group(table, [f"segmenter.{p}" for p in prefixes]))
                return _box(ax, xs[col], y, bw, [label, shape, f"{n:,}"], kind="seg",
                            h=box_h)

            inp = _box(ax, xs[0], ye, bw, ["input", _fmt_shape(in_shape[1:]), "grayscale"],
                       h=box_h)
            enc = [stage(1, ye, "stem", ["encoder.conv1", "encoder.bn1", "encoder.maxpool"])]
            enc += [stage(1 + k, ye, f"enc{k}", [f"encoder.enc{k}"]) for k in range(1, 5)]
            dec = {k: stage(k, yd, f"dec{k}", [f"dec{k}"]) for k in range(1, 5)}
            head = stage(0, yd, "head", ["head", "head_seg"])
            for a, b in zip([inp, *enc[:-1]], enc, strict=True):
                _arrow(ax, _right(a), _left(b))
            x4, xd = _bottom(enc[4])[0], _top(dec[4])[0] + 0.25
            _arrow(ax, _bottom(enc[4]), (x4, yd + 0.22), (xd, yd + 0.22), (xd, yd))
            for k in (4, 3, 2):  # dec_k + enc_{k-1}: LinkNet's additive skips
                xa = _top(dec[k])[0]
                _arrow(ax, _bottom(enc[k - 1]), (xa, yd))
                _node(ax, xa, (ye - box_h + yd) / 2, "+")
                _arrow(ax, _left(dec[k]), _right(dec[k - 1]))
            _arrow(ax, _left(dec[1]), _right(head))
            seg_out = _bottom(head)
        else:
            n, shape = _summary(_group(table, "segmenter"))
            b = _box(ax, inner_x, ye, inner_w, ["LinkNet", shape, f"{n:,}"], kind="seg",
                     h=box_h)
            seg_out = (inner_x + 0.6, b[1] - b[3])

        # --- parameter-sharing network (red)
        y1 = y0 - seg_h - gap_v
        n_share, _ = _summary(_group(table, "sharing"))
        _frame(ax, m, y1, WIDTH_IN - 2 * m, share_h, "share", "Parameter-sharing network",
               _params(n_share))
        names = _block_order(table, "sharing", 2)
        gap = 0.3
        bw = (inner_w - (len(names) - 1) * gap) / len(names)
        share_boxes = []
        for i, name in enumerate(names):
            rows = _group(table, name)
            n, shape = _summary(rows)
            label = f"module {i + 1}" if i < len(names) - 1 else "shared features"
            share_boxes.append(_box(ax, inner_x + i * (bw + gap), y1 - title_h, bw,
                                    [label, *_layer_lines(rows), shape, f"{n:,}"],
                                    kind="share", h=4 * lh + 0.12))
        for a, b in zip(share_boxes[:-1], share_boxes[1:], strict=True):
            _arrow(ax, _right(a), _left(b))
        _arrow(ax, seg_out, (seg_out[0], share_boxes[0][1]))
        ax.text(seg_out[0] + 0.1, y1 + gap_v / 2, "sigmoid: grain probability",
                fontsize=_SMALL, ha="left", va="center")

        # --- information-extraction subnets (blue)
        y2 = y1 - share_h - gap_v
        n_ext, _ = _summary(_group(table, "extraction"))
        _frame(ax, m, y2, WIDTH_IN - 2 * m, ext_h, "extract", "Information-extraction subnets",
               _params(n_ext))
        order = ("mu", "phi", "K")
        bus_x, out_w, gap = inner_x + 0.05, 0.45, 0.32
        x_first = bus_x + 0.22
        n_boxes = depth + 1
        bw = (inner_x + inner_w - out_w - x_first - n_boxes * gap) / n_boxes
        boxes: dict[str, list] = {}
        for j, t in enumerate(order):
            y = y2 - title_h - j * (row_h + row_gap)
            bs = []
            for k in range(depth):
                rows = _group(table, f"extraction.{t}.modules_.{k}")
                n, shape = _summary(rows)
                bs.append(_box(ax, x_first + k * (bw + gap), y, bw,
                               [f"{_TASK_SYMBOLS[t]} module {k + 1}", *_layer_lines(rows),
                                shape, f"{n:,}"], kind="extract", h=row_h))
            rows = _group(table, f"extraction.{t}.fc")
            n, _ = _summary(rows)
            bs.append(_box(ax, x_first + depth * (bw + gap), y, bw,
                           ["fully connected", *_layer_lines(rows), f"{n:,}"],
                           kind="extract", h=row_h))
            out = _box(ax, x_first + n_boxes * (bw + gap), y, out_w, [_TASK_SYMBOLS[t]],
                       kind="extract", h=row_h, size=12)
            _arrow(ax, (bus_x, _left(bs[0])[1]), _left(bs[0]))
            for a, b in zip(bs[:-1], bs[1:], strict=True):
                _arrow(ax, _right(a), _left(b))
            _arrow(ax, _right(bs[-1]), _left(out))
            boxes[t] = bs
        # shared features: down from the last sharing box, left along the gap, down the bus
        xl, yj = _bottom(share_boxes[-1])[0], y2 + gap_v / 2
        ax.plot([xl, xl, bus_x, bus_x], [_bottom(share_boxes[-1])[1], yj, yj,
                                         _left(boxes[order[-1]][0])[1]], color="0.15", lw=1.2)
        # the porosity features, concatenated after each module of the moduli subnets
        for k in range(depth):
            xa = _right(boxes["phi"][k])[0] + gap / 2
            yp = _right(boxes["phi"][k])[1]
            for t, sign in (("mu", 1), ("K", -1)):
                yn = _right(boxes[t][k])[1]
                _node(ax, xa, yn, "c", COLORS["extract"])
                _arrow(ax, (xa, yp), (xa, yn - sign * 0.085), color=COLORS["extract"])
        yf = y2 - ext_h - 0.1 - lh / 2
        ax.text(m + 0.05, yf, "conv: convolution + BN + ReLU;  +: add;  "
                "c: concatenate the porosity features", fontsize=_SMALL, ha="left",
                va="center", color="0.25")
        ax.text(m + 0.05, yf - lh, "each box: layers, output shape (channels×height×width), "
                "parameters", fontsize=_SMALL, ha="left", va="center", color="0.25")
    return fig


def draw_cnn(table: pd.DataFrame | None = None) -> Figure:
    """Fig. 8: the baseline CNN, drawn from its layer table.

    Parameters
    ----------
    table : pandas.DataFrame, optional
        :func:`layer_table` of a :class:`dmtnn.models.CNN` (default: the
        paper's size, ``paper_tables()["cnn"]``).

    Returns
    -------
    matplotlib.figure.Figure
        Upper row: the input and the convolutional stages (conv + BN + ReLU,
        max-pool); lower row: the fully connected layers and the three
        outputs. Shapes and parameter counts come from ``table``.
    """
    if table is None:
        table = paper_tables()["cnn"]
    _check_table(table, "CNN", ("features", "head"))
    in_shape = table.attrs.get("input_shape", (1, 1, 256, 256))
    stages = _block_order(table, "features", 2)
    fcs = list(_group(table, "head")["block"])
    lh, m = _line_h(), 0.1
    box_h = 5 * lh + 0.12
    height = 0.1 + 0.45 + box_h + 0.5 + box_h + 0.2 + 2 * lh + 0.1
    with mpl.rc_context(_SVG_RC):
        fig, ax = _canvas(height)
        ty = -0.1 - _line_h(_TITLE) / 2
        ax.text(m, ty, "Baseline CNN", fontsize=_TITLE, fontweight="bold", va="center")
        ax.text(WIDTH_IN - m, ty, _params(int(table["parameters"].sum())), fontsize=_SIZE,
                ha="right", va="center")
        y = -0.55
        cols, gap = len(stages) + 1, 0.22
        bw = (WIDTH_IN - 2 * m - (cols - 1) * gap) / cols
        prev = _box(ax, m, y, bw, ["input", "grayscale", _fmt_shape(in_shape[1:])], h=box_h)
        for i, s in enumerate(stages):
            rows = _group(table, s)
            n, shape = _summary(rows)
            b = _box(ax, m + (i + 1) * (bw + gap), y, bw,
                     [f"stage {i + 1}", *_layer_lines(rows), shape, f"{n:,}"],
                     h=box_h, fill="#eef3e6")
            _arrow(ax, _right(prev), _left(b))
            prev = b
        y2 = y - box_h - 0.5
        n_flat = re.match(r"linear (\d+)", table.loc[table["block"] == fcs[0], "layer"].iloc[0])
        flat = _box(ax, m, y2, bw, ["flatten", f"{int(n_flat.group(1)):,}"], h=box_h)
        yj = y - box_h - 0.25
        _arrow(ax, _bottom(prev), (_bottom(prev)[0], yj), (_top(flat)[0], yj), _top(flat))
        prev = flat
        for i, name in enumerate(fcs):
            n, _ = _summary(table[table["block"] == name])
            b = _box(ax, m + (i + 1) * (bw + gap), y2, bw,
                     ["fully connected", *_layer_lines(table[table["block"] == name]),
                      f"{n:,}"], h=box_h, fill="#f5ecdc")
            _arrow(ax, _right(prev), _left(b))
            prev = b
        out = _box(ax, m + (len(fcs) + 1) * (bw + gap), y2, bw,
                   [", ".join(_TASK_SYMBOLS[t] for t in TASKS)], h=box_h, size=12,
                   bold_first=False)
        _arrow(ax, _right(prev), _left(out))
        yf = y2 - box_h - 0.2 - lh / 2
        ax.text(m, yf, "conv: convolution + BN + ReLU;  ReLU between the fully connected "
                "layers", fontsize=_SMALL, ha="left", va="center", color="0.25")
        ax.text(m, yf - lh, "each box: layers, output shape (channels×height×width), "
                "parameters", fontsize=_SMALL, ha="left", va="center", color="0.25")
    return fig


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def write_all(folder: str | os.PathLike, *, image_size: int = 256,
              width: float = 1.0) -> list[Path]:
    """Write Figs. 1, 2, 3 and 8 (SVG) and the two layer tables (Markdown) into ``folder``.

    Parameters
    ----------
    folder : path
        Created if missing. Every file is written atomically.
    image_size, width : int, float
        The networks of Figs. 3 and 8 (default: the paper's, 256 px, width 1).

    Returns
    -------
    list of Path
        The files of :data:`FILES`, in that order. Two runs write the same bytes.
    """
    folder = Path(folder)
    tables = paper_tables(image_size, width)
    figures = {"fig01_workflow.svg": draw_workflow(), "fig02_sharing.svg": draw_sharing(),
               "fig03_dmtnn.svg": draw_dmtnn(tables["dmtnn"]),
               "fig08_cnn.svg": draw_cnn(tables["cnn"])}
    paths = [save_svg(fig, folder / name) for name, fig in figures.items()]
    for name, key in (("fig03_dmtnn_layers.md", "dmtnn"), ("fig08_cnn_layers.md", "cnn")):
        text = table_markdown(tables[key])
        paths.append(atomic_write(folder / name,
                                  lambda tmp, text=text: tmp.write_text(text, encoding="utf-8")))
    for p in paths:
        log.info("wrote %s", p)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dmtnn.diagrams FOLDER``: :func:`write_all` into ``FOLDER``."""
    parser = argparse.ArgumentParser(prog="python -m dmtnn.diagrams",
                                     description="Draw the paper's Figs. 1, 2, 3 and 8 and "
                                                 "write the layer tables of Figs. 3 and 8.")
    parser.add_argument("folder", type=Path, help="output folder (created if missing)")
    parser.add_argument("--image-size", type=int, default=256, help="input side in px")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_all(args.folder, image_size=args.image_size, width=args.width)


if __name__ == "__main__":
    main()
