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
    code**: :func:`dmtnn.models.layer_table` (:mod:`dmtnn.models.summary`)
    runs one forward pass through the network built by :mod:`dmtnn.models`
    and lists every layer with its output shape and parameter count; the
    drawings take their boxes, shapes and counts from that table, so they
    cannot drift from the code. Colour code
    of the paper: black = segmentation network, red = parameter-sharing
    network, blue = information-extraction subnets.

:func:`write_all` writes the four SVGs and the two layer tables (Markdown)
into a folder; ``python -m dmtnn.diagrams FOLDER`` does the same.

The figures are :class:`matplotlib.figure.Figure` objects made without
pyplot (nothing is shown, nothing is left open), 700 px wide at 96 px per
inch, with no text below 9 pt at that width. Coordinates inside them are
inches from the top-left corner (y negative downwards); the boxes, frames and
arrows they are made of are in the private :mod:`dmtnn._drawing`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from dmtnn._drawing import (
    COLORS,
    SIZE,
    SMALL,
    SVG_RC,
    TITLE,
    WIDTH_IN,
    arrow,
    bottom_of,
    box,
    canvas,
    frame,
    left_of,
    legend,
    line_h,
    node,
    right_of,
    save_svg,
    top_of,
)
from dmtnn.artifacts import atomic_write
from dmtnn.models import TASKS, format_shape, paper_tables, table_markdown

__all__ = [
    "COLORS",
    "FILES",
    "WIDTH_IN",
    "draw_cnn",
    "draw_dmtnn",
    "draw_sharing",
    "draw_workflow",
    "main",
    "save_svg",
    "write_all",
]

log = logging.getLogger(__name__)


#: The files :func:`write_all` writes.
FILES = ("fig01_workflow.svg", "fig02_sharing.svg", "fig03_dmtnn.svg", "fig08_cnn.svg",
         "fig03_dmtnn_layers.md", "fig08_cnn_layers.md")


# --------------------------------------------------------------------------------------
# Fig. 1: the workflow
# --------------------------------------------------------------------------------------

def draw_workflow() -> Figure:
    """Fig. 1: the digital-rock workflow and DMTNN's shortcut through it.

    Upper lane: the conventional workflow that makes the labels (threshold
    segmentation, or the trained LinkNet, gives the binary image; its pore
    fraction is the porosity; the FEM on it gives mu and kappa). Lower lane:
    DMTNN predicts the binary image, porosity, mu and kappa from the grayscale
    slice alone.

    Returns
    -------
    matplotlib.figure.Figure
    """
    lh = line_h()
    h3 = 3 * lh + 0.12
    y1 = -0.45
    y_phi = y1 - h3 - 0.2
    y2 = y_phi - (lh + 0.12) - 0.55
    height = -y2 + h3 + 0.12
    with mpl.rc_context(SVG_RC):
        fig, ax = canvas(height)
        ax.text(1.6, y1 + 0.22, "conventional workflow: makes the labels", fontsize=TITLE,
                fontweight="bold", va="center", color=COLORS["other"])
        seg = box(ax, 1.6, y1, 1.3, ["segmentation", "threshold labels", "or LinkNet"],
                   kind="seg", h=h3)
        binary = box(ax, 3.2, y1, 1.2, ["binary image", "pore / grain", "1 = grain"], h=h3)
        fem = box(ax, 4.7, y1, 1.0, ["FEM", "2D, periodic,", "quartz grains"], h=h3)
        moduli = box(ax, 6.0, y1, 1.17, ["shear modulus μ", "bulk modulus κ"],
                      bold_first=False, h=h3)
        phi = box(ax, 6.0, y_phi, 1.17, ["porosity φ"], bold_first=False)
        arrow(ax, right_of(seg), left_of(binary))
        arrow(ax, right_of(binary), left_of(fem))
        arrow(ax, right_of(fem), left_of(moduli))
        arrow(ax, bottom_of(binary), (bottom_of(binary)[0], left_of(phi)[1]), left_of(phi))
        ax.text(bottom_of(binary)[0] + 0.08, left_of(phi)[1] + 0.04, "pore fraction",
                fontsize=SMALL, va="bottom", ha="left", color="0.25")

        ax.text(1.6, y2 + 0.22, "DMTNN: all four from the grayscale alone", fontsize=TITLE,
                fontweight="bold", va="center", color=COLORS["extract"])
        net = box(ax, 1.6, y2, 4.1, ["DMTNN", "frozen LinkNet → parameter-sharing network",
                                      "→ porosity, shear and bulk subnets"],
                   kind="extract", h=h3)
        outs = box(ax, 6.0, y2, 1.17, ["mask, φ, μ, κ"], bold_first=False, h=h3,
                    kind="extract")
        arrow(ax, right_of(net), left_of(outs))
        xs = outs[0] + outs[2] / 2
        arrow(ax, bottom_of(phi), (xs, outs[1]), color=COLORS["other"], dashed=True)
        ax.text(xs + 0.08, (phi[1] - phi[3] + outs[1]) / 2, "labels", fontsize=SMALL,
                va="center", ha="left", color="0.25")

        yg = (left_of(seg)[1] + left_of(net)[1]) / 2
        gray = box(ax, 0.12, yg + h3 / 2, 1.15, ["grayscale", "micro-CT slice", "1×256×256"],
                    h=h3)
        arrow(ax, right_of(gray), (1.45, yg), (1.45, left_of(seg)[1]), left_of(seg))
        arrow(ax, right_of(gray), (1.45, yg), (1.45, left_of(net)[1]), left_of(net))
    return fig


# --------------------------------------------------------------------------------------
# Fig. 2: soft sharing, hard sharing, DMTNN
# --------------------------------------------------------------------------------------

_TASK_SYMBOLS = {"phi": "φ", "mu": "μ", "kappa": "κ"}


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
    order = ("mu", "phi", "kappa")  # porosity in the middle: its links in (c) need not cross
    pw, bh, gap = WIDTH_IN / 3, 0.26, 0.2
    cw = pw * 0.21  # width of a task column's box
    y_task = -0.52
    top = [-0.95 - (4 - i) * (bh + gap) for i in range(5)]  # top edge of level i (0 = input)
    y_leg = top[0] - bh - 0.3
    height = -y_leg + 0.3 + 0.2
    with mpl.rc_context(SVG_RC):
        fig, ax = canvas(height)
        for p, title in enumerate(("(a) soft sharing", "(b) hard sharing", "(c) DMTNN")):
            x0 = p * pw
            ax.text(x0 + pw / 2, -0.17, title, ha="center", va="center", fontsize=TITLE,
                    fontweight="bold")
            cx = [x0 + pw * f for f in (0.2, 0.5, 0.8)]
            wide = (x0 + pw * 0.1, pw * 0.8)
            for t, x in zip(order, cx, strict=True):
                ax.text(x, y_task, _TASK_SYMBOLS[t], ha="center", va="center", fontsize=12)
            inp = box(ax, wide[0], top[0], wide[1], ["input"], bold_first=False, h=bh)

            def column(x, levels, kind):
                bs = [box(ax, x - cw / 2, top[i], cw, [], kind=kind, h=bh) for i in levels]
                for a, b in zip(bs[:-1], bs[1:], strict=True):
                    arrow(ax, top_of(a), bottom_of(b))
                arrow(ax, top_of(bs[-1]), (x, y_task - 0.14))
                return bs

            if p == 0:  # one column per task, cross-stitch units after every stage
                for x in cx:
                    column(x, range(1, 5), "extract")
                    arrow(ax, (x, inp[1]), (x, top[1] - bh))
                for i in (1, 2, 3):
                    ym = top[i] + gap / 2
                    ax.plot([cx[0], cx[2]], [ym, ym], color=COLORS["share"], lw=1.2)
                    for x in cx:
                        ax.add_patch(Circle((x, ym), 0.05, fc=COLORS["share"], ec="none",
                                            zorder=3))
            elif p == 1:  # a shared trunk, one head per task
                trunk = [box(ax, wide[0], top[i], wide[1], ["shared layers"] if i == 2 else [],
                              kind="share", h=bh, bold_first=False) for i in (1, 2, 3)]
                for a, b in zip([inp, *trunk[:-1]], trunk, strict=True):
                    arrow(ax, top_of(a), bottom_of(b))
                for x in cx:
                    head = column(x, [4], "extract")[0]
                    arrow(ax, (x, trunk[-1][1]), bottom_of(head))
            else:  # DMTNN
                seg = box(ax, wide[0], top[1], wide[1], ["segmenter (frozen)"], kind="seg",
                           h=bh, bold_first=False)
                share = box(ax, wide[0], top[2], wide[1], ["sharing network"], kind="share",
                             h=bh, bold_first=False)
                arrow(ax, top_of(inp), bottom_of(seg))
                arrow(ax, top_of(seg), bottom_of(share))
                subs = {t: column(x, [3, 4], "extract") for t, x in zip(order, cx, strict=True)}
                for x in cx:
                    arrow(ax, (x, share[1]), (x, top[3] - bh))
                for k in (0, 1):
                    b = subs["phi"][k]
                    arrow(ax, left_of(b), right_of(subs["mu"][k]), color=COLORS["extract"])
                    arrow(ax, right_of(b), left_of(subs["kappa"][k]), color=COLORS["extract"])
        legend(ax, 0.15, y_leg, [("box", "seg", "segmentation network (frozen)"),
                                  ("box", "share", "shared parameters"),
                                  ("box", "extract", "task-specific layers")])
        legend(ax, 0.15, y_leg - 0.3, [("dot", "share", "cross-stitch unit"),
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
    return int(rows["parameters"].sum()), format_shape(rows.iloc[-1]["output shape"])


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
        :func:`~dmtnn.models.layer_table` of a :class:`dmtnn.models.DMTNN` with a LinkNet
        segmenter and all three tasks (default: the paper's network,
        ``dmtnn.models.paper_tables()["dmtnn"]``). With the segmenter as stage rows (the
        default of :func:`~dmtnn.models.layer_table`) its encoder and decoder are drawn; if
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
                                  "extraction.kappa"))
    in_shape = table.attrs.get("input_shape", (1, 1, 256, 256))
    lh, m = line_h(), 0.1
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
    with mpl.rc_context(SVG_RC):
        fig, ax = canvas(height)
        # --- segmentation network (black)
        y0 = -0.1
        n_seg, _ = _summary(_group(table, "segmenter"))
        frame(ax, m, y0, WIDTH_IN - 2 * m, seg_h, "seg", "Segmentation network (frozen)",
               f"LinkNet-ResNet18 · {_params(n_seg)}")
        ye = y0 - title_h
        if staged:
            cols, gap = 6, 0.16
            bw = (inner_w - (cols - 1) * gap) / cols
            xs = [inner_x + i * (bw + gap) for i in range(cols)]
            yd = ye - box_h - 0.55

            def stage(col, y, label, prefixes):
                n, shape = _summary(_group(table, [f"segmenter.{p}" for p in prefixes]))
                return box(ax, xs[col], y, bw, [label, shape, f"{n:,}"], kind="seg",
                            h=box_h)

            inp = box(ax, xs[0], ye, bw, ["input", format_shape(in_shape[1:]), "grayscale"],
                       h=box_h)
            enc = [stage(1, ye, "stem", ["encoder.conv1", "encoder.bn1", "encoder.maxpool"])]
            enc += [stage(1 + k, ye, f"enc{k}", [f"encoder.enc{k}"]) for k in range(1, 5)]
            dec = {k: stage(k, yd, f"dec{k}", [f"dec{k}"]) for k in range(1, 5)}
            head = stage(0, yd, "head", ["head", "head_seg"])
            for a, b in zip([inp, *enc[:-1]], enc, strict=True):
                arrow(ax, right_of(a), left_of(b))
            x4, xd = bottom_of(enc[4])[0], top_of(dec[4])[0] + 0.25
            arrow(ax, bottom_of(enc[4]), (x4, yd + 0.22), (xd, yd + 0.22), (xd, yd))
            for k in (4, 3, 2):  # dec_k + enc_{k-1}: LinkNet's additive skips
                xa = top_of(dec[k])[0]
                arrow(ax, bottom_of(enc[k - 1]), (xa, yd))
                node(ax, xa, (ye - box_h + yd) / 2, "+")
                arrow(ax, left_of(dec[k]), right_of(dec[k - 1]))
            arrow(ax, left_of(dec[1]), right_of(head))
            seg_out = bottom_of(head)
        else:
            n, shape = _summary(_group(table, "segmenter"))
            b = box(ax, inner_x, ye, inner_w, ["LinkNet", shape, f"{n:,}"], kind="seg",
                     h=box_h)
            seg_out = (inner_x + 0.6, b[1] - b[3])

        # --- parameter-sharing network (red)
        y1 = y0 - seg_h - gap_v
        n_share, _ = _summary(_group(table, "sharing"))
        frame(ax, m, y1, WIDTH_IN - 2 * m, share_h, "share", "Parameter-sharing network",
               _params(n_share))
        names = _block_order(table, "sharing", 2)
        gap = 0.3
        bw = (inner_w - (len(names) - 1) * gap) / len(names)
        share_boxes = []
        for i, name in enumerate(names):
            rows = _group(table, name)
            n, shape = _summary(rows)
            label = f"module {i + 1}" if i < len(names) - 1 else "shared features"
            share_boxes.append(box(ax, inner_x + i * (bw + gap), y1 - title_h, bw,
                                    [label, *_layer_lines(rows), shape, f"{n:,}"],
                                    kind="share", h=4 * lh + 0.12))
        for a, b in zip(share_boxes[:-1], share_boxes[1:], strict=True):
            arrow(ax, right_of(a), left_of(b))
        arrow(ax, seg_out, (seg_out[0], share_boxes[0][1]))
        ax.text(seg_out[0] + 0.1, y1 + gap_v / 2, "sigmoid: grain probability",
                fontsize=SMALL, ha="left", va="center")

        # --- information-extraction subnets (blue)
        y2 = y1 - share_h - gap_v
        n_ext, _ = _summary(_group(table, "extraction"))
        frame(ax, m, y2, WIDTH_IN - 2 * m, ext_h, "extract", "Information-extraction subnets",
               _params(n_ext))
        order = ("mu", "phi", "kappa")
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
                bs.append(box(ax, x_first + k * (bw + gap), y, bw,
                               [f"{_TASK_SYMBOLS[t]} module {k + 1}", *_layer_lines(rows),
                                shape, f"{n:,}"], kind="extract", h=row_h))
            rows = _group(table, f"extraction.{t}.fc")
            n, _ = _summary(rows)
            bs.append(box(ax, x_first + depth * (bw + gap), y, bw,
                           ["fully connected", *_layer_lines(rows), f"{n:,}"],
                           kind="extract", h=row_h))
            out = box(ax, x_first + n_boxes * (bw + gap), y, out_w, [_TASK_SYMBOLS[t]],
                       kind="extract", h=row_h, size=12)
            arrow(ax, (bus_x, left_of(bs[0])[1]), left_of(bs[0]))
            for a, b in zip(bs[:-1], bs[1:], strict=True):
                arrow(ax, right_of(a), left_of(b))
            arrow(ax, right_of(bs[-1]), left_of(out))
            boxes[t] = bs
        # shared features: down from the last sharing box, left along the gap, down the bus
        xl, yj = bottom_of(share_boxes[-1])[0], y2 + gap_v / 2
        ax.plot([xl, xl, bus_x, bus_x], [bottom_of(share_boxes[-1])[1], yj, yj,
                                         left_of(boxes[order[-1]][0])[1]], color="0.15", lw=1.2)
        # the porosity features, concatenated after each module of the moduli subnets
        for k in range(depth):
            xa = right_of(boxes["phi"][k])[0] + gap / 2
            yp = right_of(boxes["phi"][k])[1]
            for t, sign in (("mu", 1), ("kappa", -1)):
                yn = right_of(boxes[t][k])[1]
                node(ax, xa, yn, "c", COLORS["extract"])
                arrow(ax, (xa, yp), (xa, yn - sign * 0.085), color=COLORS["extract"])
        yf = y2 - ext_h - 0.1 - lh / 2
        ax.text(m + 0.05, yf, "conv: convolution + BN + ReLU;  +: add;  "
                "c: concatenate the porosity features", fontsize=SMALL, ha="left",
                va="center", color="0.25")
        ax.text(m + 0.05, yf - lh, "each box: layers, output shape (channels×height×width), "
                "parameters", fontsize=SMALL, ha="left", va="center", color="0.25")
    return fig


def draw_cnn(table: pd.DataFrame | None = None) -> Figure:
    """Fig. 8: the baseline CNN, drawn from its layer table.

    Parameters
    ----------
    table : pandas.DataFrame, optional
        :func:`~dmtnn.models.layer_table` of a :class:`dmtnn.models.CNN` (default: the
        paper's size, ``dmtnn.models.paper_tables()["cnn"]``).

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
    lh, m = line_h(), 0.1
    box_h = 5 * lh + 0.12
    height = 0.1 + 0.45 + box_h + 0.5 + box_h + 0.2 + 2 * lh + 0.1
    with mpl.rc_context(SVG_RC):
        fig, ax = canvas(height)
        ty = -0.1 - line_h(TITLE) / 2
        ax.text(m, ty, "Baseline CNN", fontsize=TITLE, fontweight="bold", va="center")
        ax.text(WIDTH_IN - m, ty, _params(int(table["parameters"].sum())), fontsize=SIZE,
                ha="right", va="center")
        y = -0.55
        cols, gap = len(stages) + 1, 0.22
        bw = (WIDTH_IN - 2 * m - (cols - 1) * gap) / cols
        prev = box(ax, m, y, bw, ["input", "grayscale", format_shape(in_shape[1:])], h=box_h)
        for i, s in enumerate(stages):
            rows = _group(table, s)
            n, shape = _summary(rows)
            b = box(ax, m + (i + 1) * (bw + gap), y, bw,
                     [f"stage {i + 1}", *_layer_lines(rows), shape, f"{n:,}"],
                     h=box_h, fill="#eef3e6")
            arrow(ax, right_of(prev), left_of(b))
            prev = b
        y2 = y - box_h - 0.5
        n_flat = re.match(r"linear (\d+)", table.loc[table["block"] == fcs[0], "layer"].iloc[0])
        flat = box(ax, m, y2, bw, ["flatten", f"{int(n_flat.group(1)):,}"], h=box_h)
        yj = y - box_h - 0.25
        arrow(ax, bottom_of(prev), (bottom_of(prev)[0], yj), (top_of(flat)[0], yj), top_of(flat))
        prev = flat
        for i, name in enumerate(fcs):
            n, _ = _summary(table[table["block"] == name])
            b = box(ax, m + (i + 1) * (bw + gap), y2, bw,
                     ["fully connected", *_layer_lines(table[table["block"] == name]),
                      f"{n:,}"], h=box_h, fill="#f5ecdc")
            arrow(ax, right_of(prev), left_of(b))
            prev = b
        out = box(ax, m + (len(fcs) + 1) * (bw + gap), y2, bw,
                   [", ".join(_TASK_SYMBOLS[t] for t in TASKS)], h=box_h, size=12,
                   bold_first=False)
        arrow(ax, right_of(prev), left_of(out))
        yf = y2 - box_h - 0.2 - lh / 2
        ax.text(m, yf, "conv: convolution + BN + ReLU;  ReLU between the fully connected "
                "layers", fontsize=SMALL, ha="left", va="center", color="0.25")
        ax.text(m, yf - lh, "each box: layers, output shape (channels×height×width), "
                "parameters", fontsize=SMALL, ha="left", va="center", color="0.25")
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
