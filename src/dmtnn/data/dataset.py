"""The dataset: slices, threshold labels and the train / validation / test split.

Each rock gives a stack of consecutive slices. Adjacent slices of a micro-CT
volume are nearly identical, so a random slice-level split would put
near-copies of test images into training. We split every training rock into
contiguous slabs along the slicing axis instead::

    [ train ........ | gap | val | gap | test ]

with ``gap_slices`` slices dropped between slabs. Held-out and unseen rocks
give test slices only (split ``"heldout"``).

Per rock the builder stores ``gray`` (uint8), ``label`` (threshold
segmentation, 1 = grain), ``truth`` (synthetic rocks only: the true geometry),
``z_um`` and ``split`` in ``artifacts/<profile>/data/<prefix>.npz``; the
manifest keeps the configuration key, so a changed configuration rebuilds
the rock and a finished rock survives a killed build.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import lru_cache
from multiprocessing import get_context

import numpy as np
import pandas as pd
from tqdm import tqdm

from dmtnn.artifacts import store_for
from dmtnn.config import Config, DataConfig, config_hash
from dmtnn.data import ct, drp, synthetic
from dmtnn.data.resample import reduce_binary, reduce_gray
from dmtnn.data.threshold import otsu_threshold
from dmtnn.metrics import pixel_accuracy
from dmtnn.morphology import porosity
from dmtnn.rocks import get_rock
from dmtnn.settings import show_progress

__all__ = [
    "SPLITS",
    "RockSlices",
    "Dataset",
    "slab_layout",
    "rock_seed",
    "rock_pack",
    "native_slices",
    "generate_rock",
    "build_dataset",
    "summary",
    "rock_key",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "heldout")
_CODE = {name: i for i, name in enumerate(SPLITS)}
THRESHOLD_SAMPLES = 8  # slices whose histogram sets a synthetic rock's Otsu threshold


@dataclass(frozen=True)
class RockSlices:
    """The slices of one rock, in slicing order."""

    rock: str
    gray: np.ndarray  # (N, S, S) uint8
    label: np.ndarray  # (N, S, S) uint8, threshold segmentation, 1 = grain
    truth: np.ndarray | None  # (N, S, S) uint8, true geometry (synthetic only)
    z_um: np.ndarray  # (N,) depth of each slice
    split: np.ndarray  # (N,) int8 index into SPLITS
    threshold: float  # gray level of the Otsu threshold (NaN for portal binaries)

    def select(self, split: str) -> np.ndarray:
        """Indices of the slices in ``split``."""
        if split not in _CODE:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.split == _CODE[split])


@dataclass(frozen=True)
class Dataset:
    """All rocks of a run, keyed by rock name."""

    config: DataConfig
    rocks: dict[str, RockSlices]

    def __getitem__(self, rock: str) -> RockSlices:
        name = get_rock(rock).name
        if name not in self.rocks:
            raise KeyError(f"rock {name!r} is not in this dataset ({', '.join(self.rocks)})")
        return self.rocks[name]

    def cube(self, rock: str, split: str = "train") -> np.ndarray:
        """Consecutive grayscale slices of ``rock`` thinned to about cubic voxels, (D, S, S).

        Slices are ``slice_spacing_um`` apart and pixels ``pixel_um`` wide; every
        k-th slice is kept so that the stack is roughly isotropic (Fig. 5).
        """
        r = self[rock]
        step = max(1, round(self.config.pixel_um / self.config.slice_spacing_um))
        idx = r.select(split)[::step][: self.config.image_size]
        return r.gray[idx]

    def split(self, split: str, rocks: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Slices of one split stacked over rocks.

        Returns a dict with ``gray``, ``label``, ``truth`` (if known), ``rock``
        (index into ``names``) and ``names``.
        """
        names = list(self.rocks) if rocks is None else [get_rock(r).name for r in rocks]
        parts = [(i, self[n], self[n].select(split)) for i, n in enumerate(names)]
        parts = [(i, r, idx) for i, r, idx in parts if len(idx)]
        if not parts:
            raise ValueError(f"split {split!r} is empty for rocks {names}")
        out = {
            "gray": np.concatenate([r.gray[idx] for _, r, idx in parts]),
            "label": np.concatenate([r.label[idx] for _, r, idx in parts]),
            "rock": np.concatenate([np.full(len(idx), i) for i, _, idx in parts]),
            "names": np.array(names),
        }
        if all(r.truth is not None for _, r, _ in parts):
            out["truth"] = np.concatenate([r.truth[idx] for _, r, idx in parts])
        return out


def slab_layout(
    n: int, val_fraction: float, test_fraction: float, gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Slice positions and split codes of one training rock.

    >>> pos, split = slab_layout(12, 1 / 6, 1 / 6, 1)
    >>> pos.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13]
    >>> split.tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
    """
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    pos = np.concatenate(
        [
            np.arange(n_train),
            n_train + gap + np.arange(n_val),
            n_train + n_val + 2 * gap + np.arange(n_test),
        ]
    )
    split = np.repeat(np.array([0, 1, 2], dtype=np.int8), [n_train, n_val, n_test])
    return pos, split


def _layout(cfg: DataConfig, rock: str) -> tuple[np.ndarray, np.ndarray]:
    if get_rock(rock).name in {get_rock(r).name for r in cfg.train_rocks}:
        return slab_layout(cfg.slices_per_rock, cfg.val_fraction, cfg.test_fraction,
                           cfg.gap_slices)
    n = cfg.heldout_slices_per_rock
    return np.arange(n), np.full(n, _CODE["heldout"], dtype=np.int8)


def rock_seed(cfg: DataConfig, rock: str, *purpose: int) -> np.random.SeedSequence:
    """Independent, reproducible random stream per rock and purpose."""
    return np.random.SeedSequence(
        cfg.seed, spawn_key=(zlib.crc32(get_rock(rock).prefix.encode()), *purpose)
    )


def _box(cfg: DataConfig, n_positions: int, field_px: int) -> tuple[float, float, float]:
    field = field_px * cfg.native_pixel_um
    return (n_positions * cfg.slice_spacing_um, field, field)


@lru_cache(maxsize=4)
def rock_pack(cfg: DataConfig, rock: str) -> synthetic.GrainPack:
    """The synthetic rock behind the dataset's slices of ``rock``.

    Packs are rebuilt on demand (seconds) rather than stored: they are fully
    determined by the configuration and the seed.
    """
    pos, _ = _layout(cfg, rock)
    box = _box(cfg, int(pos.max()) + 1, cfg.native_size)
    return synthetic.make_pack(rock, box, seed=rock_seed(cfg, rock, 0))


def _render_gray(
    pack: synthetic.GrainPack, cfg: DataConfig, rock: str, z: float, size: int, stream: tuple
) -> tuple[np.ndarray, np.ndarray]:
    """Native phase map and CT grayscale of one slice; ``stream`` seeds its noise."""
    phases = synthetic.render_phases(pack, z, size, cfg.native_pixel_um)
    rng = np.random.default_rng(rock_seed(cfg, rock, *stream))
    gray = ct.forward(phases, cfg.native_pixel_um, depth=z / pack.box_um[0], rng=rng)
    return phases, gray


def _threshold(pack, cfg: DataConfig, rock: str, size: int, n_positions: int) -> float:
    """Otsu threshold of the denoised gray of a few slices spread through the stack."""
    sample = np.linspace(0, n_positions - 1, THRESHOLD_SAMPLES).round().astype(int)
    grays = [
        _render_gray(pack, cfg, rock, (i + 0.5) * cfg.slice_spacing_um, size, (1, int(i)))[1]
        for i in sample
    ]
    return otsu_threshold(ct.denoise(np.stack(grays)))


def generate_rock(cfg: DataConfig, rock: str) -> dict[str, np.ndarray]:
    """Render one synthetic rock's slices: gray, label, truth, z_um, split, threshold."""
    rock = get_rock(rock).name
    pos, split = _layout(cfg, rock)
    pack = rock_pack(cfg, rock)
    size = cfg.native_size
    threshold = _threshold(pack, cfg, rock, size, int(pos.max()) + 1)
    n, s = len(pos), cfg.image_size
    gray = np.empty((n, s, s), np.uint8)
    label = np.empty((n, s, s), np.uint8)
    truth = np.empty((n, s, s), np.uint8)
    z = (pos + 0.5) * cfg.slice_spacing_um
    for k, (i, zk) in enumerate(zip(pos, z, strict=True)):
        phases, native = _render_gray(pack, cfg, rock, zk, size, (1, int(i)))
        gray[k] = np.clip(np.rint(reduce_gray(native, s)), 0, 255)
        label[k] = reduce_binary((ct.denoise(native) > threshold).astype(np.uint8), s)
        truth[k] = reduce_binary((phases != synthetic.PORE).astype(np.uint8), s)
    return {
        "gray": gray,
        "label": label,
        "truth": truth,
        "z_um": z.astype(np.float32),
        "split": split,
        "threshold": np.float64(threshold),
    }


def read_drp_rock(cfg: DataConfig, rock: str) -> dict[str, np.ndarray]:
    """One rock from the portal files: gray, label, z_um, split.

    Slices are ``cfg.slice_spacing_um`` apart, as on synthetic rocks: every
    k-th voxel plane, k = spacing / voxel size (a whole number).
    """
    pos, split = _layout(cfg, rock)
    step = cfg.slice_spacing_um / cfg.native_pixel_um
    if step < 1 or abs(step - round(step)) > 1e-6:
        raise ValueError(
            f"data.slice_spacing_um={cfg.slice_spacing_um} must be a whole multiple of the "
            f"portal's {cfg.native_pixel_um} um voxels to read {rock} from its files")
    planes = pos * round(step)
    slices = drp.load_rock_slices(
        rock, planes, root=cfg.data_root, image_size=cfg.image_size,
        native_size=cfg.native_size, axis=cfg.axis, shape=cfg.drp_shape,
    )
    return {
        **slices,
        "z_um": (planes * cfg.native_pixel_um).astype(np.float32),
        "split": split,
        "threshold": np.float64(np.nan),
    }


def native_slices(
    cfg: DataConfig, rock: str, n: int, size: int, purpose: str = "rev"
) -> dict[str, np.ndarray]:
    """Native-resolution slices of a separate sample of a synthetic rock.

    Used where the network's images are too small, e.g. the REV study of
    windows up to 1000 px. Slices are ``2 * d50`` apart so they are nearly
    independent.

    Returns ``gray``, ``label`` (Otsu threshold of the denoised gray, as for
    the dataset) and ``truth``, each (n, size, size) uint8, and ``pixel_um``.
    """
    rock = get_rock(rock).name
    spacing = 2 * synthetic.TEXTURES[rock].d50_um
    box = (n * spacing, size * cfg.native_pixel_um, size * cfg.native_pixel_um)
    pack = synthetic.make_pack(rock, box, seed=rock_seed(cfg, rock, 2, zlib.crc32(purpose.encode())))
    phases, gray = zip(*(_render_gray(pack, cfg, rock, (i + 0.5) * spacing, size, (3, i))
                         for i in range(n)), strict=True)
    gray = np.stack(gray)
    filtered = ct.denoise(gray)
    return {
        "gray": gray,
        "label": (filtered > otsu_threshold(filtered)).astype(np.uint8),
        "truth": (np.stack(phases) != synthetic.PORE).astype(np.uint8),
        "pixel_um": cfg.native_pixel_um,
    }


def rock_key(cfg: DataConfig, rock: str) -> str:
    """Cache key of one rock's slices: changes whenever anything that makes them changes."""
    fields = asdict(cfg)
    for unused in ("workers", "train_rocks", "heldout_rocks", "unseen_rocks"):
        fields.pop(unused)
    is_train = get_rock(rock).name in {get_rock(r).name for r in cfg.train_rocks}
    extra: list = [get_rock(rock).name, is_train]
    if cfg.source == "synthetic":
        extra += synthetic_fingerprint(rock)
    return config_hash(fields, *extra)


def synthetic_fingerprint(rock: str) -> list:
    """What, besides the config, decides a synthetic rock's images (for cache keys)."""
    return [synthetic.GENERATOR_VERSION, asdict(synthetic.TEXTURES[get_rock(rock).name]),
            asdict(ct.CT_MODEL)]


def _make_rock(cfg: DataConfig, rock: str) -> dict[str, np.ndarray]:
    return generate_rock(cfg, rock) if cfg.source == "synthetic" else read_drp_rock(cfg, rock)


def _rock_file(rock: str) -> str:
    return f"data/{get_rock(rock).prefix}.npz"


def build_dataset(
    cfg: Config, *, rocks: Sequence[str] | None = None, progress: bool | None = None
) -> Dataset:
    """Load the dataset of a run, building (and caching) the rocks that are missing or stale.

    Parameters
    ----------
    cfg : Config
        The run's configuration (``cfg.data`` decides what is built).
    rocks : sequence of str, optional
        Subset of ``cfg.data.rocks``; default all.
    progress : bool, optional
        Show a progress bar; default from :mod:`dmtnn.settings`.
    """
    data = cfg.data
    names = [get_rock(r).name for r in (rocks or data.rocks)]
    store = store_for(cfg)
    keys = {r: rock_key(data, r) for r in names}
    todo = [r for r in names if store.status(_rock_file(r), keys[r]) != "ok"]
    for r in todo:
        if store.status(_rock_file(r), keys[r]) == "stale":
            log.info("%s: cached slices were made under another configuration; rebuilding", r)
    if todo:
        workers = data.workers or min(os.cpu_count() or 1, len(todo))
        bar = tqdm(total=len(todo), desc="rocks", unit="rock", disable=not show_progress(progress))
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(_make_rock, data, r): r for r in todo}
                for future in as_completed(futures):
                    r = futures[future]
                    store.save_arrays(_rock_file(r), future.result(), key=keys[r],
                                      config=asdict(data))
                    bar.set_postfix_str(r)
                    bar.update()
        else:
            for r in todo:
                bar.set_postfix_str(r)
                store.save_arrays(_rock_file(r), _make_rock(data, r), key=keys[r],
                                  config=asdict(data))
                bar.update()
        bar.close()
    slices = {}
    for r in names:
        a = store.load_arrays(_rock_file(r), key=keys[r])
        slices[r] = RockSlices(
            rock=r,
            gray=a["gray"],
            label=a["label"],
            truth=a.get("truth"),
            z_um=a["z_um"],
            split=a["split"],
            threshold=float(a["threshold"]),
        )
    return Dataset(data, slices)


def summary(dataset: Dataset) -> pd.DataFrame:
    """One row per rock: role, slices, porosities and label accuracy.

    Columns: ``rock``, ``role`` (train / held-out / unseen), ``slices``,
    ``φ target`` (segmented porosity of the portal volume), ``φ lab``
    (laboratory porosity), ``φ truth`` (synthetic only), ``φ label``
    (threshold segmentation), ``label PA`` (label vs truth pixel accuracy;
    synthetic only) and ``threshold`` (gray level).
    """
    cfg = dataset.config
    roles = {**{get_rock(r).name: "train" for r in cfg.train_rocks},
             **{get_rock(r).name: "held-out" for r in cfg.heldout_rocks},
             **{get_rock(r).name: "unseen" for r in cfg.unseen_rocks}}
    rows = []
    for name, r in dataset.rocks.items():
        rock = get_rock(name)
        known = r.truth is not None
        rows.append({
            "rock": name,
            "role": roles.get(name, "-"),
            "slices": len(r.gray),
            "φ target": rock.segmented_porosity,
            "φ lab": rock.lab_porosity,
            "φ truth": porosity(r.truth) if known else np.nan,
            "φ label": porosity(r.label),
            "label PA": pixel_accuracy(r.label, r.truth) if known else np.nan,
            "threshold": r.threshold,
        })
    return pd.DataFrame(rows)
