"""Small real binary Berea volumes, for tests and real-geometry checks.

They live outside the repository (``../shared/data/real`` beside the
checkout, or ``$DMTNN_REAL_DATA``) and are never copied into it. A user's
machine will not have them: :func:`available` says which are present and
:func:`load_real` raises :class:`RealDataMissing` with the path it looked at.

=========  ==========================  =========  ========  =====================
name       file                        shape      voxel um  source
=========  ==========================  =========  ========  =====================
ibm_100    berea_ibm_100/binary_image  100^3      2.25      IBM flowdiscovery (likely a corner of the portal's Berea)
dpm_110    berea_dpm_110/berea_pore    110^3      unknown   UT Austin dpm_tools
icl_400    berea_icl_400/berea.zip     400^3      5.345     Imperial College (Dong & Blunt 2009)
=========  ==========================  =========  ========  =====================

:func:`real_windows` cuts a volume into the run's images (and images them with
the CT model); :mod:`dmtnn.data.fem_labels` labels those windows by FEM.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from dmtnn.artifacts import repo_root
from dmtnn.config import Config
from dmtnn.data import ct
from dmtnn.data.drp import open_volume
from dmtnn.data.resample import reduce_binary, reduce_gray, square_tiles
from dmtnn.data.synthetic import PORE, QUARTZ

__all__ = [
    "RealVolume",
    "REAL_VOLUMES",
    "RealDataMissing",
    "real_root",
    "available",
    "load_real",
    "real_slices",
    "real_windows",
]

ENV_VAR = "DMTNN_REAL_DATA"


class RealDataMissing(FileNotFoundError):
    """A real volume is not on this machine."""


@dataclass(frozen=True)
class RealVolume:
    """One real binary volume: its file under the real-data root, shape, voxel size and source."""

    name: str
    path: str  # relative to the real-data root
    shape: tuple[int, int, int]
    voxel_um: float | None
    grain_value: int  # value of grain voxels in the file; pore is 0
    source: str


REAL_VOLUMES: dict[str, RealVolume] = {
    v.name: v
    for v in (
        RealVolume("ibm_100", "berea_ibm_100/binary_image.raw", (100, 100, 100), 2.25, 1,
                   "IBM flowdiscovery-simulator; likely the [0:100]^3 corner of the portal Berea"),
        RealVolume("dpm_110", "berea_dpm_110/berea_pore.raw", (110, 110, 110), None, 1,
                   "UT Austin dpm_tools (voxel size not stated)"),
        RealVolume("icl_400", "berea_icl_400/berea.zip", (400, 400, 400), 5.345, 255,
                   "Imperial College pore-scale group, Berea (Dong & Blunt 2009)"),
    )
}


def real_root() -> Path:
    """``$DMTNN_REAL_DATA``, else ``shared/data/real`` beside the repository checkout."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    repo = repo_root() or repo_root(Path(__file__).parent)
    base = repo.parent if repo is not None else Path.cwd()
    return base / "shared" / "data" / "real"


def available() -> list[str]:
    """Names of the real volumes present on this machine."""
    root = real_root()
    return [name for name, v in REAL_VOLUMES.items() if (root / v.path).is_file()]


def load_real(name: str) -> tuple[np.ndarray, float | None]:
    """Load a real binary volume as uint8 (1 = grain, 0 = pore) and its voxel size in um.

    Raises
    ------
    RealDataMissing
        If the file is not on this machine.
    ValueError
        If the name is unknown or the file holds unexpected values.
    """
    if name not in REAL_VOLUMES:
        raise ValueError(f"unknown real volume {name!r}; known: {', '.join(REAL_VOLUMES)}")
    v = REAL_VOLUMES[name]
    path = real_root() / v.path
    if not path.is_file():
        raise RealDataMissing(
            f"real volume {name} not found at {path} (set ${ENV_VAR} to the folder holding "
            f"{', '.join(sorted({p.path.split('/')[0] for p in REAL_VOLUMES.values()}))})"
        )
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            member = next(n for n in zf.namelist() if n.lower().endswith((".tif", ".tiff")))
            volume = tifffile.imread(io.BytesIO(zf.read(member)))
    else:
        volume = np.asarray(open_volume(path, v.shape))
    if volume.shape != v.shape:
        raise ValueError(f"{path}: expected shape {v.shape}, found {volume.shape}")
    values = np.unique(volume)
    if not np.isin(values, (0, v.grain_value)).all():
        raise ValueError(f"{path}: expected values 0 and {v.grain_value}, found {values[:10]}")
    return (volume == v.grain_value).astype(np.uint8), v.voxel_um


def real_slices(name: str, pixel_um: float, *, every: int = 1) -> np.ndarray:
    """Slices (along axis 0) of a real volume reduced to ``pixel_um`` by area fraction.

    Parameters
    ----------
    name : str
        A key of :data:`REAL_VOLUMES` with a known voxel size.
    pixel_um : float
        Target pixel size, e.g. the paper's 8.79 um; must not be finer than
        the volume's voxels.
    every : int
        Take every ``every``-th slice.
    """
    volume, voxel = load_real(name)
    if voxel is None:
        raise ValueError(f"real volume {name} has no known voxel size; cannot rescale it")
    size = round(volume.shape[1] * voxel / pixel_um)
    if size > volume.shape[1]:
        raise ValueError(f"{name}: {pixel_um} um pixels are finer than its {voxel} um voxels")
    return reduce_binary(volume[::every], size)


def real_windows(cfg: Config, name: str, n_images: int, gray: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Windows of a real binary volume at the run's pixel and image size (and their gray).

    Slices spread through the volume are reduced to ``cfg.data.pixel_um`` and
    cut into non-overlapping ``image_size`` windows. With ``gray``, each slice
    is also imaged by the CT forward model at the volume's voxel size (grain
    as quartz, pore as pore; seeded per slice) and area-averaged the same way.

    Returns the binary windows (N, S, S) uint8, 1 = grain, and their gray
    (N, S, S) uint8, or ``None`` without ``gray``.
    """
    s = cfg.data.image_size
    volume = REAL_VOLUMES[name]
    if volume.voxel_um is None:
        raise ValueError(f"real volume {name} has no known voxel size")
    side = round(volume.shape[1] * volume.voxel_um / cfg.data.pixel_um)
    per = (side // s) ** 2
    if per == 0:
        raise ValueError(f"{name}: slices of {side} px are smaller than {s} px images")
    every = max(1, volume.shape[0] // -(-n_images // per))  # just enough slices, spread out
    binary = square_tiles(real_slices(name, cfg.data.pixel_um, every=every), s)[:n_images]
    if not gray:
        return binary, None
    native, voxel = load_real(name)
    grays = []
    for k, solid in enumerate(native[::every]):
        phases = np.where(solid == 1, QUARTZ, PORE).astype(np.uint8)
        rng = np.random.default_rng([cfg.data.seed, k])
        image = ct.forward(phases, voxel, depth=k * every / len(native), rng=rng)
        grays.append(np.rint(reduce_gray(image[None], side)[0]).astype(np.uint8))
    return binary, square_tiles(np.stack(grays), s)[:n_images]
