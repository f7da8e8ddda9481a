"""Run configuration: typed dataclasses and the four profiles.

One configuration serves every notebook. A *profile* is a small overlay on the
paper's settings (the defaults below), never a copy of code:

``paper``
    The paper's settings: six rocks x 1000 slices of 256 x 256, split
    5000 / 500 / 500, 100 epochs.
``book``
    The published run: fits in 25 minutes on one H100.
``quick``
    ``make book`` on a CPU: every figure, in 30 minutes on 2 cores.
``ci``
    Continuous integration: tiny, minutes on 2 CPU cores.

>>> cfg = load_profile("ci")
>>> cfg.data.image_size
64
>>> load_profile("ci", data={"image_size": 32}).data.image_size
32
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from dmtnn.rocks import QUARTZ_G, QUARTZ_K

__all__ = [
    "PAPER_PIXEL_UM",
    "DataConfig",
    "RevConfig",
    "FEMConfig",
    "TrainConfig",
    "LossConfig",
    "AppendixConfig",
    "Config",
    "PROFILES",
    "load_profile",
    "config_hash",
    "profile_table",
]

#: Pixel size of the paper's images: 1000 px at 2.25 um reduced to 256 px.
PAPER_PIXEL_UM = 2.25 * 1000 / 256  # = 8.789 um

#: The paper's training rocks with CastleGate replaced by Berea Upper Gray: the paper
#: holds CastleGate out as its cross-dataset test rock (section 4.2.4).
TRAIN_ROCKS = (
    "Bandera Brown",
    "Bandera Gray",
    "Bentheimer",
    "Berea",
    "Berea Sister Gray",
    "Berea Upper Gray",
)
HELDOUT_ROCKS = ("Castle Gate",)
UNSEEN_ROCKS = ("Buff Berea", "Kirby", "Leopard", "Parker")


@dataclass(frozen=True)
class DataConfig:
    """What images the networks see and where they come from.

    The image geometry follows the paper: slices of a micro-CT volume at
    ``native_pixel_um`` are reduced by area averaging to ``pixel_um``. A
    profile with ``image_size < 256`` keeps the paper's pixel size and shows
    a smaller field of view (a crop), so that grains keep their size in
    pixels.
    """

    source: str = "synthetic"  # "synthetic" (embedded default) or "drp" (portal files)
    data_root: str | None = None  # portal files; else $DMTNN_DATA_ROOT
    image_size: int = 256  # px, network input (H = W)
    pixel_um: float = PAPER_PIXEL_UM  # um per image pixel
    native_pixel_um: float = 2.25  # um per voxel of the CT volume
    slice_spacing_um: float = 2.25  # um between consecutive slices (paper: adjacent voxels)
    axis: int = 0  # slicing axis of a portal volume
    drp_shape: tuple[int, int, int] = (1000, 1000, 1000)  # voxels of each portal volume
    train_rocks: tuple[str, ...] = TRAIN_ROCKS
    heldout_rocks: tuple[str, ...] = HELDOUT_ROCKS  # cross-dataset test (paper 4.2.4)
    unseen_rocks: tuple[str, ...] = UNSEEN_ROCKS  # further rocks never trained on
    # Slices per rock and their layout in depth (dmtnn.data.layout.slab_layout): each
    # training rock's depth is cut into ``blocks_per_rock`` blocks, a run of consecutive
    # training slices and a share of the validation / test slabs each; every slab lies
    # ``min_separation_d50`` median grain diameters (the rock's d50) or more from any other
    # slice, so test slices are nearly independent samples and share no grain with training.
    slices_per_rock: int = 1000  # training rocks: train + validation + test slices
    val_slices_per_rock: int = 83  # paper: 500 of 6000
    test_slices_per_rock: int = 83  # paper: 500 of 6000
    heldout_slices_per_rock: int = 200  # held-out and unseen rocks (test slabs only)
    min_separation_d50: float = 2.0  # slab to any other slice, in d50 (Berea: 2 x 125 um)
    slab_slices: int = 1  # consecutive slices per validation / test slab (one cluster)
    blocks_per_rock: int = 16  # training runs spread through the depth (synthetic: one pack each)
    workers: int = 0  # processes for data generation; 0 = one per core
    seed: int = 2022

    @property
    def native_size(self) -> int:
        """Side of the native (un-reduced) slice in voxels."""
        return round(self.image_size * self.pixel_um / self.native_pixel_um)

    @property
    def rocks(self) -> tuple[str, ...]:
        """Every rock of the run: training, held-out, unseen."""
        return self.train_rocks + self.heldout_rocks + self.unseen_rocks


@dataclass(frozen=True)
class RevConfig:
    """Representative elementary volume (Fig. 7): 2D windows of native slices."""

    field_px: int = 1000  # side of the native slice analysed (paper: 1000 px at 2.25 um)
    slices: int = 8  # slices per rock
    windows: int = 64  # random windows per size and slice
    sizes: tuple[int, ...] = (10, 20, 40, 60, 80, 100, 150, 200, 300, 400, 600, 800, 1000)
    cv_tol: float = 0.1  # REV: random windows' porosity spread (std / mean) stays below this
    growing_tol: float = 0.02  # REV: a centred growing window's rms deviation from the rock's porosity
    moduli_windows: int = 64  # elastic REV: FEM-labelled windows per size and rock


@dataclass(frozen=True)
class FEMConfig:
    """Elastic labels (``dmtnn.fem``): quartz grains (``K``, ``G``), empty pores, 2D plane strain."""

    # The grains' 3D moduli: quartz (Mavko et al., The Rock Physics Handbook). Not the task
    # ``kappa``, the 2D bulk modulus of a whole slice that the FEM computes from them.
    K: float = QUARTZ_K  # GPa, bulk modulus of quartz
    G: float = QUARTZ_G  # GPa, shear modulus of quartz
    plane: str = "strain"
    dtype: str = "float32"  # solver precision; float32 reaches ~1e-4 relative on the moduli
    tol: float | None = None  # solver default for the dtype
    chunk: int = 64  # images per saved part (resume granularity)
    kinds: tuple[str, ...] = ("label", "truth")  # binary images labelled: threshold, true geometry


@dataclass(frozen=True)
class TrainConfig:
    """Network training (section 3.4): Adam, a learning rate lowered as training goes.

    ``Config.segmenter`` trains the segmentation networks (notebook 04),
    ``Config.multitask`` the networks on top of them (notebooks 05-08): DMTNN,
    the CNN and the sharing variants.
    """

    epochs: int = 100
    batch_size: int = 16
    # Adam's initial learning rate. The paper gives none ("large, lowered later"). On the
    # quick profile 3e-3 beat 1e-3: LinkNet val PA 0.963 vs 0.940 after 8 epochs (1e-2:
    # 0.968 after 12); DMTNN test R2 phi/mu/kappa 0.70/0.58/0.52 vs -0.24/0.54/0.59.
    lr: float = 3e-3
    schedule: str = "step"  # "step" (x lr_gamma every lr_step epochs) or "cosine"
    lr_step: int = 40  # epochs between learning-rate drops
    lr_gamma: float = 0.1
    # Epochs of linear learning-rate warm-up, batch by batch, before the schedule. Against
    # the CNN's collapse it did not help (1 of 20 seeds with or without, quick profile's
    # images); a normalised hidden layer did (dmtnn.models.baselines). Off by default.
    warmup: int = 0
    # Channel multipliers (dmtnn.models.registry): ``width`` scales the full-resolution
    # parts (segmenters, DMTNN's sharing network and first feature modules), where the
    # FLOPs are; ``head_width`` the cheap rest (DMTNN's pooled modules and fully
    # connected layers; the CNN and the sharing schemes, which pool after every stage).
    width: float = 1.0
    head_width: float = 1.0
    seed: int = 0
    # Arithmetic of the networks' forward passes (dmtnn.settings.resolve_precision): "auto"
    # is bf16 autocast and channels_last where the device multiplies bf16 natively (CUDA
    # from Ampere on, CPUs with AVX-512 BF16 or AMX), float32 elsewhere; "bf16" or
    # "float32" force one. Losses and KPIs are float32 either way. On the quick profile's
    # CPU (AVX-512 BF16) bf16 trains LinkNet and DMTNN (with its segmenter cache) faster than
    # float32 did: `python bench/train.py --compare OLD_CHECKOUT` measures both in one run.
    precision: str = "auto"
    # The epoch whose weights a run keeps: "val_loss", the lowest validation loss on
    # standardised targets, the task losses summed unweighted (so that weighting
    # strategies are judged alike); or "last". Mean validation R2 (the former rule)
    # chose epoch 5 of 10 at the high learning rate on the quick profile: 48 validation
    # images from neighbouring slices score noisily.
    select: str = "val_loss"
    # Each training batch turned by a random multiple of 90 degrees and flipped at
    # random: the square's symmetries leave porosity, the 2D bulk modulus and the
    # isotropic shear modulus unchanged (and turn a mask with its image).
    augment: bool = True
    # Each training image's gray levels rendered anew (dmtnn.augmentation: blur, noise,
    # gamma, gain and offset, bit depth), as another scanner would show the same rock.
    # For the segmenters; DMTNN sees the gray image only through its frozen segmenter.
    intensity: bool = False
    # A segmenter's input normalisation (dmtnn.models.blocks.input_layer): "global", the
    # training split's mean and standard deviation (the paper), or "image", each image
    # by its own, so that a scanner's gray levels do not matter.
    input_norm: str = "global"


@dataclass(frozen=True)
class LossConfig:
    """Task weights of the multi-task networks (section 2.3, Fig. 13).

    ``strategy`` is DMTNN's in notebook 05; notebook 06 compares all of
    ``strategies``, each over ``seeds`` seeds. The dynamic strategy's equation
    is our reconstruction (``dmtnn.weighting.dynamic_weight``).
    """

    strategy: str = "dynamic"
    strategies: tuple[str, ...] = ("1:1:1", "1:10:3", "dynamic", "uncertainty", "dwa")
    sigma: float = 1.0  # dynamic: scale of the weights
    gamma: int = 2  # dynamic: focusing exponent
    alpha: float = 0.5  # dynamic: moving-average factor of the KPIs
    # dynamic: weights scaled to sum to the number of tasks (DynamicWeights.normalize).
    # False, the focal form as written: its scale falls with the KPIs (1-7 at epoch 2 to
    # 0.001-0.02 by epoch 9 in a book run) and Adam, remembering the early gradients,
    # stalls; quick profile, 3 seeds, validation R2 phi / mu / kappa 0.843 / 0.737 / 0.667
    # as written against 0.875 / 0.831 / 0.782 normalised
    normalize: bool = True
    temperature: float = 2.0  # DWA
    seeds: int = 3  # seeds per strategy in notebook 06
    # seeds per porosity treatment (standardised or raw) in notebook 05; default: seeds
    treatment_seeds: int | None = None
    # Seeds of DMTNN and of the CNN in notebook 05 (the headline comparison): a network's
    # test R2 depends on its seed about as much as on its architecture.
    headline_seeds: int = 5
    # Regression targets are standardised with the training split's statistics; the
    # paper trains on raw porosity (variance ~1e-3 against 1 for the standardised moduli,
    # so its gradient on the shared weights is ~200x smaller: on the quick profile DMTNN's
    # test R2 of phi over three seeds was 0.15 / 0.64 / 0.29 raw, 0.82 / 0.49 / 0.86
    # standardised). False: the paper's raw porosity.
    standardize_phi: bool = True


@dataclass(frozen=True)
class AppendixConfig:
    """Appendix A: the network variants, trained on the training slabs of one rock.

    The paper trains its depth variants "on one dataset"; one rock also keeps
    the many trainings of notebook 08 affordable.
    """

    rock: str = "Berea"
    depths: tuple[int, ...] = (1, 2, 3, 4)  # feature modules per subnet; DMTNN has 2
    epochs: int | None = None  # default: multitask.epochs (one rock: fewer steps per epoch)
    lr_step: int | None = None  # default: multitask.lr_step
    seeds: int | None = None  # seeds per network; default: loss.seeds

    def train_config(self, multitask: TrainConfig) -> TrainConfig:
        """The training settings of the appendix's runs: ``multitask`` with ours applied."""
        return replace(multitask, epochs=self.epochs or multitask.epochs,
                       lr_step=self.lr_step or multitask.lr_step)


@dataclass(frozen=True)
class Config:
    """Everything a run needs; ``asdict(cfg)`` goes with every artifact."""

    profile: str = "paper"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    # Torch threads each network trains on, on a CPU (dmtnn.parallel). The backward pass
    # splits its sums among the threads, so the trained weights depend on this count: with
    # the run's threads instead, clean-clone quick runs on 1 and 2 threads differed in every
    # network that sits on LinkNet. A fixed count gives the same numbers on any machine.
    # 0: a lone network takes all the run's threads (faster; numbers depend on the machine).
    train_threads: int = 1
    # Processes that train networks side by side on a CPU (dmtnn.parallel.side_by_side),
    # each on train_threads threads: 0, as many as the run's threads hold; 1, one after
    # another. On 2 cores two DMTNN trainings of one thread each do 90.7 images/s together
    # against 66.9 for one of two threads (medians of 3, the quick profile's DMTNN:
    # python bench/train.py --side-by-side). On a GPU one process at a time.
    train_workers: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    rev: RevConfig = field(default_factory=RevConfig)
    fem: FEMConfig = field(default_factory=FEMConfig)
    # LinkNet, U-Net: scanner-robust (each image standardised by its own statistics,
    # gray levels rendered anew in training); the paper's: input_norm "global", intensity off
    segmenter: TrainConfig = field(
        default_factory=lambda: TrainConfig(input_norm="image", intensity=True))
    # DMTNN, CNN, sharing variants: a cosine schedule (ten epochs of the step schedule left
    # training R2 at 0.5-0.7 on the quick profile)
    multitask: TrainConfig = field(default_factory=lambda: TrainConfig(schedule="cosine"))
    loss: LossConfig = field(default_factory=LossConfig)
    appendix: AppendixConfig = field(default_factory=AppendixConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def seeds(self, part: str) -> int:
        """Seeds per network in one part of the pipeline (:data:`SEED_PARTS`).

        ``"headline"``: DMTNN and the CNN in notebook 05 (``loss.headline_seeds``);
        ``"strategies"``: each weighting strategy in notebook 06 (``loss.seeds``);
        ``"treatment"``: each porosity treatment in notebook 05
        (``loss.treatment_seeds``); ``"appendix"``: each Appendix A network
        (``appendix.seeds``). The last two default to ``loss.seeds``.

        >>> cfg = load_profile("quick")
        >>> [cfg.seeds(p) for p in SEED_PARTS] == [cfg.loss.headline_seeds, cfg.loss.seeds,
        ...                                        cfg.loss.treatment_seeds, cfg.appendix.seeds]
        True
        """
        counts = {"headline": self.loss.headline_seeds, "strategies": self.loss.seeds,
                  "treatment": self.loss.treatment_seeds, "appendix": self.appendix.seeds}
        if part not in counts:
            raise ValueError(f"unknown part {part!r}: one of {', '.join(SEED_PARTS)}")
        return counts[part] or self.loss.seeds


#: The parts of the pipeline that train over seeds (:meth:`Config.seeds`).
SEED_PARTS = ("headline", "strategies", "treatment", "appendix")


#: Overlays on the paper's settings, section by section.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {},
    # The published run, on 2 CPU cores in at most 2 h 30 min; minutes on a GPU. The quick
    # profile's images and networks, which fit their training data on a CPU, with the
    # budget spent on seeds first (bench/budget.py): five seeds of the headline comparison,
    # the paper's three weighting strategies and every Appendix A network over three, more training slices and epochs; at the quick profile's measured speed,
    # bench/budget.py puts its training at about 80 minutes. `paper` keeps the paper's settings.
    "book": {
        "data": {
            "image_size": 128,
            "slices_per_rock": 144,  # 96 train + 16 validation + 32 test
            "val_slices_per_rock": 16,
            "test_slices_per_rock": 32,
            "heldout_slices_per_rock": 32,
            "slice_spacing_um": 9.0,
            "blocks_per_rock": 8,
        },
        "rev": {"slices": 8, "windows": 64, "moduli_windows": 24},
        "fem": {"kinds": ("label",)},  # true-geometry moduli: in `paper`
        "segmenter": {"epochs": 16, "lr_step": 11, "width": 0.25},
        "multitask": {"epochs": 25, "batch_size": 16, "width": 0.125},
        # the paper's three strategies (Fig. 13); uncertainty and DWA stay in `paper`
        "loss": {"seeds": 3, "headline_seeds": 5, "strategies": ("1:1:1", "1:10:3", "dynamic")},
        "appendix": {"epochs": 20},
    },
    "quick": {
        "data": {
            "image_size": 128,
            "slices_per_rock": 112,  # 64 train + 16 validation + 32 test
            "val_slices_per_rock": 16,
            "test_slices_per_rock": 32,
            "heldout_slices_per_rock": 32,
            "slice_spacing_um": 9.0,
            "blocks_per_rock": 8,
        },
        "rev": {"slices": 4, "windows": 48, "moduli_windows": 16},
        "fem": {"kinds": ("label",)},  # true-geometry moduli cost CPU time the CPU run lacks
        "segmenter": {"epochs": 10, "lr_step": 7, "width": 0.25},
        # width 0.125 shrinks the full-resolution parts only (head_width 1: see TrainConfig);
        # 10 epochs left DMTNN underfitted (training R2 0.5-0.7); the cosine schedule (the
        # multitask default) needs no lr_step
        "multitask": {"epochs": 20, "batch_size": 16, "width": 0.125},
        # two seeds of the headline and of each strategy: with one, two clean-clone runs at 1
        # and 2 threads disagreed on the strategies' verdicts. Two seeds decide only a
        # difference far larger than their spread (the seed interval, statistics.verdict):
        # two seeds that agreed in sign took a side on dynamic - 1:10:3 in mu in one run
        # (+0.024) and not in the other (+0.000). A third does not fit in 30 minutes:
        # trained side by side (train_workers) it took `make book` to 2004 s; paid for
        # with 48 training slices per rock instead of 64, it cost LinkNet validation PA
        # (0.958 to 0.955) and DMTNN's training R2 of kappa (0.804, at the fit threshold).
        # One seed per porosity treatment (no verdict of the book rests on it) and per
        # Appendix A network (under-fit on this budget whatever the seeds): `make book`
        # within 30 minutes on 2 cores
        "loss": {"seeds": 2, "headline_seeds": 2, "treatment_seeds": 1,
                 "strategies": ("1:1:1", "1:10:3", "dynamic")},
        # one rock: 4 batches per epoch
        "appendix": {"epochs": 14, "seeds": 1},
    },
    "ci": {
        "data": {
            "image_size": 64,
            "slices_per_rock": 28,  # 20 train + 4 validation + 4 test
            "val_slices_per_rock": 4,
            "test_slices_per_rock": 4,
            "heldout_slices_per_rock": 8,
            "slice_spacing_um": 18.0,
            "blocks_per_rock": 4,
        },
        "rev": {
            "field_px": 250,
            "slices": 2,
            "windows": 16,
            "sizes": (10, 20, 40, 60, 100, 150, 250),
            "moduli_windows": 8,
        },
        "segmenter": {"epochs": 4, "lr_step": 3, "batch_size": 8, "width": 0.125},
        "multitask": {"epochs": 2, "lr_step": 1, "batch_size": 8, "width": 0.125},
        "loss": {"seeds": 1, "headline_seeds": 2, "strategies": ("1:1:1", "1:10:3", "dynamic")},
    },
}


def _overlay(obj: Any, changes: dict[str, Any], where: str) -> Any:
    """Return ``obj`` (a dataclass) with ``changes`` applied, recursing into sections."""
    known = {f.name: f for f in fields(obj)}
    kwargs = {}
    for key, value in changes.items():
        if key not in known:
            raise ValueError(
                f"unknown setting {where}{key}; valid: {', '.join(sorted(known))}"
            )
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise TypeError(f"setting {where}{key} must be a dict of its fields")
            value = _overlay(current, value, f"{where}{key}.")
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return replace(obj, **kwargs)


def load_profile(name: str, **overrides: Any) -> Config:
    """Configuration of profile ``name`` with optional per-section overrides.

    Parameters
    ----------
    name : {"ci", "quick", "book", "paper"}
        The profile.
    **overrides
        Sections and their changed fields, e.g. ``data={"image_size": 32}``,
        or top-level fields such as ``device="cpu"``.

    Raises
    ------
    ValueError
        If the profile or a setting does not exist.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    cfg = _overlay(Config(profile=name), PROFILES[name], "")
    cfg = _overlay(cfg, overrides, "")
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    d = cfg.data
    if d.source not in ("synthetic", "drp"):
        raise ValueError(f"data.source must be 'synthetic' or 'drp', got {d.source!r}")
    if d.image_size < 8:
        raise ValueError(f"data.image_size must be at least 8 px, got {d.image_size}")
    n_val, n_test = d.val_slices_per_rock, d.test_slices_per_rock
    if min(n_val, n_test, d.heldout_slices_per_rock) < 1 or d.slices_per_rock - n_val - n_test < 1:
        raise ValueError(
            f"data.slices_per_rock={d.slices_per_rock} with val_slices_per_rock={n_val} and "
            f"test_slices_per_rock={n_test} leaves an empty train, validation or test split "
            f"(heldout_slices_per_rock={d.heldout_slices_per_rock} must be >= 1 too)"
        )
    if d.slab_slices < 1 or d.blocks_per_rock < 1 or d.min_separation_d50 < 0:
        raise ValueError(f"data.slab_slices and data.blocks_per_rock must be >= 1 and "
                         f"data.min_separation_d50 >= 0, got {d.slab_slices}, "
                         f"{d.blocks_per_rock}, {d.min_separation_d50}")
    for name in ("val_slices_per_rock", "test_slices_per_rock", "heldout_slices_per_rock"):
        if getattr(d, name) % d.slab_slices:
            raise ValueError(f"data.{name}={getattr(d, name)} must be a multiple of "
                             f"data.slab_slices={d.slab_slices} (whole slabs)")
    if not d.train_rocks:
        raise ValueError("data.train_rocks is empty")
    for name in ("segmenter", "multitask"):
        t = getattr(cfg, name)
        if t.schedule not in ("step", "cosine"):
            raise ValueError(f"{name}.schedule must be 'step' or 'cosine', got {t.schedule!r}")
        if t.epochs < 1 or t.batch_size < 1 or t.lr_step < 1:
            raise ValueError(f"{name}.epochs, batch_size and lr_step must be >= 1, got "
                             f"{t.epochs}, {t.batch_size}, {t.lr_step}")
        if not (t.lr > 0 and t.width > 0 and t.head_width > 0):
            raise ValueError(f"{name}.lr, {name}.width and {name}.head_width must be positive, "
                             f"got {t.lr}, {t.width}, {t.head_width}")
        if t.select not in ("val_loss", "last"):
            raise ValueError(f"{name}.select must be 'val_loss' or 'last', got {t.select!r}")
        if t.warmup < 0 or t.warmup >= t.epochs:
            raise ValueError(f"{name}.warmup must be >= 0 and below {name}.epochs "
                             f"({t.epochs}), got {t.warmup}")
    if cfg.train_workers < 0 or cfg.train_threads < 0:
        raise ValueError(f"train_workers and train_threads must be >= 0 (0: as the run's "
                         f"threads allow), got {cfg.train_workers} and {cfg.train_threads}")
    if cfg.loss.seeds < 1 or cfg.loss.headline_seeds < 1:
        raise ValueError(f"loss.seeds and loss.headline_seeds must be >= 1, got "
                         f"{cfg.loss.seeds}, {cfg.loss.headline_seeds}")
    for name, n in (("appendix.seeds", cfg.appendix.seeds),
                    ("loss.treatment_seeds", cfg.loss.treatment_seeds)):
        if n is not None and n < 1:
            raise ValueError(f"{name} must be >= 1 (or null: loss.seeds), got {n}")
    if cfg.appendix.rock not in d.train_rocks:
        raise ValueError(f"appendix.rock {cfg.appendix.rock!r} must be one of the training "
                         f"rocks {d.train_rocks}")
    if not cfg.appendix.depths or min(cfg.appendix.depths) < 1:
        raise ValueError(f"appendix.depths must be positive, got {cfg.appendix.depths}")
    if max(cfg.rev.sizes) > cfg.rev.field_px:
        raise ValueError(
            f"rev.sizes go up to {max(cfg.rev.sizes)} px, beyond rev.field_px={cfg.rev.field_px}"
        )


def config_hash(section: Any, *extra: Any) -> str:
    """Short stable hash of a config section (and extra keys) for caches."""
    payload = asdict(section) if dataclasses.is_dataclass(section) else section
    text = json.dumps([payload, *extra], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _schedule(tc: TrainConfig, epochs: int | None = None) -> str:
    epochs = epochs or tc.epochs
    if tc.schedule == "cosine":
        return f"{epochs} (cosine)"
    return f"{epochs} (x{tc.lr_gamma:g} every {tc.lr_step})"


def profile_table(names: tuple[str, ...] = ("ci", "quick", "book", "paper")) -> str:
    """The settings of the profiles as a Markdown table, read from :data:`PROFILES`.

    The book's data page includes it (``make stage`` writes it), so that no
    page types a profile's setting by hand.

    >>> "| Image size (px) | 64 | 128 | 128 | 256 |" in profile_table()
    True
    """
    cfgs = {n: load_profile(n) for n in names}

    def fov(c: Config) -> str:
        return f"{c.data.image_size * c.data.pixel_um / 1000:.2f}"

    def split(d: DataConfig) -> str:
        n_val, n_test = d.val_slices_per_rock, d.test_slices_per_rock
        return f"{d.slices_per_rock} ({d.slices_per_rock - n_val - n_test} / {n_val} / {n_test})"

    rows = [
        ("Image size (px)", lambda c: str(c.data.image_size)),
        ("Field of view (mm)", fov),
        ("Slices per training rock (train / val / test)", lambda c: split(c.data)),
        ("Slices per held-out or unseen rock", lambda c: str(c.data.heldout_slices_per_rock)),
        ("Slice spacing (µm)", lambda c: f"{c.data.slice_spacing_um:g}"),
        ("Val/test slab separation (median grain diameters)",
         lambda c: f"{c.data.min_separation_d50:g}"),
        ("Blocks per rock", lambda c: str(c.data.blocks_per_rock)),
        ("Segmenter: epochs (schedule)", lambda c: _schedule(c.segmenter)),
        ("Segmenter width", lambda c: f"{c.segmenter.width:g}"),
        ("Segmenter input: normalisation / intensity augmentation",
         lambda c: f"{'per image' if c.segmenter.input_norm == 'image' else 'global'} / "
                   f"{'on' if c.segmenter.intensity else 'off'}"),
        ("Other networks: epochs (schedule)", lambda c: _schedule(c.multitask)),
        ("Other networks: trunk width / head width",
         lambda c: f"{c.multitask.width:g} / {c.multitask.head_width:g}"),
        ("Checkpoint kept", lambda c: c.multitask.select.replace("_", " ")),
        ("Porosity target", lambda c: "standardised" if c.loss.standardize_phi else "raw"),
        ("Appendix A, one rock: epochs (schedule)",
         lambda c: _schedule(c.appendix.train_config(c.multitask))),
        ("Batch size (segmenter / others)",
         lambda c: f"{c.segmenter.batch_size} / {c.multitask.batch_size}"),
        ("Seeds, DMTNN against the CNN (notebook 05)", lambda c: str(c.seeds("headline"))),
        ("Weighting strategies (notebook 06)", lambda c: str(len(c.loss.strategies))),
        ("Seeds per strategy (notebook 06)", lambda c: str(c.seeds("strategies"))),
        ("Seeds per porosity treatment (notebook 05)", lambda c: str(c.seeds("treatment"))),
        ("Seeds per Appendix A network", lambda c: str(c.seeds("appendix"))),
        ("FEM labels of", lambda c: ", ".join(c.fem.kinds)),
    ]
    head = "| Setting | " + " | ".join(f"`{n}`" for n in names) + " |"
    lines = [head, "|---" * (len(names) + 1) + "|"]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(get(cfgs[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m dmtnn.config FILE``: write :func:`profile_table` to FILE (Markdown)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m dmtnn.config FILE.md")
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profile_table())


if __name__ == "__main__":
    main()
