"""Reader for the Digital Rocks Portal "Eleven Sandstones" files.

Per rock three headerless little-endian uint8 volumes of 1000^3 voxels at
2.25 um (Neumann et al., 2020, doi:10.17612/f4h1-w124)::

    <prefix>_2d25um_grayscale.raw
    <prefix>_2d25um_grayscale_filtered.raw
    <prefix>_2d25um_binary.raw            (0 = pore, 1 = grain)

Volumes are memory-mapped: taking a few slices of a 1 GB file reads only
those slices. Sizes, dtypes and the binary value set are checked, and errors
name the file, what was expected and what was found.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dmtnn.data.resample import center_crop, reduce_binary, reduce_gray
from dmtnn.rocks import get_rock

__all__ = [
    "KINDS",
    "DRP_SHAPE",
    "data_root",
    "volume_path",
    "open_volume",
    "read_slices",
    "load_rock_slices",
]

KINDS = ("grayscale", "grayscale_filtered", "binary")
DRP_SHAPE = (1000, 1000, 1000)
ENV_VAR = "DMTNN_DATA_ROOT"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder with the portal files: ``root``, else ``$DMTNN_DATA_ROOT``."""
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise FileNotFoundError(
                f"no data root given: pass data_root=... (config data.data_root) or set "
                f"${ENV_VAR} to the folder holding the Eleven Sandstones .raw files"
            )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist or is not a folder")
    return root


def volume_path(root: str | os.PathLike | None, rock: str, kind: str = "grayscale") -> Path:
    """Path of one portal volume, e.g. ``<root>/BSG_2d25um_binary.raw``."""
    if kind not in KINDS:
        raise ValueError(f"unknown volume kind {kind!r}; choose one of {', '.join(KINDS)}")
    return data_root(root) / f"{get_rock(rock).prefix}_2d25um_{kind}.raw"


def open_volume(
    path: str | os.PathLike,
    shape: Sequence[int] = DRP_SHAPE,
    dtype: str | np.dtype = "<u1",
) -> np.memmap:
    """Memory-map a headerless raw volume after checking its size.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If its size does not match ``shape`` and ``dtype``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"volume file {path} not found")
    dtype = np.dtype(dtype)
    expected = int(np.prod(shape)) * dtype.itemsize
    found = path.stat().st_size
    if found != expected:
        raise ValueError(
            f"{path}: expected {expected} bytes ({' x '.join(map(str, shape))} voxels of "
            f"{dtype}), found {found} bytes"
        )
    return np.memmap(path, dtype=dtype, mode="r", shape=tuple(shape))


def read_slices(
    volume: np.ndarray,
    indices: Sequence[int],
    *,
    axis: int = 0,
    binary: bool = False,
    name: str = "volume",
) -> np.ndarray:
    """Read slices ``indices`` along ``axis`` into memory, (N, H, W).

    With ``binary=True`` the slices must hold only 0 and 1.
    """
    depth = volume.shape[axis]
    indices = np.asarray(indices, dtype=int)
    if indices.size and (indices.min() < 0 or indices.max() >= depth):
        raise IndexError(
            f"{name}: slice indices {indices.min()}..{indices.max()} outside 0..{depth - 1} "
            f"along axis {axis}"
        )
    slices = np.stack([np.take(volume, int(i), axis=axis) for i in indices])
    if binary:
        values = np.unique(slices)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(
                f"{name}: a binary volume must hold only 0 (pore) and 1 (grain); found values "
                f"{values[:10].tolist()}"
            )
    return slices


def load_rock_slices(
    rock: str,
    indices: Sequence[int],
    *,
    root: str | os.PathLike | None = None,
    image_size: int = 256,
    native_size: int | None = None,
    axis: int = 0,
    kind: str = "grayscale",
    shape: Sequence[int] = DRP_SHAPE,
) -> dict[str, np.ndarray]:
    """Grayscale and binary slices of one portal rock at the network's size.

    Slices of ``native_size`` (default: the whole slice) are cropped from the
    centre and reduced to ``image_size``: grayscale by area averaging,
    binary by area fraction (as the paper reduced 1000 px to 256 px).

    Returns
    -------
    dict with ``gray`` (N, S, S) uint8 and ``label`` (N, S, S) uint8 (1 = grain).
    """
    gray_path = volume_path(root, rock, kind)
    binary_path = volume_path(root, rock, "binary")
    gray = read_slices(open_volume(gray_path, shape), indices, axis=axis, name=str(gray_path))
    label = read_slices(
        open_volume(binary_path, shape), indices, axis=axis, binary=True, name=str(binary_path)
    )
    if native_size is not None:
        gray, label = center_crop(gray, native_size), center_crop(label, native_size)
    return {
        "gray": np.clip(np.rint(reduce_gray(gray, image_size)), 0, 255).astype(np.uint8),
        "label": reduce_binary(label, image_size),
    }
