"""The dataset: slices, threshold labels and the train / validation / test split.

Adjacent slices of a micro-CT volume are nearly identical, and slices closer
than a few grain diameters share grains, so a random slice-level split would
put near-copies of test images into training, and a test set of neighbouring
slices is a handful of samples, not one per slice. Every rock is therefore
laid out in depth (:func:`slab_layout`, :func:`rock_layout`): the depth is cut
into blocks, each a run of consecutive training slices followed by its share
of the validation and test *slabs* (``slab_slices`` consecutive slices each),
every slab at least ``min_separation_d50`` median grain diameters from any
slice outside it::

    [ train run | gap | test | gap | val | gap | test ] [ train run | gap | val ...

Validation slabs are spread evenly among the test slabs, so that both run
through the whole depth. Held-out and unseen rocks give test slabs only
(split ``"heldout"``). Each slab is a *cluster*, the unit a bootstrap should
resample (:func:`cluster_ids`).

On synthetic rocks each block is its own grain pack (an independent sample of
the rock, two pack margins from its neighbours in depth, so no grain is
shared), all packs of a rock calibrated together to its porosity
(:func:`rock_packs`): the cost of a rock grows with the slices rendered and
the depth their separation needs, not with the empty depth between blocks.
Portal volumes (``source="drp"``) must hold the whole layout along ``axis``;
one 1000-voxel volume holds only a few slabs two grain diameters apart, and
the error says how many.

Per rock the builder stores ``gray`` (uint8), ``label`` (threshold
segmentation, 1 = grain), ``truth`` (synthetic rocks only: the true geometry),
``z_um``, ``split`` and ``cluster`` in ``artifacts/<profile>/data/<prefix>.npz``;
the manifest keeps the configuration key, so a changed configuration (or
layout: :data:`LAYOUT_VERSION`) rebuilds the rock and a finished rock survives
a killed build.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context

import numpy as np
import pandas as pd
from tqdm import tqdm

from dmtnn.artifacts import store_for
from dmtnn.config import Config, DataConfig, config_hash
from dmtnn.data import ct, drp, synthetic
from dmtnn.data.layout import (
    _CODE,
    LAYOUT_VERSION,
    SPLITS,
    Layout,
    _gap,
    _is_train,
    cluster_ids,
    min_separation_um,
    rock_layout,
    separation_um,
    slab_layout,
)
from dmtnn.data.resample import reduce_binary, reduce_gray
from dmtnn.data.threshold import otsu_threshold
from dmtnn.metrics import pixel_accuracy
from dmtnn.morphology import porosity
from dmtnn.rocks import get_rock
from dmtnn.settings import show_progress

__all__ = [
    "RockSlices",
    "Dataset",
    "rock_seed",
    "rock_packs",
    "rock_cube",
    "native_slices",
    "generate_rock",
    "read_drp_rock",
    "build_dataset",
    "summary",
    "layout_table",
    "rock_key",
    "synthetic_fingerprint",
]

log = logging.getLogger(__name__)

THRESHOLD_SAMPLES = 8  # slices whose histogram sets a synthetic rock's Otsu threshold
CALIBRATION_SLICES = 4  # per block: slices that solve a synthetic rock's cementation factor


@dataclass(frozen=True)
class RockSlices:
    """The slices of one rock, in depth order.

    Attributes
    ----------
    rock : str
        Rock name.
    gray, label : (N, S, S) uint8
        Grayscale slices and their threshold segmentation (1 = grain).
    truth : (N, S, S) uint8 or None
        True geometry (synthetic rocks only).
    z_um : (N,) float32
        Depth of each slice, micrometres (synthetic: along the rock's column of
        blocks; portal: along ``axis``).
    split : (N,) int8
        Index into :data:`SPLITS`.
    cluster : (N,) int
        Slab of each validation, test or held-out slice, numbered in depth
        order within the rock (slices of one slab are correlated; slabs are
        ``min_separation_d50`` grain diameters apart); -1 for training slices.
    threshold : float
        Gray level of the Otsu threshold (NaN for portal binaries).
    """

    rock: str
    gray: np.ndarray
    label: np.ndarray
    truth: np.ndarray | None
    z_um: np.ndarray
    split: np.ndarray
    cluster: np.ndarray
    threshold: float

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

        The longest run of consecutive slices of ``split`` (training runs are
        one block's share of the rock's training slices), every k-th slice
        kept so that the stack is roughly isotropic (Fig. 5): slices are
        ``slice_spacing_um`` apart and pixels ``pixel_um`` wide. At most
        ``image_size`` slices.
        """
        r = self[rock]
        idx = r.select(split)
        if not len(idx):
            raise ValueError(f"rock {r.rock!r} has no {split!r} slices")
        step_um = np.diff(r.z_um[idx])
        runs = np.split(idx, np.flatnonzero(~np.isclose(step_um, self.config.slice_spacing_um)) + 1)
        run = max(runs, key=len)
        step = max(1, round(self.config.pixel_um / self.config.slice_spacing_um))
        return r.gray[run[::step][: self.config.image_size]]

    def split(self, split: str, rocks: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Slices of one split stacked over rocks.

        Returns a dict with ``gray``, ``label``, ``truth`` (if known), ``rock``
        (index into ``names``), ``names`` and ``cluster`` (slab ids unique
        across the rocks, :func:`cluster_ids`; -1 for training slices).
        """
        names = list(self.rocks) if rocks is None else [get_rock(r).name for r in rocks]
        parts = [(i, self[n], self[n].select(split)) for i, n in enumerate(names)]
        parts = [(i, r, idx) for i, r, idx in parts if len(idx)]
        if not parts:
            raise ValueError(f"split {split!r} is empty for rocks {names}")
        rock = np.concatenate([np.full(len(idx), i) for i, _, idx in parts])
        out = {
            "gray": np.concatenate([r.gray[idx] for _, r, idx in parts]),
            "label": np.concatenate([r.label[idx] for _, r, idx in parts]),
            "rock": rock,
            "names": np.array(names),
            "cluster": cluster_ids(rock, np.concatenate([r.cluster[idx] for _, r, idx in parts])),
        }
        if all(r.truth is not None for _, r, _ in parts):
            out["truth"] = np.concatenate([r.truth[idx] for _, r, idx in parts])
        return out


def rock_seed(cfg: DataConfig, rock: str, *purpose: int) -> np.random.SeedSequence:
    """Independent, reproducible random stream per rock and purpose."""
    return np.random.SeedSequence(
        cfg.seed, spawn_key=(zlib.crc32(get_rock(rock).prefix.encode()), *purpose)
    )


def _field_um(cfg: DataConfig) -> float:
    return cfg.native_size * cfg.native_pixel_um


def rock_packs(cfg: DataConfig, rock: str) -> Iterator[synthetic.GrainPack]:
    """The grain packs of synthetic ``rock``, one per block, in block order.

    Block ``b``'s box spans its slices in depth (slice ``pos`` lies at
    ``(pos - first + 0.5) * slice_spacing_um`` in the box, ``first`` the
    block's first position) and the field of view across. The packs share one
    cementation factor, solved on :data:`CALIBRATION_SLICES` slices of every
    block (:func:`dmtnn.data.synthetic.make_packs`): the rock has its target
    porosity and each block its own deviation from it. Rebuilt on demand
    (seconds), fully determined by the configuration and the seed; a generator,
    so that one block's clay field at a time is in memory.
    """
    lay, field = rock_layout(cfg, rock), _field_um(cfg)
    blocks = np.unique(lay.block)
    spans = [np.ptp(lay.pos[lay.block == b]) + 1 for b in blocks]
    return synthetic.make_packs(
        rock, [(n * cfg.slice_spacing_um, field, field) for n in spans],
        seeds=[rock_seed(cfg, rock, 0, int(b)) for b in blocks],
        calibration_slices=CALIBRATION_SLICES * len(blocks))


def rock_cube(cfg: DataConfig, rock: str) -> np.ndarray:
    """A cube of synthetic ``rock`` for 3D views (Fig. 5): (S, S, S) uint8 grayscale.

    A pack of its own (a cube of the slices' field of view, calibrated on
    itself) imaged by the CT model directly at about the network's pixel
    size, ``S = image_size`` slices as far apart as pixels are wide:
    isotropic voxels, where the dataset holds runs of slices
    ``slice_spacing_um`` apart. One pack and S small slices (seconds); not cached.
    """
    field, s = _field_um(cfg), cfg.image_size
    pack = synthetic.make_pack(rock, (field, field, field), seed=rock_seed(cfg, rock, 5))
    pixel = field / s
    rng = np.random.default_rng(rock_seed(cfg, rock, 5))
    return np.stack([ct.forward(synthetic.render_phases(pack, (i + 0.5) * pixel, s, pixel), pixel,
                                depth=(i + 0.5) / s, rng=rng) for i in range(s)])


def _render_gray(
    pack: synthetic.GrainPack, cfg: DataConfig, rock: str, z: float, depth: float, size: int,
    stream: tuple,
) -> tuple[np.ndarray, np.ndarray]:
    """Native phase map and CT grayscale of the slice at ``z`` (um) in ``pack``.

    ``depth`` (0..1) is the slice's place in the whole stack (for the CT drift),
    ``stream`` seeds its noise.
    """
    phases = synthetic.render_phases(pack, z, size, cfg.native_pixel_um)
    rng = np.random.default_rng(rock_seed(cfg, rock, *stream))
    gray = ct.forward(phases, cfg.native_pixel_um, depth=depth, rng=rng)
    return phases, gray


def generate_rock(cfg: DataConfig, rock: str) -> dict[str, np.ndarray]:
    """Render one synthetic rock's slices, one block pack at a time.

    Returns ``gray``, ``label``, ``truth`` (N, S, S) uint8, ``z_um`` (N,),
    ``split`` (N,), ``cluster`` (N,) and ``threshold``: the Otsu threshold of
    the denoised gray of :data:`THRESHOLD_SAMPLES` slices spread through the
    stack, which sets the labels (the denoised native slices wait for it in
    memory: N x native_size^2 bytes).
    """
    rock = get_rock(rock).name
    lay = rock_layout(cfg, rock)
    n, s = len(lay.pos), cfg.image_size
    depth = lay.pos / max(1, lay.pos.max())
    gray = np.empty((n, s, s), np.uint8)
    truth = np.empty((n, s, s), np.uint8)
    denoised = np.empty((n, cfg.native_size, cfg.native_size), np.uint8)
    for b, pack in zip(np.unique(lay.block), rock_packs(cfg, rock), strict=True):
        members = np.flatnonzero(lay.block == b)
        first = lay.pos[members].min()
        for k in members:
            z = (lay.pos[k] - first + 0.5) * cfg.slice_spacing_um
            phases, raw = _render_gray(pack, cfg, rock, z, depth[k], cfg.native_size,
                                       (1, int(lay.pos[k])))
            gray[k] = np.clip(np.rint(reduce_gray(raw, s)), 0, 255)
            truth[k] = reduce_binary((phases != synthetic.PORE).astype(np.uint8), s)
            denoised[k] = ct.denoise(raw)
    sample = np.linspace(0, n - 1, THRESHOLD_SAMPLES).round().astype(int)
    threshold = otsu_threshold(denoised[sample])
    label = np.stack([reduce_binary((d > threshold).astype(np.uint8), s) for d in denoised])
    return {
        "gray": gray,
        "label": label,
        "truth": truth,
        "z_um": ((lay.pos + 0.5) * cfg.slice_spacing_um).astype(np.float32),
        "split": lay.split,
        "cluster": lay.cluster,
        "threshold": np.float64(threshold),
    }


def read_drp_rock(cfg: DataConfig, rock: str) -> dict[str, np.ndarray]:
    """One rock from the portal files: gray, label, z_um, split, cluster.

    Slices are ``cfg.slice_spacing_um`` apart, as on synthetic rocks: every
    k-th voxel plane, k = spacing / voxel size (a whole number). The whole
    layout must fit along ``cfg.axis``; the error says how many slabs can.
    """
    lay = rock_layout(cfg, rock)
    step = cfg.slice_spacing_um / cfg.native_pixel_um
    if step < 1 or abs(step - round(step)) > 1e-6:
        raise ValueError(
            f"data.slice_spacing_um={cfg.slice_spacing_um} must be a whole multiple of the "
            f"portal's {cfg.native_pixel_um} um voxels to read {rock} from its files")
    planes = lay.pos * round(step)
    depth = cfg.drp_shape[cfg.axis]
    if planes.max() >= depth:
        raise ValueError(_capacity_message(cfg, rock, lay, depth, round(step)))
    slices = drp.load_rock_slices(
        rock, planes, root=cfg.data_root, image_size=cfg.image_size,
        native_size=cfg.native_size, axis=cfg.axis, shape=cfg.drp_shape,
    )
    return {
        **slices,
        "z_um": (planes * cfg.native_pixel_um).astype(np.float32),
        "split": lay.split,
        "cluster": lay.cluster,
        "threshold": np.float64(np.nan),
    }


def _capacity_message(cfg: DataConfig, rock: str, lay: Layout, depth: int, step: int) -> str:
    """Why ``rock``'s layout does not fit a portal volume, and how many slabs would."""
    counts, sep = lay.counts(), separation_um(cfg, rock)
    n_train = counts["train"]
    fits = 0
    for slabs in range(1, int(lay.cluster.max()) + 2):
        trial = slab_layout(n_train, 0, slabs * cfg.slab_slices, gap=_gap(cfg, rock),
                            blocks=cfg.blocks_per_rock, slab=cfg.slab_slices)
        if trial.pos.max() * step >= depth:
            break
        fits = slabs
    return (
        f"data.source='drp': {get_rock(rock).name}'s layout ({n_train} training slices and "
        f"{int(lay.cluster.max()) + 1} validation/test slabs of {cfg.slab_slices} slice(s), "
        f"slabs {sep:.0f} um = min_separation_d50 {cfg.min_separation_d50:g} x d50 apart) "
        f"spans {(lay.pos.max() * step + 1) * cfg.native_pixel_um:.0f} um, but the portal "
        f"volume is {depth} voxels = {depth * cfg.native_pixel_um:.0f} um deep along axis "
        f"{cfg.axis}. With these training slices it holds {fits} slab(s) (slices along "
        f"another axis would cross these, so more axes do not help); lower "
        f"data.val_slices_per_rock / test_slices_per_rock / heldout_slices_per_rock, "
        f"slices_per_rock or min_separation_d50 (0 allows adjacent slabs)")


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
    phases, gray = zip(*(_render_gray(pack, cfg, rock, (i + 0.5) * spacing, (i + 0.5) / n, size,
                                      (3, i)) for i in range(n)), strict=True)
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
    extra: list = [get_rock(rock).name, _is_train(cfg, rock), LAYOUT_VERSION]
    if cfg.source == "synthetic":
        extra += synthetic_fingerprint(rock)
    return config_hash(fields, *extra)


def synthetic_fingerprint(rock: str) -> list:
    """What, besides the config, decides a synthetic rock's images (for cache keys)."""
    # CTModel.bits came later: it enters the key only when not 8, so that the caches of
    # 8-bit renderings made before it stay valid (their images are the same)
    scanner = {k: v for k, v in asdict(ct.CT_MODEL).items() if not (k == "bits" and v == 8)}
    return [synthetic.GENERATOR_VERSION, asdict(synthetic.TEXTURES[get_rock(rock).name]),
            scanner]


def _make_rock(cfg: DataConfig, rock: str) -> dict[str, np.ndarray]:
    return generate_rock(cfg, rock) if cfg.source == "synthetic" else read_drp_rock(cfg, rock)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _threads_per_worker(workers: int) -> Iterator[None]:
    """Share the run's threads (``OMP_NUM_THREADS``, else one per core) among ``workers``
    spawned processes, which read the variables when they start: two workers of two threads
    each on two cores took 121-125 s for the quick profile's rocks, against 77 s with one
    thread each. The rocks do not depend on the thread count."""
    total = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: str(max(1, total // workers)) for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
            with _threads_per_worker(workers), \
                    ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
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
            cluster=a["cluster"],
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
    roles = _roles(dataset.config)
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


def _roles(cfg: DataConfig) -> dict[str, str]:
    return {**{get_rock(r).name: "train" for r in cfg.train_rocks},
            **{get_rock(r).name: "held-out" for r in cfg.heldout_rocks},
            **{get_rock(r).name: "unseen" for r in cfg.unseen_rocks}}


def layout_table(dataset: Dataset) -> pd.DataFrame:
    """One row per rock: how its slices are split and how far apart its slabs lie.

    Columns: ``rock``, ``role``, slices per split (``train``, ``val``,
    ``test``, ``heldout``), ``slabs`` (validation / test / held-out clusters),
    ``d50 um`` (median grain diameter), ``required um``
    (:func:`separation_um`), ``min separation um`` (the least distance
    measured between a slab and any slice outside it,
    :func:`min_separation_um`) and ``depth mm`` (first to last slice).
    """
    cfg, roles = dataset.config, _roles(dataset.config)
    rows = []
    for name, r in dataset.rocks.items():
        rows.append({
            "rock": name,
            "role": roles.get(name, "-"),
            **{split: int((r.split == code).sum()) for split, code in _CODE.items()},
            "slabs": len(np.unique(r.cluster[r.cluster >= 0])),
            "d50 um": synthetic.TEXTURES[name].d50_um,
            "required um": separation_um(cfg, name),
            "min separation um": min_separation_um(r.z_um, r.cluster),
            "depth mm": float(r.z_um.max() - r.z_um.min()) / 1000,
        })
    return pd.DataFrame(rows)
