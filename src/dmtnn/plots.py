"""Figures of the book, drawn with matplotlib from library results.

Each function takes data and returns the figure; notebooks only call them.
"""

from __future__ import annotations

import hashlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dmtnn.metrics import pixel_accuracy, r2_score
from dmtnn.weighting import dynamic_weight

__all__ = [
    "cube",
    "cubes",
    "slices_grid",
    "rev_curves",
    "morphology_comparison",
    "moduli_vs_porosity",
    "styled",
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


def cubes(volumes: dict[str, np.ndarray], *, ncols: int = 4, size: float = 2.6):
    """One cube per rock (Fig. 5)."""
    n = len(volumes)
    nrows = int(np.ceil(n / ncols))
    fig = plt.figure(figsize=(size * ncols, size * nrows))
    for i, (name, vol) in enumerate(volumes.items(), 1):
        cube(fig.add_subplot(nrows, ncols, i, projection="3d"), vol, title=name)
    fig.subplots_adjust(wspace=0, hspace=0.05, left=0, right=1, top=0.95, bottom=0)
    return fig


def slices_grid(rows: dict[str, dict[str, np.ndarray]], *, per_row: int = 3, size: float = 2.6):
    """Images of several rocks, one column per rock and one row per image kind (Fig. 6).

    More than ``per_row`` rocks are wrapped into further groups of rows.
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
    fig.tight_layout()
    return fig


def rev_curves(curves: dict, *, paper_rev_um: float | None = None, ncols: int = 4,
               size: float = 2.8):
    """Window porosity against window side (um), one panel per sample (Fig. 7).

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
        ax.set_xlabel("window side (um)")
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
    axes[0].set(xlabel="lag r (um)", ylabel=r"$(S_2 - \phi^2)/(\phi - \phi^2)$",
                title="two-point correlation")
    axes[1].set(xlabel="chord length (um)", ylabel="density", title="pore chords", yscale="log")
    axes[2].set(xlabel="chord length (um)", ylabel="density", title="grain chords", yscale="log")
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


def styled(table: pd.DataFrame, precision: int = 3, formats: dict | None = None):
    """A table for the book: floats to ``precision`` digits (or per-column ``formats``), no index.

    The HTML id comes from the table's content, not a random uuid, so that the
    same results give the same notebook output (nbval compares them).
    """
    fmt = {c: f"{{:.{precision}f}}" for c in table.select_dtypes("float").columns}
    fmt.update(formats or {})
    uuid = hashlib.sha1(table.to_csv().encode()).hexdigest()[:10]
    return table.style.set_uuid(uuid).format(fmt, na_rep="–").hide(axis="index")


def with_intervals(table: pd.DataFrame, precision: int = 3, formats: dict | None = None):
    """:func:`styled`, with each ``<c> low`` / ``<c> high`` pair folded into ``<c>``.

    A score and its interval read as one cell, "0.700 [0.61, 0.78]" (bounds to
    one digit fewer; "–" where there is no interval), so that wide tables of
    bootstrap intervals fit the page.
    """
    out = table.copy()
    for c in list(table.columns):
        low, high = f"{c} low", f"{c} high"
        if low in table.columns and high in table.columns:
            b = max(precision - 1, 1)
            out[c] = [
                "–" if not np.isfinite(v) else f"{v:.{precision}f}" + (
                    f" [{lo:.{b}f}, {hi:.{b}f}]" if np.isfinite(lo) and np.isfinite(hi) else "")
                for v, lo, hi in zip(table[c], table[low], table[high], strict=True)]
            out = out.drop(columns=[low, high])
    return styled(out, precision, formats)


def moduli_rev(curves: dict[str, pd.DataFrame], *, cv_tol: float | None = None,
               size: float = 4.0):
    """Spread (std / mean) of window κ, μ and porosity against window side, one line per rock."""
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 1, size * 0.85), sharey=True)
    for ax, q, label in zip(axes, ("kappa", "mu", "phi"), ("κ", "μ", "porosity"),
                            strict=True):
        for name, df in curves.items():
            ax.plot(df["size_um"], df[f"{q}_cv"], "o-", ms=3, lw=1, label=name)
        if cv_tol:
            ax.axhline(cv_tol, color="k", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="window side (um)", title=label)
    axes[0].set_ylabel("spread over windows (std / mean)")
    axes[-1].legend(fontsize=7, ncols=2)
    fig.tight_layout()
    return fig


def local_stress(solid: np.ndarray, fields, *, size: float = 4.0):
    """A binary image beside its von Mises stress under a unit macroscopic strain."""
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
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, pd.DataFrame], metrics: tuple[str, ...] = ("loss",),
                    *, size: float = 3.6):
    """Per-epoch train and validation curves of several runs, one panel per metric.

    ``metrics`` are history column suffixes: ``"loss"`` plots ``train loss`` and
    ``val loss``; ``"mask PA"`` plots ``train mask PA`` and ``val mask PA``.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(size * len(metrics), size * 0.8),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for color, (name, h) in zip(colors, histories.items(), strict=False):
            ax.plot(h["epoch"], h[f"train {metric}"], "-", color=color, label=f"{name} train")
            ax.plot(h["epoch"], h[f"val {metric}"], "--", color=color, label=f"{name} val")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        if metric.endswith("loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def segmentation_examples(gray: np.ndarray, label: np.ndarray,
                          predictions: dict[str, np.ndarray], *, rows: list[str] | None = None,
                          size: float = 2.2):
    """Fig. 9: per image (rows) the grayscale, the label and each method's mask with its PA.

    ``rows`` names each image (e.g. its rock) on the left.
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
    fig.tight_layout()
    return fig


PARAMETER_LABELS = {"phi": "porosity φ", "mu": "shear modulus μ (GPa)",
                    "kappa": "bulk modulus κ (GPa)"}


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
        axes[0, j].set_xlabel("residual (predicted − true)")
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
                     kpi: str = "R2", *, size: float = 3.0):
    """Fig. 13: per strategy (columns), training KPIs (top) and task weights (bottom) by epoch."""
    fig, axes = plt.subplots(2, len(histories), figsize=(size * len(histories), size * 1.6),
                             sharex=True, squeeze=False)
    for j, (name, h) in enumerate(histories.items()):
        for t in tasks:
            axes[0, j].plot(h["epoch"], h[f"train {t} {kpi}"], label=PARAMETER_LABELS.get(t, t))
            axes[1, j].plot(h["epoch"], h[f"weight {t}"], label=t)
        axes[0, j].set_title(name, fontsize=10)
        axes[0, j].set_ylim(-1.0, 1.0)  # early R2 far below -1 would hide the rest
        axes[1, j].set_xlabel("epoch")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"training {kpi}")
    axes[1, 0].set_ylabel("task weight")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
