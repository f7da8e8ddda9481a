"""Figures of the book, drawn from library results.

Each figure function takes data and returns the figure; notebooks only call
them. Image figures take ``pixel_um`` for a scale bar (:func:`scale_bar`).
Tables and verdict sentences are in :mod:`dmtnn.tables`.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from dmtnn.metrics import pixel_accuracy, r2_score
from dmtnn.tables import PARAMETER_UNITS
from dmtnn.weighting import dynamic_weight

__all__ = [
    "cube",
    "cubes",
    "slices_grid",
    "rev_curves",
    "morphology_comparison",
    "moduli_vs_porosity",
    "scale_bar",
    "moduli_rev",
    "local_stress",
    "training_curves",
    "segmentation_examples",
    "parameter_predictions",
    "dynamic_weight_curves",
    "kpis_and_weights",
]


def cube(ax, volume: np.ndarray, *, max_px: int = 64, cmap: str = "gray", title: str = ""):
    """Draw the three visible faces of a (D, H, W) volume on a 3D axis (Fig. 5 style)."""
    step = max(1, int(np.ceil(max(volume.shape) / max_px)))
    v = volume[::step, ::step, ::step].astype(float)
    lo, hi = np.percentile(v, [1, 99])
    norm = plt.Normalize(lo, hi)
    colors = plt.get_cmap(cmap)
    d, h, w = v.shape
    # top face (z = d), front face (y = 0), right face (x = w)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ax.plot_surface(xx, yy, np.full_like(xx, d, dtype=float), facecolors=colors(norm(v[0])),
                    rstride=1, cstride=1, shade=False, linewidth=0, antialiased=False)
    zz, xx2 = np.meshgrid(np.arange(d), np.arange(w), indexing="ij")
    ax.plot_surface(xx2, np.zeros_like(xx2), d - zz, facecolors=colors(norm(v[:, 0, :])),
                    rstride=1, cstride=1, shade=False, linewidth=0, antialiased=False)
    zz, yy2 = np.meshgrid(np.arange(d), np.arange(h), indexing="ij")
    ax.plot_surface(np.full_like(yy2, w - 1), yy2, d - zz, facecolors=colors(norm(v[:, :, -1])),
                    rstride=1, cstride=1, shade=False, linewidth=0, antialiased=False)
    ax.set_box_aspect((w, h, d))
    ax.view_init(elev=25, azim=-60)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return ax


def cubes(volumes: dict[str, np.ndarray], *, ncols: int = 4, size: float = 2.6,
          pixel_um: float | None = None):
    """One cube per rock (Fig. 5); with ``pixel_um`` (µm per pixel), each title gives the
    width of the front face in µm, the scale of a 3D view."""
    n = len(volumes)
    nrows = int(np.ceil(n / ncols))
    fig = plt.figure(figsize=(size * ncols, size * nrows))
    for i, (name, vol) in enumerate(volumes.items(), 1):
        title = name if pixel_um is None else f"{name}\n{vol.shape[-1] * pixel_um:.0f} µm wide"
        cube(fig.add_subplot(nrows, ncols, i, projection="3d"), vol, title=title)
    fig.subplots_adjust(wspace=0, hspace=0.05, left=0, right=1, top=0.95, bottom=0)
    return fig


def slices_grid(rows: dict[str, dict[str, np.ndarray]], *, per_row: int = 3, size: float = 2.6,
                pixel_um: float | None = None):
    """Images of several rocks, one column per rock and one row per image kind (Fig. 6).

    More than ``per_row`` rocks are wrapped into further groups of rows. With
    ``pixel_um`` (µm per pixel) the first image of each group gets a scale bar
    (all images share the pixel size).
    """
    names = list(rows)
    kinds = list(rows[names[0]])
    groups = int(np.ceil(len(names) / per_row))
    fig, axes = plt.subplots(groups * len(kinds), per_row, squeeze=False,
                             figsize=(size * per_row, size * groups * len(kinds)))
    for ax in axes.flat:
        ax.set_axis_off()
    for j, name in enumerate(names):
        g, col = divmod(j, per_row)
        for i, kind in enumerate(kinds):
            ax = axes[g * len(kinds) + i, col]
            ax.set_axis_on()
            ax.imshow(rows[name][kind], cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=10)
            if col == 0:
                ax.set_ylabel(kind)
            if col == 0 and i == 0 and pixel_um is not None:
                scale_bar(ax, pixel_um)
    fig.tight_layout()
    return fig


def rev_curves(curves: dict, *, paper_rev_um: float | None = None, ncols: int = 4,
               size: float = 2.8):
    """Window porosity against window side (µm), one panel per sample (Fig. 7).

    ``curves`` maps names to :class:`dmtnn.rev.RevCurves`: random windows (mean
    and 5-95 % band) and one centred growing window per slice (mean, dashed).
    """
    n = len(curves)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 0.85 * nrows),
                             sharex=True, squeeze=False)
    for ax, (name, c) in zip(axes.flat, curves.items(), strict=False):
        x = c.random["size"] * c.voxel_um
        ax.fill_between(x, c.random["p05"], c.random["p95"], alpha=0.3, label="random, 5-95 %")
        ax.plot(x, c.random["mean"], "o-", ms=3, label="random, mean")
        ax.plot(c.growing["size"] * c.voxel_um, c.growing["mean"], "k--", lw=1,
                label="growing window")
        if paper_rev_um:
            ax.axvline(paper_rev_um, color="r", ls=":", lw=1, label="paper REV")
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes.flat[max(0, n - ncols):n]:
        ax.set_xlabel("window side (µm)")
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("2D porosity")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def morphology_comparison(stats: dict[str, dict], *, pixel_um: float):
    """Normalised S2 and pore / grain chord-length distributions of several samples."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    bins = np.arange(1, 80, 2)
    for name, s in stats.items():
        axes[0].plot(s["lags"] * pixel_um, s["s2_norm"], "-o", ms=3, label=name)
        for ax, key in ((axes[1], "pore_chords"), (axes[2], "grain_chords")):
            hist, edges = np.histogram(s[key], bins=bins, density=True)
            ax.step(edges[:-1] * pixel_um, hist, where="post", label=name)
    axes[0].set(xlabel="lag r (µm)", ylabel=r"$(S_2 - \phi^2)/(\phi - \phi^2)$",
                title="two-point correlation")
    axes[1].set(xlabel="chord length (µm)", ylabel="density", title="pore chords", yscale="log")
    axes[2].set(xlabel="chord length (µm)", ylabel="density", title="grain chords", yscale="log")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def moduli_vs_porosity(samples: dict[str, dict], bounds, *, size: float = 4.2):
    """κ and μ against porosity for several samples, with the Hashin-Shtrikman upper bounds.

    Parameters
    ----------
    samples : {name: {"phi", "kappa", "mu", "converged"}}
    bounds : callable
        ``bounds(phi) -> (kappa_hs, mu_hs)`` for an array of porosities.
    """
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1.5, size))
    phis = np.concatenate([s["phi"] for s in samples.values()])
    grid = np.linspace(0, min(1, phis.max() * 1.1), 100)
    hs = bounds(grid)
    for ax, key, bound, label in ((axes[0], "kappa", hs[0], "κ"), (axes[1], "mu", hs[1], "μ")):
        for name, s in samples.items():
            ok = s["converged"]
            ax.scatter(s["phi"][ok], s[key][ok], s=6, alpha=0.5, label=name)
        ax.plot(grid, bound, "k--", lw=1, label="Hashin-Shtrikman upper")
        ax.set(xlabel="porosity", ylabel=f"2D {label} (GPa)", ylim=(0, None))
    axes[1].legend(fontsize=7, markerscale=2, loc="upper right", ncols=2)
    fig.tight_layout()
    return fig


#: Markers that tell lines apart where colours repeat or are hard to see.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*", "p")


def line_styles(n: int) -> list[dict]:
    """``n`` distinct line styles (colour, marker, dash) for ``ax.plot(..., **style)``.

    Colours from the colour-blind-safe tab10 cycle, each line with its own
    marker; past ten lines the colours repeat with dashed lines, so that no two
    lines look alike.
    """
    colors = plt.get_cmap("tab10").colors
    return [{"color": colors[i % 10], "marker": MARKERS[i % len(MARKERS)],
             "ls": "-" if i < 10 else "--"} for i in range(n)]


def _log_ticks(axis, values=None) -> None:
    """Plain-number ticks on a log axis: at ``values``, or at 1, 2 and 5 per decade."""
    if values is not None:
        axis.set_ticks(values, labels=[f"{v:.0f}" for v in values])
    else:
        axis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(mticker.NullFormatter())


def moduli_rev(curves: dict[str, pd.DataFrame], *, cv_tol: float | None = None,
               size: float = 4.0):
    """Spread (std / mean) of window κ, μ and porosity against window side, one line per rock.

    The x ticks are the window sides in µm; each rock has its own colour and
    marker (:func:`line_styles`); the legend sits below the panels.
    """
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 1, size * 0.85 + 0.9), sharey=True)
    styles = line_styles(len(curves))
    sides = sorted({float(v) for df in curves.values() for v in df["size_um"]})
    for ax, q, label in zip(axes, ("kappa", "mu", "phi"), ("κ", "μ", "porosity"),
                            strict=True):
        for style, (name, df) in zip(styles, curves.items(), strict=True):
            ax.plot(df["size_um"], df[f"{q}_cv"], ms=4, lw=1, label=name, **style)
        if cv_tol:
            ax.axhline(cv_tol, color="k", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="window side (µm)", title=label)
        _log_ticks(ax.xaxis, sides if len(sides) <= 8 else None)
        ax.tick_params(axis="x", labelrotation=45 if len(sides) > 5 else 0)
        _log_ticks(ax.yaxis)
        ax.grid(alpha=0.3, which="major")
    axes[0].set_ylabel("spread over windows (std / mean)")
    handles, names = axes[0].get_legend_handles_labels()
    if cv_tol:
        handles.append(axes[0].lines[-1])
        names.append(f"tolerance {cv_tol:g}")
    fig.legend(handles, names, loc="lower center", ncols=min(6, len(names)), fontsize=8,
               frameon=False)
    rows = int(np.ceil(len(names) / 6))
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 1))
    return fig


def nice_length(span: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``span`` (``span`` > 0).

    Examples
    --------
    >>> nice_length(281.0), nice_length(2250.0 / 5), nice_length(0.7)
    (200.0, 200.0, 0.5)
    """
    if not span > 0:
        raise ValueError(f"nice_length: span must be positive, got {span}")
    k = 10.0 ** np.floor(np.log10(span))
    return float(max(m * k for m in (1, 2, 5) if m * k <= span))


def scale_bar(ax, pixel_um: float, length_um: float | None = None, *,
              loc: str = "lower right", color: str = "white"):
    """Draw a scale bar on an image axis (``imshow`` in pixels).

    Parameters
    ----------
    ax : matplotlib Axes
        Shows an image whose data coordinates are pixels.
    pixel_um : float
        Pixel size (µm per pixel).
    length_um : float, optional
        The bar's length (µm); default a round length (1, 2 or 5 x 10^k) of at
        most a quarter of the image width.
    loc : str
        Where, as for a legend.
    color : str
        The bar and its label, on a half-transparent black box so that it reads
        on white grains and black pores alike.

    Returns
    -------
    AnchoredSizeBar
        The artist (added to ``ax``).
    """
    if not pixel_um > 0:
        raise ValueError(f"scale_bar: pixel_um must be positive (µm per pixel), got {pixel_um}")
    width_px = abs(np.diff(ax.get_xlim())[0])
    if length_um is None:
        length_um = nice_length(width_px * pixel_um / 4)
    bar = AnchoredSizeBar(ax.transData, length_um / pixel_um, f"{length_um:g} µm", loc,
                          pad=0.3, borderpad=0.4, sep=3, color=color, frameon=True,
                          size_vertical=max(width_px / 80, 0.5), fontproperties={"size": 8})
    bar.patch.set(facecolor="black", alpha=0.55, edgecolor="none")
    ax.add_artist(bar)
    return bar


def local_stress(solid: np.ndarray, fields, *, size: float = 4.0,
                 pixel_um: float | None = None):
    """A binary image beside its von Mises stress under a unit macroscopic strain.

    With ``pixel_um`` (µm per pixel) both images get a scale bar.
    """
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    axes[0].imshow(solid, cmap="gray", interpolation="nearest")
    axes[0].set_title("image (white: grain)")
    vm = np.ma.masked_where(solid == 0, fields.von_mises)
    im = axes[1].imshow(vm, cmap="magma", interpolation="nearest",
                        vmax=np.percentile(fields.von_mises[solid > 0], 99))
    axes[1].set_title(f"von Mises stress, unit {fields.load} strain")
    fig.colorbar(im, ax=axes[1], label="GPa per unit strain", shrink=0.85)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        if pixel_um is not None:
            scale_bar(ax, pixel_um)
    fig.tight_layout()
    return fig


def task_loss_sum(history: pd.DataFrame, split: str = "train") -> pd.Series:
    """Per epoch, the sum of a run's task losses without the strategy's weights.

    The history's ``"<split> loss"`` is the *weighted* total the optimiser
    saw: a run with dynamic weights (e.g. 1e-4 on one task) and one with 1:1:1
    weights are then not on one scale. The plain sum of the per-task columns
    ``"<split> <task> loss"`` (MSE of standardised targets, cross-entropy of the
    mask) is. Falls back to ``"<split> loss"`` for a history without them.
    """
    cols = [c for c in history.columns
            if re.fullmatch(rf"{re.escape(split)} \S+ loss", c) and c != f"{split} selection loss"]
    if not cols:
        return history[f"{split} loss"]
    return history[cols].sum(axis=1)


def training_curves(histories: dict[str, pd.DataFrame], metrics: tuple[str, ...] = ("loss",),
                    *, size: float = 3.6):
    """Per-epoch train and validation curves of several runs, one panel per metric.

    ``metrics`` are history column suffixes: ``"mask PA"`` plots ``train mask
    PA`` and ``val mask PA``. ``"loss"`` plots the unweighted sum of the task
    losses (:func:`task_loss_sum`), the one loss that runs trained with
    different task weights share: the weighted totals differ by the weights,
    not by how well the runs fit.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(size * len(metrics), size * 0.8),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for color, (name, h) in zip(colors, histories.items(), strict=False):
            if metric == "loss":
                train, val = task_loss_sum(h, "train"), task_loss_sum(h, "val")
            else:
                train, val = h[f"train {metric}"], h[f"val {metric}"]
            ax.plot(h["epoch"], train, "-", color=color, label=f"{name} train")
            ax.plot(h["epoch"], val, "--", color=color, label=f"{name} val")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss, unweighted sum over tasks" if metric == "loss" else metric)
        if metric.endswith("loss"):
            ax.set_yscale("log")
            _log_ticks(ax.yaxis)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def segmentation_examples(gray: np.ndarray, label: np.ndarray,
                          predictions: dict[str, np.ndarray], *, rows: list[str] | None = None,
                          size: float = 2.2, pixel_um: float | None = None):
    """Figs. 9 and 15: per image (rows) the grayscale, the label and each method's mask with its PA.

    ``rows`` names each image (e.g. its rock) on the left; with ``pixel_um``
    (µm per pixel) each grayscale image gets a scale bar.
    """
    cols = ["grayscale", "label", *predictions]
    fig, axes = plt.subplots(len(gray), len(cols), figsize=(size * len(cols), size * len(gray)),
                             squeeze=False)
    for i in range(len(gray)):
        images = [gray[i], label[i], *(p[i] for p in predictions.values())]
        for j, (ax, im) in enumerate(zip(axes[i], images, strict=True)):
            ax.imshow(im, cmap="gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = cols[j]
            if j >= 2:
                title += f"\nPA {pixel_accuracy(im, label[i]):.3f}"
            if i == 0 or j >= 2:
                ax.set_title(title, fontsize=9)
        if rows is not None:
            axes[i, 0].set_ylabel(rows[i], fontsize=9)
        if pixel_um is not None:
            scale_bar(axes[i, 0], pixel_um)
    fig.tight_layout()
    return fig


PARAMETER_LABELS = {"phi": "porosity φ", "mu": "shear modulus μ (GPa)",
                    "kappa": "bulk modulus κ (GPa)"}
SYMBOLS = {"phi": "φ", "mu": "μ", "kappa": "κ"}


def parameter_predictions(pred: dict[str, np.ndarray], true: dict[str, np.ndarray],
                          *, title: str = "", size: float = 3.2):
    """Figs. 10-11: per parameter, a residual histogram above predicted vs true with R2."""
    keys = [k for k in PARAMETER_LABELS if k in pred]
    fig, axes = plt.subplots(2, len(keys), figsize=(size * len(keys), size * 1.6),
                             gridspec_kw={"height_ratios": [1, 2]}, squeeze=False)
    for j, k in enumerate(keys):
        p, t = np.asarray(pred[k], float), np.asarray(true[k], float)
        ok = np.isfinite(p)
        p, t = p[ok], t[ok]
        axes[0, j].hist(p - t, bins=30, color="0.4")
        axes[0, j].axvline(0, color="k", lw=0.8)
        unit = f" ({PARAMETER_UNITS[k]})" if PARAMETER_UNITS[k] != "fraction" else ""
        axes[0, j].set_xlabel(f"residual {SYMBOLS[k]}, predicted − true{unit}")
        axes[0, j].set_ylabel("images")
        ax = axes[1, j]
        ax.scatter(t, p, s=6, alpha=0.5)
        lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="1:1")
        ax.set_xlabel(f"true {PARAMETER_LABELS[k]}")
        ax.set_ylabel(f"predicted {PARAMETER_LABELS[k]}")
        ax.set_title(f"R² = {r2_score(p, t):.3f}", fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def dynamic_weight_curves(sigmas=(0.5, 1.0, 2.0), gammas=(0, 1, 2, 3), *, size: float = 3.6):
    """Fig. 4: the dynamic task weight w(k) against the KPI k, for several sigma and gamma."""
    k = np.linspace(0.01, 0.99, 200)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size * 0.85))
    for g in gammas:
        axes[0].plot(k, dynamic_weight(k, sigma=1.0, gamma=g), label=f"γ = {g}")
    for s in sigmas:
        axes[1].plot(k, dynamic_weight(k, sigma=s, gamma=2), label=f"σ = {s:g}")
    axes[0].set_title("σ = 1", fontsize=10)
    axes[1].set_title("γ = 2", fontsize=10)
    for ax in axes:
        ax.set_xlabel("KPI k (R² or PA)")
        ax.set_ylabel("task weight w")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def kpis_and_weights(histories: dict[str, pd.DataFrame], tasks=("phi", "mu", "kappa"),
                     kpi: str = "R2", *, size: float = 3.0, floor: float = -1.0):
    """Fig. 13: per strategy (columns), training KPIs (top) and task weights (bottom) by epoch.

    KPIs below ``floor`` (early R² can reach -100) would hide the rest: they
    are drawn at the floor and marked ▼, with a note under the figure.
    """
    fig, axes = plt.subplots(2, len(histories), figsize=(size * len(histories), size * 1.6),
                             sharex=True, squeeze=False)
    clipped_any = False
    for j, (name, h) in enumerate(histories.items()):
        for t in tasks:
            y = np.asarray(h[f"train {t} {kpi}"], dtype=float)
            low = y < floor
            line, = axes[0, j].plot(h["epoch"], np.maximum(y, floor),
                                    label=PARAMETER_LABELS.get(t, t))
            if low.any():  # drawn at the floor, marked, and said below
                clipped_any = True
                axes[0, j].plot(np.asarray(h["epoch"])[low], np.full(low.sum(), floor), "v",
                                ms=5, color=line.get_color(), clip_on=False)
            axes[1, j].plot(h["epoch"], h[f"weight {t}"], label=t)
        axes[0, j].set_title(name, fontsize=10)
        axes[0, j].set_ylim(floor, 1.0)
        axes[1, j].set_xlabel("epoch")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"training {kpi}")
    axes[1, 0].set_ylabel("task weight")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    if clipped_any:
        fig.text(0.5, 0.005, f"▼ at {floor:g}: {kpi} below {floor:g} that epoch (drawn at the "
                 f"axis floor so that the rest stays readable)", ha="center", va="bottom",
                 fontsize=8)
        fig.subplots_adjust(bottom=fig.subplotpars.bottom + 0.04)
    return fig
