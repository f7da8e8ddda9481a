"""Drawing primitives of :mod:`dmtnn.diagrams`: boxes, frames, arrows, nodes, SVG output.

Coordinates are inches from the top-left corner of a figure :data:`WIDTH_IN`
wide (y negative downwards); font sizes are points at that width. Private to
the package: the figures are in :mod:`dmtnn.diagrams`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from matplotlib.textpath import TextToPath

from dmtnn.artifacts import atomic_write

__all__ = ["COLORS", "SIZE", "SMALL", "SVG_RC", "TITLE", "WIDTH_IN", "arrow", "bottom_of", "box",
           "canvas", "frame", "left_of", "legend", "line_h", "node", "right_of", "save_svg",
           "text_width", "top_of"]

#: Figure width in inches: a 700 px page column at 96 px per inch.
WIDTH_IN = 700 / 96

#: Edge colours of the paper's code (Fig. 3): segmentation, sharing, extraction, other.
COLORS = {"seg": "black", "share": "#c0392b", "extract": "#1f5fa8", "other": "0.35"}
_FILL = {"seg": "0.90", "share": "#fbe3e0", "extract": "#e1ecf8", "other": "0.96"}

SIZE, SMALL, TITLE = 9.5, 9.0, 10.5  # font sizes (pt) at WIDTH_IN
_LINE = 1.3  # line height, in font sizes
SVG_RC = {"svg.hashsalt": "dmtnn", "svg.fonttype": "path", "font.family": "DejaVu Sans"}

_T2P = TextToPath()


def text_width(s: str, size: float = SIZE, bold: bool = False) -> float:
    """Width of ``s`` in inches at ``size`` points."""
    prop = FontProperties(family=SVG_RC["font.family"], size=size,
                          weight="bold" if bold else "normal")
    return _T2P.get_text_width_height_descent(s, prop, ismath=False)[0] / 72


def line_h(size: float = SIZE) -> float:
    return size * _LINE / 72


def canvas(height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH_IN, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH_IN)
    ax.set_ylim(-height, 0)
    ax.set_axis_off()
    return fig, ax


def box(ax, x: float, y: float, w: float, lines: Sequence[str], *, kind: str = "other",
        h: float | None = None, size: float = SIZE, bold_first: bool = True,
        fill: str | None = None, lw: float = 1.2, dashed: bool = False) -> tuple:
    """A rounded box with top-left corner (x, y) and centred lines; returns (x, y, w, h)."""
    pad = 0.06
    h = h if h is not None else len(lines) * line_h(size) + 2 * pad
    ax.add_patch(FancyBboxPatch((x, y - h), w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                ec=COLORS[kind], fc=fill or _FILL[kind], lw=lw,
                                ls="--" if dashed else "-"))
    top = y - (h - len(lines) * line_h(size)) / 2
    for i, line in enumerate(lines):
        ax.text(x + w / 2, top - (i + 0.5) * line_h(size), line, ha="center", va="center",
                fontsize=size, fontweight="bold" if bold_first and i == 0 else "normal")
    return x, y, w, h


def frame(ax, x: float, y: float, w: float, h: float, kind: str, title: str,
          note: str = "") -> None:
    """A group frame in the colour of ``kind``, its title and ``note`` at its top right.

    The title sits at the right so that arrows may enter the frame at its left.
    """
    ax.add_patch(FancyBboxPatch((x, y - h), w, h, boxstyle="round,pad=0,rounding_size=0.08",
                                ec=COLORS[kind], fc="none", lw=2.0))
    ty = y - 0.07 - line_h(TITLE) / 2
    right = x + w - 0.12
    if note:
        ax.text(right, ty, note, ha="right", va="center", fontsize=SIZE, color=COLORS[kind])
        right -= text_width(note) + 0.15
    ax.text(right, ty, title, ha="right", va="center", fontsize=TITLE, fontweight="bold",
            color=COLORS[kind])


def arrow(ax, *points, color: str = "0.15", dashed: bool = False, head: bool = True) -> None:
    """A polyline through ``points`` with an arrow head at the last one."""
    for a, b in zip(points[:-2], points[1:-1], strict=True):
        ax.plot([a[0], b[0]], [a[1], b[1]], color=color, lw=1.2, ls="--" if dashed else "-",
                solid_capstyle="butt")
    ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>" if head else "-",
                                 mutation_scale=11, lw=1.2, color=color, shrinkA=0,
                                 shrinkB=0, ls="--" if dashed else "-"))


def node(ax, x: float, y: float, symbol: str, color: str = "0.15") -> None:
    """A small circle with a symbol: ``+`` (addition), ``c`` (concatenation)."""
    ax.add_patch(Circle((x, y), 0.085, ec=color, fc="white", lw=1.2, zorder=3))
    ax.text(x, y, symbol, ha="center", va="center_baseline", fontsize=SMALL, zorder=4,
            color=color)


# Anchors of a box (x, y, w, h) as box() returns it: the middle of one of its sides.

def left_of(b) -> tuple[float, float]:
    return b[0], b[1] - b[3] / 2


def right_of(b) -> tuple[float, float]:
    return b[0] + b[2], b[1] - b[3] / 2


def top_of(b) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1]


def bottom_of(b) -> tuple[float, float]:
    return b[0] + b[2] / 2, b[1] - b[3]


def save_svg(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as SVG atomically, byte-for-byte the same on every run.

    The SVG ids are salted with a fixed string (``svg.hashsalt``) and the
    date is left out of the metadata.
    """
    def write(tmp: Path) -> None:
        with mpl.rc_context(SVG_RC):
            fig.savefig(tmp, format="svg", metadata={"Date": None})
    return atomic_write(path, write)


def legend(ax, x: float, y: float, items: Sequence[tuple[str, str, str]]) -> None:
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
            arrow(ax, (x, y), (x + 0.22, y), color=COLORS[kind])
        ax.text(x + 0.3, y, text, fontsize=SMALL, va="center", ha="left")
        x += 0.3 + text_width(text, SMALL) + 0.3

