"""Grayscale input images: reading, checking, intensity rule and resampling.

The one place that decides whether an array is a grayscale slice the networks
can read, used by :mod:`dmtnn.predict` (the ``dmtnn predict`` command) and by
:func:`dmtnn.segmentation.segment` and :func:`~dmtnn.segmentation.threshold_baseline`.

Refused, with a message that says what to do (:class:`ImageError`):

- arrays that are not a 2D image (H, W) or a 3D stack (N, H, W): an RGB(A)
  image (H, W, 3 or 4), any 4D array, a 1D array, an empty one;
- boolean, complex or object arrays; NaN or infinite values;
- images too small for the network (:func:`check_side`).

Accepted with a warning (:class:`ImageWarning`):

- any other dtype than uint8 (uint16, int, float): rescaled to 0..255 by the
  robust rule of :func:`intensity_range` (the 0.5th and 99.5th percentiles of
  the whole stack map to 0 and 255, values outside are clipped);
- near-constant slices (standard deviation below :data:`MIN_STD` gray levels)
  and noise-like slices (lag-1 autocorrelation below :data:`MIN_AUTOCORR`): a
  micro-CT slice of sandstone at the networks' pixel size has grains tens of
  pixels wide, so neighbouring pixels are strongly correlated (:func:`image_stats`);
- an apparently inverted contrast (:func:`contrast_warning`): the networks
  were trained on scans with dark pores and bright grains;
- a pixel size far from the training images' (:func:`pixel_size_warnings`).

Resampling to the networks' pixel size is by exact area weights
(:func:`area_resample`), for any ratio, up or down.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from dmtnn.data.resample import area_weights

__all__ = [
    "ImageError",
    "ImageWarning",
    "RESCALE_PERCENTILES",
    "MIN_STD",
    "MIN_AUTOCORR",
    "MAX_POROSITY",
    "PIXEL_RATIO",
    "as_stack",
    "intensity_range",
    "to_uint8",
    "rescale_message",
    "as_uint8_stack",
    "check_side",
    "lag1_autocorrelation",
    "image_stats",
    "quality_warnings",
    "contrast_warning",
    "pixel_size_warnings",
    "grid_shape",
    "resample_weights",
    "area_resample",
    "ImageFile",
    "read_image",
    "tiff_pixel_size",
]

#: Percentiles of the whole stack mapped to gray levels 0 and 255 for non-uint8 input.
RESCALE_PERCENTILES = (0.5, 99.5)
#: Values sampled (uniformly, every k-th) to estimate the percentiles of a large stack.
PERCENTILE_SAMPLE = 10_000_000
#: A slice whose standard deviation is below this many gray levels (of 255) is near-constant.
MIN_STD = 2.0
#: A slice whose lag-1 autocorrelation is below this is noise-like (white noise: 0).
MIN_AUTOCORR = 0.3
#: A predicted porosity above this suggests inverted contrast (the training rocks: <= 0.3).
MAX_POROSITY = 0.6
#: Pixel sizes more than this factor coarser than the training images' are warned about.
PIXEL_RATIO = 2.0
#: Smallest side (px) of an input image of any kind.
MIN_INPUT_SIDE = 8


class ImageError(ValueError):
    """An input image that cannot be used as it is; the message says what to do."""


class ImageWarning(UserWarning):
    """An input image that is used, but may not be what the networks were trained on."""


# -- shape and dtype -----------------------------------------------------------------


def as_stack(images, name: str = "images") -> np.ndarray:
    """A 2D image (H, W) or 3D stack (N, H, W) as a stack (N, H, W), values untouched.

    Parameters
    ----------
    images : array_like
        Grayscale image or stack, any real dtype (memory-mapped arrays stay so).
    name : str
        What to call the input in error messages (a file name, an argument).

    Returns
    -------
    ndarray (N, H, W)
        A view of ``images`` (a new leading axis for a 2D image).

    Raises
    ------
    ImageError
        For RGB(A) images, 4D or 1D arrays, empty arrays, boolean, complex or
        non-numeric dtypes, NaN or infinite values, sides under 8 px.
    """
    a = images if isinstance(images, np.ndarray) else np.asarray(images)
    shape = a.shape
    if a.ndim == 3 and shape[-1] in (3, 4) and min(shape[:2]) >= MIN_INPUT_SIDE:
        raise ImageError(
            f"{name} has shape {shape}: an RGB{'A' if shape[-1] == 4 else ''} image (H, W, "
            f"{shape[-1]}), not a stack of {shape[0]} slices. Convert it to grayscale first "
            f"(e.g. skimage.color.rgb2gray), or pass one channel (image[..., 0])")
    if a.ndim == 4:
        what = "a stack of RGB(A) images" if shape[-1] in (3, 4) else "a 4D array"
        raise ImageError(f"{name} has shape {shape}: {what}. Pass a 2D grayscale image (H, W) "
                         f"or a 3D stack of grayscale slices (N, H, W)")
    if a.ndim not in (2, 3):
        raise ImageError(f"{name} has shape {shape} ({a.ndim}D): pass a 2D grayscale image "
                         f"(H, W) or a 3D stack of grayscale slices (N, H, W)")
    if a.size == 0:
        raise ImageError(f"{name} is empty (shape {shape})")
    if a.dtype == bool:
        raise ImageError(f"{name} is a boolean array (a mask?): pass the grayscale scan")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"{name} has dtype {a.dtype}: pass real-valued gray levels "
                         f"(uint8, uint16, int or float)")
    stack = a[None] if a.ndim == 2 else a
    if min(stack.shape[1:]) < MIN_INPUT_SIDE:
        raise ImageError(f"{name}: slices of {stack.shape[1]} x {stack.shape[2]} px are too "
                         f"small (at least {MIN_INPUT_SIDE} px a side); is the shape "
                         f"{shape} in the right order (N, H, W)?")
    if np.issubdtype(a.dtype, np.floating):
        bad = [k for k, s in enumerate(stack) if not np.isfinite(s).all()]
        if bad:
            raise ImageError(f"{name} has NaN or infinite values in {len(bad)} slice(s), "
                             f"first {bad[:5]}: replace them (e.g. numpy.nan_to_num) or crop "
                             f"them away")
    return stack


def intensity_range(stack: np.ndarray) -> tuple[float, float] | None:
    """The gray values mapped to 0 and 255: ``None`` for uint8, else robust percentiles.

    The :data:`RESCALE_PERCENTILES` (0.5th and 99.5th) of the whole stack, from
    every k-th value when it holds more than :data:`PERCENTILE_SAMPLE` values
    (k the smallest that brings the sample under that), so a few hot or dead
    pixels do not set the range.

    >>> intensity_range(np.arange(1001, dtype=np.uint16).reshape(1, 7, 143))
    (5.0, 995.0)
    """
    if stack.dtype == np.uint8:
        return None
    flat = stack.reshape(-1)
    step = max(1, -(-flat.size // PERCENTILE_SAMPLE))
    lo, hi = np.percentile(flat[::step], RESCALE_PERCENTILES)
    return float(lo), float(hi)


def to_uint8(images: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """Gray values mapped linearly so that ``value_range`` becomes 0..255, clipped, rounded.

    ``value_range`` ``None`` leaves uint8 as it is (other dtypes: clipped to
    0..255 and rounded). A range of zero width maps everything to 0.

    >>> to_uint8(np.array([0.0, 5.0, 10.0, 20.0]), (0.0, 10.0)).tolist()
    [0, 128, 255, 255]
    """
    if value_range is None:
        if images.dtype == np.uint8:
            return images
        return np.clip(np.rint(images), 0, 255).astype(np.uint8)
    lo, hi = value_range
    x = np.asarray(images, dtype=np.float64) - lo
    x *= 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def rescale_message(name: str, dtype, value_range: tuple[float, float]) -> str:
    """The warning that says how a non-uint8 input was rescaled (:func:`intensity_range`)."""
    lo, hi = value_range
    return (f"{name} is {dtype}, not uint8: gray values rescaled linearly, the "
            f"{RESCALE_PERCENTILES[0]}th percentile ({lo:.6g}) to 0 and the "
            f"{RESCALE_PERCENTILES[1]}th ({hi:.6g}) to 255, clipped outside. Pass uint8 "
            f"scaled your own way to avoid this")


def as_uint8_stack(images, name: str = "images", *, quality: bool = True
                   ) -> tuple[np.ndarray, dict]:
    """Checked uint8 stack (N, H, W) of grayscale input, with the checks' findings.

    :func:`as_stack`, then :func:`intensity_range` / :func:`to_uint8` for
    other dtypes than uint8 (warned), then, with ``quality``, the
    near-constant and noise checks of :func:`quality_warnings` (warned).

    Returns
    -------
    stack : ndarray (N, H, W) uint8
    info : dict
        ``value_range`` (the rescaling's input range, or ``None``) and
        ``warnings`` (the messages issued as :class:`ImageWarning`).
    """
    stack = as_stack(images, name)
    value_range = intensity_range(stack)
    messages = []
    if value_range is not None:
        messages.append(rescale_message(name, stack.dtype, value_range))
        stack = to_uint8(stack, value_range)
    if quality:
        messages += quality_warnings(image_stats(stack), name)
    for m in messages:
        warnings.warn(m, ImageWarning, stacklevel=2)
    return stack, {"value_range": value_range, "warnings": messages}


def check_side(stack: np.ndarray, multiple: int, name: str = "images",
               hint: str = "") -> None:
    """Refuse slices whose sides are not multiples of ``multiple`` px (and at least that).

    ``hint`` is added to the message (what else the caller could do).
    """
    h, w = stack.shape[-2:]
    if h < multiple or w < multiple:
        raise ImageError(f"{name}: slices of {h} x {w} px are too small for this network "
                         f"(at least {multiple} x {multiple} px).{hint}")
    if h % multiple or w % multiple:
        raise ImageError(f"{name}: slice sides H, W = {h}, {w} must be multiples of "
                         f"{multiple} for this network: crop or pad them.{hint}")


# -- quality -------------------------------------------------------------------------


def lag1_autocorrelation(image: np.ndarray) -> float:
    """Correlation of each pixel with its right and lower neighbours (mean of the two).

    1 for a smooth image, near 0 for white noise, -1 for a checkerboard; NaN
    for a constant image.

    >>> lag1_autocorrelation(np.indices((4, 4)).sum(0) % 2)
    -1.0
    """
    x = np.asarray(image, dtype=np.float64)
    x = x - x.mean()
    var = float((x * x).mean())
    if var == 0:
        return math.nan
    across = float((x[:, 1:] * x[:, :-1]).mean())
    down = float((x[1:, :] * x[:-1, :]).mean())
    return (across + down) / (2 * var)


def image_stats(stack: np.ndarray) -> dict[str, np.ndarray]:
    """Per slice of a uint8 stack (N, H, W): ``std`` (gray levels) and ``autocorr`` (lag 1)."""
    return {
        "std": np.array([float(np.std(s, dtype=np.float64)) for s in stack]),
        "autocorr": np.array([lag1_autocorrelation(s) for s in stack]),
    }


def _slices(idx: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:5]) + (", ..." if len(idx) > 5 else "")
    return f"slice {shown}" if len(idx) == 1 else f"{len(idx)} slices ({shown})"


def quality_warnings(stats: dict[str, np.ndarray], name: str = "images") -> list[str]:
    """Messages for near-constant and noise-like slices (:func:`image_stats` of uint8 slices).

    Near-constant: standard deviation below :data:`MIN_STD` gray levels.
    Noise-like: lag-1 autocorrelation below :data:`MIN_AUTOCORR` (and not
    near-constant).
    """
    std, r1 = stats["std"], stats["autocorr"]
    flat = np.flatnonzero(std < MIN_STD)
    noisy = np.flatnonzero((std >= MIN_STD) & (r1 < MIN_AUTOCORR))
    out = []
    if len(flat):
        out.append(f"{name}: {_slices(flat)} near-constant (standard deviation "
                   f"{std[flat].min():.3g} gray levels, below {MIN_STD}): nothing to segment; "
                   f"a blank slice, or a mask passed instead of the scan?")
    if len(noisy):
        out.append(f"{name}: {_slices(noisy)} look like noise (correlation of neighbouring "
                   f"pixels {np.nanmin(r1[noisy]):.2f}, below {MIN_AUTOCORR}; a CT slice of "
                   f"sandstone at the networks' pixel size is far above): check the file "
                   f"reading (--shape, --dtype, byte order) and the pixel size")
    return out


def contrast_warning(gray: np.ndarray, mask: np.ndarray, name: str = "images") -> str | None:
    """A message when pores look brighter than grains in gray slices and their predicted masks.

    Flagged when the predicted porosity (share of 0 = pore in ``mask``) is
    above :data:`MAX_POROSITY`, or the mean gray level of the predicted pores
    exceeds that of the predicted grains. ``None`` otherwise.
    """
    gray = np.asarray(gray)
    solid = np.asarray(mask).astype(bool)
    phi = 1.0 - float(solid.mean())
    pore_mean = float(gray[~solid].mean()) if (~solid).any() else math.nan
    grain_mean = float(gray[solid].mean()) if solid.any() else math.nan
    if phi > MAX_POROSITY or pore_mean > grain_mean:
        grays = (f"mean gray of the predicted pores {pore_mean:.0f}, of the grains "
                 f"{grain_mean:.0f}" if np.isfinite(pore_mean + grain_mean) else
                 "no grains predicted" if np.isfinite(pore_mean) else "no pores predicted")
        return (f"{name}: predicted porosity {phi:.2f}, {grays}: the contrast may be inverted "
                f"(the networks were trained on dark pores and bright grains, porosity up to "
                f"about 0.3). If pores are bright in your scan, rerun with --invert (or pass "
                f"255 - gray)")
    return None


def pixel_size_warnings(pixel_um: float, trained_um: float, native_um: float | None,
                        name: str = "images") -> list[str]:
    """Messages when a pixel size is far from what the networks were trained on.

    Coarser than :data:`PIXEL_RATIO` x the training images' ``trained_um``:
    the images are up-sampled and the detail the network learned from is
    missing. Finer than the training scans' ``native_um`` / :data:`PIXEL_RATIO`:
    the images are reduced much more than the training scans were, so they
    carry less noise and blur (a reduction from ``native_um`` itself is what
    made the training images).
    """
    out = []
    if pixel_um > PIXEL_RATIO * trained_um:
        out.append(f"{name}: pixels of {pixel_um:.4g} um are {pixel_um / trained_um:.2f} x "
                   f"coarser than the training images' {trained_um:.4g} um: the slices are "
                   f"up-sampled and lack the detail the networks saw; treat the results as "
                   f"rough")
    limit = (native_um if native_um else trained_um) / PIXEL_RATIO
    if pixel_um < limit:
        out.append(f"{name}: pixels of {pixel_um:.4g} um are much finer than the training "
                   f"scans' {native_um or trained_um:.4g} um: reduced by area averaging to "
                   f"{trained_um:.4g} um they are smoother and less noisy than the training "
                   f"images; check a few slices against a segmentation you trust")
    return out


# -- resampling ----------------------------------------------------------------------


def grid_shape(shape: tuple[int, int], pixel_um: tuple[float, float], target_um: float
               ) -> tuple[int, int]:
    """Sides (px) of the same field of view at ``target_um``: ``max(1, round(n * p / target))``.

    >>> grid_shape((1000, 1000), (2.25, 2.25), 2.25 * 1000 / 256)
    (256, 256)
    """
    return tuple(max(1, round(n * p / target_um)) for n, p in zip(shape, pixel_um, strict=True))


def resample_weights(n_in: int, n_out: int) -> np.ndarray:
    """Exact area weights (n_out, n_in) from ``n_in`` to ``n_out`` pixels over the same length.

    ``R[i, j]`` is the share of output pixel i's length covered by input pixel
    j; rows sum to one. Down (``n_out <= n_in``): the area average of
    :func:`dmtnn.data.resample.area_weights`. Up: each output pixel takes the
    input pixels it overlaps, weighted by overlap (piecewise constant, no
    interpolation).

    >>> resample_weights(2, 3).round(12).tolist()
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    if n_out <= n_in:
        return area_weights(n_in, n_out)
    return area_weights(n_out, n_in).T * (n_out / n_in)


def area_resample(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample image(s) (..., H, W) to (..., h, w) by exact area weights, as float64.

    Each output pixel is the mean of the input over its area (fractional
    weights at pixel edges), for any ratio, non-integer ratios included:
    ``R_rows @ image @ R_cols.T`` with :func:`resample_weights`. The mean gray
    level is preserved.
    """
    x = np.asarray(images, dtype=np.float64)
    rows = resample_weights(x.shape[-2], shape[0])
    cols = resample_weights(x.shape[-1], shape[1])
    return rows @ x @ cols.T


# -- files ---------------------------------------------------------------------------

#: Length units of TIFF / ImageJ metadata, in micrometres.
_UNITS_UM = {"um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0,
             "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
#: TIFF ResolutionUnit codes that are physical lengths (in um): cm, mm, um.
_RESUNIT_UM = {3: 1e4, 4: 1e3, 5: 1.0}


@dataclass
class ImageFile:
    """An input image read from disk.

    Attributes
    ----------
    array : ndarray
        As stored (2D or 3D, any dtype; memory-mapped for .npy and raw files).
    path : Path
    kind : {"tiff", "npy", "raw"}
    pixel_um : tuple of float or None
        Pixel size (y, x) in micrometres found in the file's metadata.
    pixel_source : str
        Where ``pixel_um`` came from, or why none was found.
    spacing_um : float or None
        Slice spacing from ImageJ metadata, if any.
    notes : list of str
        What was read or ignored.
    """

    array: np.ndarray
    path: Path
    kind: str
    pixel_um: tuple[float, float] | None = None
    pixel_source: str = "none in the file"
    spacing_um: float | None = None
    notes: list[str] = field(default_factory=list)


def tiff_pixel_size(tif: tifffile.TiffFile) -> tuple[tuple[float, float] | None, str,
                                                         float | None]:
    """Pixel size (y, x) um of an open TIFF, where it came from, and the ImageJ slice spacing.

    Rule: ImageJ metadata with a length ``unit`` (micron, um, nm, mm, ...)
    and the X/YResolution tags (pixels per unit); else the resolution tags
    with ResolutionUnit centimetre, millimetre or micrometre. Resolution in
    dots per inch (the TIFF default, e.g. 72 dpi) is a display setting, not a
    voxel size, and is ignored.
    """
    page = tif.pages[0]
    tags = page.tags
    ij = tif.imagej_metadata or {}
    if "XResolution" not in tags or "YResolution" not in tags:
        return None, "no resolution tags in the TIFF", None
    xnum, xden = tags["XResolution"].value
    ynum, yden = tags["YResolution"].value
    if not (xnum and ynum and xden and yden):
        return None, "zero resolution in the TIFF", None
    per_x, per_y = xnum / xden, ynum / yden  # pixels per unit
    unit = str(ij.get("unit", "")).strip()
    spacing = ij.get("spacing")
    if unit.lower() in _UNITS_UM:
        f = _UNITS_UM[unit.lower()]
        sp = float(spacing) * f if spacing else None
        return (f / per_y, f / per_x), f"TIFF ImageJ metadata (unit {unit!r}, X/YResolution)", sp
    code = int(page.resolutionunit)
    if code in _RESUNIT_UM:
        f = _RESUNIT_UM[code]
        return ((f / per_y, f / per_x),
                f"TIFF resolution tags ({tifffile.RESUNIT(code).name.lower()})", None)
    why = ("resolution in dots per inch (a display setting), ignored" if code == 2
           else "resolution without a unit, ignored")
    return None, f"TIFF {why}", None


def read_image(path: str | os.PathLike, *, shape: tuple[int, ...] | None = None,
               dtype: str | None = None) -> ImageFile:
    """Read a 2D image or 3D stack: TIFF, NumPy ``.npy``, or headerless raw.

    Parameters
    ----------
    path : path
        ``.tif``/``.tiff`` (tifffile; the first series), ``.npy``
        (memory-mapped), anything else is read as headerless raw.
    shape : tuple of int, optional
        Raw files only (required): (H, W) or (N, H, W), C order.
    dtype : str, optional
        Raw files only (required): a NumPy dtype such as ``uint8``, ``uint16``,
        ``<u2`` (little-endian), ``>f4`` (big-endian float32).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ImageError
        If the file cannot be read as an image, or a raw file's size does not
        match ``shape`` x ``dtype``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist (or is not a file)")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        if shape is not None or dtype is not None:
            raise ImageError(f"{path.name}: --shape and --dtype are for headerless raw files; "
                             f"a TIFF says its own")
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                if "S" in series.axes:
                    raise ImageError(
                        f"{path.name} holds colour samples (axes {series.axes}, shape "
                        f"{series.shape}): an RGB image. Convert it to grayscale first "
                        f"(e.g. skimage.color.rgb2gray, or ImageJ Image > Type > 8-bit)")
                array = series.asarray()
                pixel, source, spacing = tiff_pixel_size(tif)
        except ImageError:
            raise
        except (tifffile.TiffFileError, ValueError, OSError) as err:
            raise ImageError(f"{path.name} cannot be read as a TIFF ({err})") from err
        return ImageFile(array, path, "tiff", pixel, source, spacing)
    if suffix == ".npy":
        if shape is not None or dtype is not None:
            raise ImageError(f"{path.name}: --shape and --dtype are for headerless raw files; "
                             f"a .npy file says its own")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ImageError(f"{path.name} cannot be read as a NumPy .npy file ({err})") from err
        return ImageFile(array, path, "npy")
    if shape is None or dtype is None:
        raise ImageError(f"{path.name} is read as a headerless raw file: give its --shape "
                         f"(e.g. 100,1000,1000 for N, H, W) and --dtype (e.g. uint16, or <u2 / "
                         f">u2 for a byte order)")
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ImageError(f"--dtype {dtype!r} is not a NumPy dtype (e.g. uint8, uint16, <u2, "
                         f"float32)") from err
    expected = math.prod(shape) * dt.itemsize
    size = path.stat().st_size
    if size != expected:
        raise ImageError(f"{path.name} has {size} bytes, but --shape {tuple(shape)} x --dtype "
                         f"{dt} needs {expected}: check both (a header? then strip it first)")
    return ImageFile(np.memmap(path, dtype=dt, mode="r", shape=tuple(shape)), path, "raw")
