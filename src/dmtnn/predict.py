"""Apply trained networks to your own grayscale micro-CT images (``dmtnn predict``).

:func:`predict_stack` takes a 2D image or a 3D stack at any pixel size and a
network from a weights folder (:func:`dmtnn.weights.load_network`) and
returns the grain mask and the porosity ``phi``, shear modulus ``mu`` and 2D
bulk modulus ``kappa`` per window and per slice, with a ``method`` record of
every rule applied. :func:`write_prediction` writes them to a folder
(``mask.tif``, ``windows.csv``, ``slices.csv``, ``result.json``), all at once
or not at all. The rules:

Intensity
    uint8 is used as is; other dtypes are rescaled linearly so that the 0.5th
    and 99.5th percentiles of the whole stack become 0 and 255 (clipped),
    with a warning (:mod:`dmtnn.images`). ``invert`` turns gray ``g`` into
    ``255 - g`` (scans with bright pores).
Pixel size
    Each slice is resampled to the pixel size of the training images (8.79 um
    for the paper's) by exact area weights (:func:`dmtnn.images.area_resample`):
    ``n_out = round(n * pixel_um / trained_um)`` pixels per side over the same
    field of view, each the area-weighted mean of the input pixels it covers
    (any ratio; up-sampling gives piecewise-constant pixels).
Windows
    The networks were trained on square windows of ``S`` px (their
    ``image_size``) and DMTNN accepts no other size. A resampled slice is
    covered by ``ceil(h / S) x ceil(w / S)`` windows: a grid of stride ``S``
    from the top left, plus, where ``S`` does not divide a side, one last row
    (column) flush with the bottom (right) edge that overlaps its neighbour.
    Each pixel belongs to one window: its grid cell, or for the edge strip the
    flush window. A slice smaller than ``S`` is padded by reflection to ``S``
    (centred; ``small="pad"``, refused below ``S / 2``) or refused
    (``small="refuse"``).
Per slice
    The area-weighted mean of its windows' values, each window weighted by
    the area it owns. For the moduli this is an arithmetic (Voigt-type) mean
    of window moduli, not the modulus of the whole slice (which FEM of the
    whole slice would give, and which is lower when the windows differ).
    ``phi_mask`` is the pore fraction of the predicted mask itself.
FEM (``fem=True``)
    ``mu`` and ``kappa`` of each window's predicted mask by
    :func:`dmtnn.fem.elastic_moduli` with the labels' settings (quartz grains,
    empty pores, plane strain; :func:`dmtnn.data.fem_labels.label_chunk`),
    beside the network's values and aggregated by the same rule.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
import torch
from tqdm import tqdm

from dmtnn import __version__, images
from dmtnn.artifacts import atomic_write
from dmtnn.config import FEMConfig, load_profile
from dmtnn.data import ct
from dmtnn.data.dataset import native_slices
from dmtnn.data.fem_labels import label_chunk
from dmtnn.data.real import load_real
from dmtnn.data.synthetic import PORE, QUARTZ
from dmtnn.morphology import porosity
from dmtnn.parallel import prediction_lanes, torch_threads
from dmtnn.samples import SEGMENTATION, Task
from dmtnn.settings import resolve_device, resolve_precision, show_progress
from dmtnn.train import predict
from dmtnn.weights import LoadedNetwork, staged_folder

__all__ = [
    "SMALL",
    "Prediction",
    "window_layout",
    "predict_stack",
    "write_prediction",
    "example_stack",
]

log = logging.getLogger(__name__)

#: What to do with slices smaller than the network's window after resampling.
SMALL = ("pad", "refuse")
#: Padding by reflection is refused below this share of the window's side.
MIN_FILL = 0.5

_REGRESSION = ("phi", "mu", "kappa")


@dataclass
class Prediction:
    """What :func:`predict_stack` found.

    Attributes
    ----------
    mask : ndarray (N, h, w) uint8, or None
        Predicted masks, 1 = grain, on the grid ``method["mask"]`` names; None
        for a network that predicts no mask (the CNN).
    windows : DataFrame
        One row per window: ``slice``, ``window``, ``y``, ``x`` (its top left
        on the slice's resampled grid; negative where padded), the area it owns
        (``own_y0``... and ``weight``), the network's ``phi``, ``mu``,
        ``kappa`` (GPa), ``phi_mask`` (pore fraction of its mask) and with FEM
        ``fem_mu``, ``fem_kappa`` (GPa), ``fem_converged``.
    slices : DataFrame
        One row per slice: the area-weighted values, ``phi_mask`` of the slice's
        mask, and the input checks ``std`` and ``autocorr``.
    method : dict
        Every rule applied and its numbers (input, intensity, resampling,
        windows, aggregation, network, FEM, checks).
    warnings : list of str
        What the checks found (also issued as :class:`dmtnn.images.ImageWarning`).
    """

    mask: np.ndarray | None
    windows: pd.DataFrame
    slices: pd.DataFrame
    method: dict
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean over slices of each per-slice value (porosity, moduli in GPa)."""
        cols = [c for c in self.slices.columns
                if c in (*_REGRESSION, "phi_mask", "fem_mu", "fem_kappa")]
        return {c: float(self.slices[c].mean()) for c in cols}


# -- windows -------------------------------------------------------------------------


def window_layout(n: int, size: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Windows of ``size`` px along one side of ``n`` px: padding and (start, own0, own1).

    A side shorter than ``size`` is padded to ``size`` (centred); the returned
    padding is the pixels added before it. Starts are in padded coordinates;
    the owned ranges ``[own0, own1)`` are in the side's own coordinates and
    partition ``[0, n)``.

    >>> window_layout(300, 128)
    (0, [(0, 0, 128), (128, 128, 256), (172, 256, 300)])
    >>> window_layout(100, 128)
    (14, [(0, 0, 100)])
    """
    before = max(0, size - n) // 2
    padded = max(n, size)
    full = padded // size
    starts = [k * size for k in range(full)]
    owned = [(k * size, (k + 1) * size) for k in range(full)]
    if padded % size:
        starts.append(padded - size)
        owned.append((full * size, padded))
    out = []
    for s, (a, b) in zip(starts, owned, strict=True):
        lo, hi = max(a, before) - before, min(b, before + n) - before
        out.append((s, lo, hi))
    return before, out


def _tasks(network: LoadedNetwork) -> list[Task]:
    tasks = list(SEGMENTATION) if "mask" in network.outputs else []
    return tasks + [Task(t, "regression") for t in _REGRESSION if t in network.outputs]


def _pair(pixel_um) -> tuple[float, float]:
    p = (pixel_um, pixel_um) if np.isscalar(pixel_um) else tuple(pixel_um)
    if len(p) != 2 or not all(np.isfinite(v) and v > 0 for v in p):
        raise ValueError(f"pixel_um must be a positive size in micrometres (or a (y, x) pair), "
                         f"got {pixel_um!r}")
    return float(p[0]), float(p[1])


def _fem_settings(network: LoadedNetwork) -> dict:
    settings = {k: v for k, v in asdict(FEMConfig()).items() if k != "kinds"}
    settings.update({k: v for k, v in (network.config.get("fem") or {}).items()
                     if k in settings})
    return settings


def _weighted(df: pd.DataFrame, col: str) -> float:
    """Area-weighted mean of a column over the windows where it is finite."""
    v, w = df[col].to_numpy(float), df["weight"].to_numpy(float)
    ok = np.isfinite(v)
    return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else math.nan


# -- prediction ----------------------------------------------------------------------


def predict_stack(
    stack,
    pixel_um: float | tuple[float, float],
    network: LoadedNetwork,
    *,
    fem: bool = False,
    small: str = "pad",
    invert: bool = False,
    mask_grid: str = "network",
    batch_size: int = 16,
    device: str = "auto",
    precision: str = "auto",
    threads: int = 1,
    progress: bool | None = None,
    name: str = "images",
    source: dict[str, Any] | None = None,
) -> Prediction:
    """Masks, porosity and moduli of grayscale slices by a trained network.

    Parameters
    ----------
    stack : array (H, W) or (N, H, W)
        Grayscale slices, any real dtype (checked by :func:`dmtnn.images.as_stack`;
        memory-mapped arrays are read slice by slice).
    pixel_um : float or (float, float)
        Pixel size in micrometres (or (y, x)).
    network : LoadedNetwork
        From :func:`dmtnn.weights.load_network`: DMTNN gives mask, phi, mu,
        kappa; a segmenter the mask (and ``phi_mask``) only.
    fem : bool
        Also compute ``mu`` and ``kappa`` of each window's predicted mask by FEM.
    small : {"pad", "refuse"}
        Slices smaller than the network's window after resampling: pad by
        reflection (refused below half the window) or refuse.
    invert : bool
        Use ``255 - gray`` (scans with bright pores and dark grains).
    mask_grid : {"network", "input"}
        Return the mask on the resampled grid the network saw, or mapped back
        to the input's pixels (each input pixel takes the class of the
        resampled pixel holding its centre).
    batch_size : int
        Windows per forward pass (at most; a pass holds whole slices when
        their windows fit in it).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    precision : {"auto", "bf16", "float32"}
        Arithmetic of the forward passes (:func:`dmtnn.settings.resolve_precision`):
        ``"auto"`` is bf16 where the device computes it natively, else float32.
    threads : int
        Torch threads of each forward pass on a CPU. The process's other
        threads compute other passes at the same time
        (:func:`dmtnn.parallel.torch_threads`), so the numbers do not depend
        on the machine's thread count, as in the book's runs. ``0``: every
        pass on all the process's threads (can be faster on many cores; the
        last bits then depend on the count).
    progress : bool, optional
        Progress bar over slices; default from :mod:`dmtnn.settings`.
    name : str
        The input's name in messages (a file name).
    source : dict, optional
        Recorded in ``method["input"]`` (e.g. the file and where the pixel
        size came from).

    Returns
    -------
    Prediction

    Raises
    ------
    dmtnn.images.ImageError
        For inputs that cannot be used (see :mod:`dmtnn.images`), and slices
        too small for the network's window.
    """
    if small not in SMALL:
        raise ValueError(f"small must be one of {SMALL}, got {small!r}")
    if fem and "mask" not in network.outputs:
        raise ValueError(f"fem=True needs a network that predicts a mask; {network.name} "
                         f"predicts {', '.join(network.outputs)}")
    if mask_grid not in ("network", "input"):
        raise ValueError(f"mask_grid must be 'network' or 'input', got {mask_grid!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (windows per forward pass), got {batch_size}")
    t0 = time.perf_counter()
    raw = images.as_stack(stack, name)
    py, px = _pair(pixel_um)
    n_slices, H, W = raw.shape
    S, target = network.image_size, network.pixel_um
    h, w = images.grid_shape((H, W), (py, px), target)
    actual = (H * py / h, W * px / w)
    if min(h, w) < S and (small == "refuse" or min(h, w) < MIN_FILL * S):
        least = S if small == "refuse" else MIN_FILL * S
        need = math.ceil(least * target / min(py, px))
        why, fix = ((" by more than half (padding is refused below half a window)", "")
                    if small == "pad" else ("", ", or allow padding (--small pad)"))
        raise images.ImageError(
            f"{name}: slices of {H} x {W} px at {py:.4g} x {px:.4g} um are {h} x {w} px at the "
            f"network's {target:.4g} um, smaller than its {S} px window{why}: pass larger "
            f"slices (at least about {need} px a side at your pixel size){fix}")
    notes = images.pixel_size_warnings((py + px) / 2, target, network.native_pixel_um, name)
    value_range = images.intensity_range(raw)
    if value_range is not None:
        notes.append(images.rescale_message(name, raw.dtype, value_range))
    (pad_y, rows), (pad_x, cols) = window_layout(h, S), window_layout(w, S)
    pad = ((pad_y, max(0, S - h) - pad_y), (pad_x, max(0, S - w) - pad_x))
    windows = [(r, c) for r in rows for c in cols]
    # A forward pass holds the windows of `per_pass` whole slices, or, when a slice has more
    # windows than batch_size, a part of one slice's. A chunk of slices is computed `lanes`
    # passes at once; its passes, and so their bits, are the same whatever the lanes.
    per_pass = batch_size // len(windows)
    pass_size = per_pass * len(windows) if per_pass else batch_size
    tasks = _tasks(network)
    dev = resolve_device(device)
    lanes = prediction_lanes(threads, dev)
    per_chunk = per_pass * lanes if per_pass else 1
    fem_settings = _fem_settings(network) if fem else None

    gray = np.empty((n_slices, h, w), np.uint8)
    mask = np.zeros((n_slices, h, w), np.uint8)
    win_rows = []
    bar = tqdm(total=n_slices, desc=f"dmtnn predict {name}", unit="slice",
               disable=not show_progress(progress))
    for first in range(0, n_slices, per_chunk):
        ks = range(first, min(first + per_chunk, n_slices))
        cut = []
        for k in ks:
            g = np.asarray(raw[k])
            if (h, w) != (H, W):
                g = images.area_resample(g, (h, w))
            g = images.to_uint8(g, value_range)
            gray[k] = 255 - g if invert else g
            padded = np.pad(gray[k], pad, mode="reflect") if max(S - h, S - w) > 0 else gray[k]
            cut += [padded[r[0]:r[0] + S, c[0]:c[0] + S] for r, c in windows]
        with torch_threads(threads, dev):
            out = predict(network.model, np.stack(cut), tasks, network.scales,
                          batch_size=pass_size, device=dev, precision=precision, lanes=lanes)
        fem_res = label_chunk(out["mask"], fem_settings, str(dev)) if fem else None
        for i, k in enumerate(ks):
            for j, (r, c) in enumerate(windows):
                b = i * len(windows) + j
                (ys, y0, y1), (xs, x0, x1) = r, c
                row = {"slice": k, "window": j, "y": ys - pad_y, "x": xs - pad_x,
                       "own_y0": y0, "own_y1": y1, "own_x0": x0, "own_x1": x1,
                       "weight": (y1 - y0) * (x1 - x0) / (h * w)}
                if "mask" in out:
                    m = out["mask"][b]
                    oy, ox = y0 + pad_y - ys, x0 + pad_x - xs
                    mask[k, y0:y1, x0:x1] = m[oy:oy + y1 - y0, ox:ox + x1 - x0]
                    row["phi_mask"] = porosity(m)
                row.update({t: float(out[t][b]) for t in _REGRESSION if t in out})
                if fem_res is not None:
                    row.update(fem_mu=float(fem_res["mu"][b]),
                               fem_kappa=float(fem_res["kappa"][b]),
                               fem_converged=bool(fem_res["converged"][b]))
                win_rows.append(row)
            bar.update()
    bar.close()
    win_df = pd.DataFrame(win_rows)
    stats = images.image_stats(gray)
    notes += images.quality_warnings(stats, name)
    values = [c for c in (*_REGRESSION, "fem_mu", "fem_kappa") if c in win_df]
    slice_rows = []
    for k, part in win_df.groupby("slice", sort=True):
        row = {"slice": k, "windows": len(part), **{c: _weighted(part, c) for c in values}}
        if "mask" in network.outputs:
            row["phi_mask"] = porosity(mask[k])
        row.update(std=stats["std"][k], autocorr=stats["autocorr"][k])
        slice_rows.append(row)
    slices_df = pd.DataFrame(slice_rows)
    if "mask" in network.outputs:
        flagged = images.contrast_warning(gray, mask, name)
        if flagged:
            notes.append(flagged)
    for m in notes:
        warnings.warn(m, images.ImageWarning, stacklevel=2)

    mask_pixel = actual
    if mask_grid == "input":
        iy = np.minimum(((np.arange(H) + 0.5) * py / actual[0]).astype(int), h - 1)
        ix = np.minimum(((np.arange(W) + 0.5) * px / actual[1]).astype(int), w - 1)
        mask = mask[:, iy][:, :, ix]
        mask_pixel = (py, px)
    method = _method(
        name=name, source=source or {}, shape=raw.shape, dtype=str(raw.dtype),
        pixel=(py, px), value_range=value_range, invert=invert, network=network,
        grid=(h, w), actual=actual, rows=rows, cols=cols, pad=pad, small=small,
        fem=fem_settings, mask_grid=mask_grid, mask_pixel=mask_pixel,
        device=f"{dev} ({resolve_precision(precision, dev) or torch.float32})",
        threads=_threads_record(threads, dev, lanes, pass_size),
        seconds=time.perf_counter() - t0)
    return Prediction(mask=mask if "mask" in network.outputs else None, windows=win_df,
                      slices=slices_df, method=method, warnings=notes)


def _threads_record(threads: int, dev: torch.device, lanes: int, pass_size: int) -> dict:
    """How the forward passes shared the CPU, for ``method["threads"]``."""
    if dev.type != "cpu":
        return {"rule": "one forward pass at a time on the device", "windows_per_pass": pass_size}
    if not threads:
        return {"rule": "one forward pass at a time on all the process's torch threads: the "
                        "last bits depend on their number", "per_pass": torch.get_num_threads(),
                "windows_per_pass": pass_size}
    return {"rule": "each forward pass on per_pass torch threads, lanes passes at once: the "
                    "numbers do not depend on the machine's thread count",
            "per_pass": threads, "lanes": lanes, "windows_per_pass": pass_size}


def _method(*, name, source, shape, dtype, pixel, value_range, invert, network, grid, actual,
            rows, cols, pad, small, fem, mask_grid, mask_pixel, device, threads,
            seconds) -> dict:
    """The ``method`` record of a prediction: every rule applied and its numbers."""
    S, target = network.image_size, network.pixel_um
    trained = network.config.get("training", {})
    lo, hi = images.RESCALE_PERCENTILES
    padded = any(p for side in pad for p in side)
    return {
        "input": {"name": name, **source, "shape": list(shape), "dtype": dtype,
                  "pixel_um": list(pixel)},
        "intensity": {
            "rule": ("uint8, used as is" if value_range is None else
                     f"linear: the {lo}th percentile of the stack -> 0, the {hi}th -> 255, "
                     f"clipped, rounded to uint8"),
            "value_range": list(value_range) if value_range else None,
            "inverted": invert,
        },
        "resampling": {
            "rule": ("exact area weights: n_out = round(n_in * pixel_um / target_um) px per "
                     "side over the same field; each output pixel is the area-weighted mean "
                     "of the input pixels it covers (dmtnn.images.area_resample)"),
            "target_pixel_um": target,
            "pixel_um": list(actual),
            "factor": [pixel[0] / actual[0], pixel[1] / actual[1]],
            "shape": list(grid),
        },
        "windows": {
            "size_px": S,
            "rule": ("a grid of stride size_px from the top left; where size_px does not "
                     "divide a side, a last window flush with the far edge, overlapping its "
                     "neighbour; each pixel is owned by one window (its grid cell, or the "
                     "flush window for the edge strip)"),
            "rows": len(rows), "cols": len(cols), "per_slice": len(rows) * len(cols),
            "padding": ({"mode": "reflect", "px": [list(p) for p in pad],
                         "note": "the network's values describe the padded window; the mask "
                                 "is cropped back"} if padded else None),
            "small": small,
        },
        "aggregation": ("per slice: the mean of the window values weighted by the area each "
                        "window owns; for mu and kappa an arithmetic (Voigt-type) mean of "
                        "window moduli, not the modulus of the whole slice; phi_mask: the "
                        "pore fraction of the predicted mask"),
        "network": {"folder": str(network.folder), "name": network.name,
                    "sha256": network.sha256, "outputs": list(network.outputs),
                    "image_size": S, "pixel_um": target,
                    "native_pixel_um": network.native_pixel_um,
                    "trained_on": network.config.get("data", {}).get("source"),
                    "profile": trained.get("profile"), "commit": trained.get("commit")},
        "fem": ({**{k: fem[k] for k in ("K", "G", "plane", "dtype")},
                 "rule": "FEM of each window's predicted mask (dmtnn.fem.elastic_moduli): "
                         "grains with the labels' moduli K, G (GPa), pores empty; "
                         "aggregated per slice like the network's values"}
                if fem else None),
        "checks": {"near_constant_std_below": images.MIN_STD,
                   "noise_autocorr_below": images.MIN_AUTOCORR,
                   "inverted_if_porosity_above": images.MAX_POROSITY,
                   "pixel_ratio": images.PIXEL_RATIO},
        "mask": ({"grid": mask_grid, "pixel_um": list(mask_pixel), "values": "1 = grain, 0 = pore"}
                 if "mask" in network.outputs else None),
        "units": {"phi": "pore fraction", "phi_mask": "pore fraction", "mu": "GPa",
                  "kappa": "GPa (2D bulk modulus)", "fem_mu": "GPa", "fem_kappa": "GPa"},
        "dmtnn_version": __version__,
        "device": device,
        "threads": threads,
        "seconds": round(seconds, 3),
    }


# -- output --------------------------------------------------------------------------


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: full float precision, NaN as null."""
    def value(v):
        v = v.item() if isinstance(v, np.generic) else v
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return [{k: value(v) for k, v in row.items()} for row in df.to_dict("records")]


def write_prediction(pred: Prediction, out: str | os.PathLike, *, overwrite: bool = False
                     ) -> list[Path]:
    """Write a prediction to the folder ``out``, all files or none.

    Files: ``mask.tif`` (uint8, 1 = grain, ImageJ metadata with the pixel
    size in um; not for a network without a mask), ``windows.csv``, ``slices.csv`` and ``result.json``
    (``method``, ``warnings``, ``summary``, ``slices``, ``windows``). Each is
    written atomically into a temporary folder that replaces ``out`` at the
    end (:func:`dmtnn.weights.staged_folder`).

    Raises
    ------
    FileExistsError
        If ``out`` exists, is not empty, and ``overwrite`` is false.
    """
    out = Path(out)
    spacing = pred.method["input"].get("slice_spacing_um")
    summary = {k: None if not math.isfinite(v) else v for k, v in pred.summary().items()}
    result = {"method": pred.method, "warnings": pred.warnings, "summary": summary,
              "slices": _records(pred.slices), "windows": _records(pred.windows)}
    text = json.dumps(result, indent=1, default=str)
    meta = {"unit": "um", "axes": "ZYX", **({"spacing": spacing} if spacing else {})}
    names = [*(["mask.tif"] if pred.mask is not None else []), "windows.csv", "slices.csv",
             "result.json"]
    with staged_folder(out, overwrite=overwrite) as tmp:
        if pred.mask is not None:  # a network without a mask (the CNN) writes none
            py, px = pred.method["mask"]["pixel_um"]
            atomic_write(tmp / "mask.tif", lambda p: tifffile.imwrite(
                p, pred.mask, imagej=True, resolution=(1 / px, 1 / py), metadata=meta))
        atomic_write(tmp / "windows.csv", lambda p: pred.windows.to_csv(p, index=False))
        atomic_write(tmp / "slices.csv", lambda p: pred.slices.to_csv(p, index=False))
        atomic_write(tmp / "result.json", lambda p: p.write_text(text))
    return [out / n for n in names]


# -- a worked example ---------------------------------------------------------------


def example_stack(source: str = "real", n_slices: int = 4, *, name: str = "icl_400",
                  rock: str = "Castle Gate", seed: int = 2022
                  ) -> tuple[np.ndarray, float, np.ndarray]:
    """A grayscale stack to try ``dmtnn predict`` on, its pixel size (um) and its true geometry.

    ``source="real"``: slices spread through a real binary Berea volume
    (:mod:`dmtnn.data.real`, ``name``), imaged by the CT forward model at the
    volume's own voxel size (grain as quartz, pore as pore), as notebooks 03
    and 07 do for their real windows. ``source="synthetic"``: native
    2.25 um slices of a synthetic ``rock`` (:func:`dmtnn.data.dataset.native_slices`,
    1000 px). Same seed, same stack.

    Returns
    -------
    gray : ndarray (n_slices, H, W) uint8
    pixel_um : float
    solid : ndarray (n_slices, H, W) uint8
        The geometry behind it, 1 = grain.

    Raises
    ------
    dmtnn.data.real.RealDataMissing
        For ``source="real"`` on a machine without the real volumes.
    """
    if source == "synthetic":
        cfg = load_profile("paper", data={"seed": seed})
        s = native_slices(cfg.data, rock, n_slices, 1000, purpose="example")
        return s["gray"], s["pixel_um"], s["truth"]
    if source != "real":
        raise ValueError(f"source must be 'real' or 'synthetic', got {source!r}")
    volume, voxel = load_real(name)
    if voxel is None:
        raise ValueError(f"real volume {name} has no known voxel size")
    picks = np.linspace(0, len(volume) - 1, n_slices).round().astype(int)
    gray = np.stack([ct.forward(np.where(volume[k] == 1, QUARTZ, PORE).astype(np.uint8), voxel,
                                depth=k / len(volume), rng=np.random.default_rng([seed, int(k)]))
                     for k in picks])
    return gray, voxel, volume[picks]
