"""Where a rock's slices lie in depth, and what each is for: the train / validation / test layout.

Every rock is laid out in depth (:func:`slab_layout`, :func:`rock_layout`):
the depth is cut into blocks, each a run of consecutive training slices
followed by its share of the validation and test *slabs*, every slab at least
``min_separation_d50`` median grain diameters from any slice outside it. Each
slab is a *cluster*, the unit a bootstrap resamples (:func:`cluster_ids`).
The dataset (:mod:`dmtnn.data.dataset`) renders the slices at these positions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dmtnn.config import DataConfig
from dmtnn.data import synthetic
from dmtnn.rocks import get_rock

__all__ = [
    "SPLITS",
    "LAYOUT_VERSION",
    "Layout",
    "slab_layout",
    "rock_layout",
    "separation_um",
    "min_separation_um",
    "cluster_ids",
]

#: The splits, in the order of their codes in stored layouts.
SPLITS = ("train", "val", "test", "heldout")
_CODE = {name: i for i, name in enumerate(SPLITS)}
LAYOUT_VERSION = 2  # bump when the slice layout or the block packs change: caches rebuild


def cluster_ids(rock: np.ndarray, slab: np.ndarray) -> np.ndarray:
    """Cluster labels unique across rocks from (rock, slab-within-rock) pairs.

    Slices of one slab of one rock share a label; labels count 0, 1, ... in
    (rock, slab) order. Training slices (slab -1) stay -1. A cluster bootstrap
    resamples these labels, not single slices.

    >>> cluster_ids(np.array([0, 0, 0, 1, 1]), np.array([-1, 3, 3, 0, 3])).tolist()
    [-1, 0, 0, 1, 2]
    """
    rock, slab = np.asarray(rock), np.asarray(slab)
    out = np.full(len(slab), -1, dtype=np.int64)
    held = slab >= 0
    if held.any():
        pairs = np.stack([rock[held], slab[held]], axis=1)
        out[held] = np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
    return out


@dataclass(frozen=True)
class Layout:
    """Where one rock's slices lie in depth and what they are for.

    Attributes
    ----------
    pos : (N,) int
        Slice position in depth, in units of ``slice_spacing_um``, increasing.
    split : (N,) int8
        Index into :data:`SPLITS`.
    cluster : (N,) int
        Slab number within the rock (-1: training slice).
    block : (N,) int
        Block number (on synthetic rocks: one grain pack per block).
    """

    pos: np.ndarray
    split: np.ndarray
    cluster: np.ndarray
    block: np.ndarray

    def counts(self) -> dict[str, int]:
        """Slices per split."""
        return {name: int((self.split == code).sum()) for name, code in _CODE.items()}


def slab_layout(
    n_train: int, n_val: int, n_test: int, *, gap: int, blocks: int, slab: int = 1,
    block_gap: int = 0,
) -> Layout:
    """Slice positions of one rock: training runs and separated validation / test slabs.

    The depth is cut into ``min(blocks, slabs)`` blocks. Each block holds a run
    of consecutive training slices (the ``n_train`` slices shared out as evenly
    as possible) followed by its share of the slabs, in order; a slab is
    ``slab`` consecutive slices, ``gap`` positions or more from every slice
    outside it. Validation slabs are spread evenly among the test slabs.
    Blocks are ``max(gap, block_gap)`` positions apart.

    Parameters
    ----------
    n_train, n_val, n_test : int
        Slices per split; ``n_val`` and ``n_test`` multiples of ``slab``, not
        both zero. A held-out rock is ``(0, 0, n)``.
    gap : int
        Least position difference between a slab's slices and any other slice (>= 1).
    blocks : int
        Training runs, spread through the depth.
    slab : int
        Consecutive slices per validation / test slab.
    block_gap : int
        Least position difference between blocks (e.g. so that their grain
        packs share no grain).

    Returns
    -------
    Layout

    >>> lay = slab_layout(6, 2, 2, gap=3, blocks=2)
    >>> lay.pos.tolist()
    [0, 1, 2, 5, 8, 11, 12, 13, 16, 19]
    >>> lay.split.tolist()  # 0 train, 1 val, 2 test
    [0, 0, 0, 2, 1, 0, 0, 0, 2, 1]
    >>> lay.cluster.tolist()
    [-1, -1, -1, 0, 1, -1, -1, -1, 2, 3]
    >>> lay.block.tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    """
    if min(n_train, n_val, n_test) < 0 or n_val + n_test == 0:
        raise ValueError(f"slice counts must be >= 0 with a validation or test slice, got "
                         f"train {n_train}, val {n_val}, test {n_test}")
    if min(gap, blocks, slab) < 1 or block_gap < 0:
        raise ValueError(f"gap, blocks and slab must be >= 1 and block_gap >= 0, got gap "
                         f"{gap}, blocks {blocks}, slab {slab}, block_gap {block_gap}")
    if n_val % slab or n_test % slab:
        raise ValueError(f"validation and test slices ({n_val}, {n_test}) must be whole "
                         f"slabs of {slab} slices")
    n_slabs, n_val_slabs = (n_val + n_test) // slab, n_val // slab
    j = np.arange(n_slabs)
    is_val = (j + 1) * n_val_slabs // n_slabs > j * n_val_slabs // n_slabs
    n_blocks = min(blocks, n_slabs)
    runs = [len(r) for r in np.array_split(np.arange(n_train), n_blocks)]
    pos, split, cluster, block = [], [], [], []

    def add(start: int, n: int, code: int, slab_id: int, b: int) -> int:
        pos.extend(range(start, start + n))
        split.extend([code] * n)
        cluster.extend([slab_id] * n)
        block.extend([b] * n)
        return start + n - 1

    start = 0
    for b, slabs in enumerate(np.array_split(j, n_blocks)):
        last = add(start, runs[b], 0, -1, b) if runs[b] else start - gap
        for k in slabs:
            last = add(last + gap, slab, 1 if is_val[k] else 2, int(k), b)
        start = last + max(gap, block_gap)
    return Layout(np.array(pos), np.array(split, dtype=np.int8), np.array(cluster),
                  np.array(block))


def separation_um(cfg: DataConfig, rock: str) -> float:
    """Least distance between a validation / test slab and any other slice of ``rock``, um.

    ``min_separation_d50`` times the rock's median grain diameter
    (:data:`dmtnn.data.synthetic.TEXTURES`; for portal volumes the same
    typical grain sizes are assumed).
    """
    return cfg.min_separation_d50 * synthetic.TEXTURES[get_rock(rock).name].d50_um


def _gap(cfg: DataConfig, rock: str) -> int:
    """:func:`separation_um` in slice positions (at least 1: slices are distinct)."""
    return max(1, int(np.ceil(separation_um(cfg, rock) / cfg.slice_spacing_um - 1e-9)))


def _is_train(cfg: DataConfig, rock: str) -> bool:
    return get_rock(rock).name in {get_rock(r).name for r in cfg.train_rocks}


def rock_layout(cfg: DataConfig, rock: str) -> Layout:
    """The layout of ``rock`` under ``cfg`` (:func:`slab_layout`).

    Training rocks: ``slices_per_rock`` slices, of which ``val_slices_per_rock``
    and ``test_slices_per_rock`` in slabs; other rocks: ``heldout_slices_per_rock``
    slices in slabs of split ``"heldout"``. Slabs lie :func:`separation_um` or
    more from other slices; synthetic blocks lie two pack margins apart
    (:func:`dmtnn.data.synthetic.margin_um`), so that their packs share no grain.
    """
    name = get_rock(rock).name
    kw = {"gap": _gap(cfg, name), "blocks": cfg.blocks_per_rock, "slab": cfg.slab_slices,
          "block_gap": 0}
    if cfg.source == "synthetic":
        margin = synthetic.margin_um(synthetic.TEXTURES[name])
        kw["block_gap"] = int(np.ceil(2 * margin / cfg.slice_spacing_um))
    if _is_train(cfg, name):
        n_val, n_test = cfg.val_slices_per_rock, cfg.test_slices_per_rock
        return slab_layout(cfg.slices_per_rock - n_val - n_test, n_val, n_test, **kw)
    lay = slab_layout(0, 0, cfg.heldout_slices_per_rock, **kw)
    return replace(lay, split=np.full(len(lay.pos), _CODE["heldout"], dtype=np.int8))


def min_separation_um(z_um: np.ndarray, cluster: np.ndarray) -> float:
    """Least depth distance between a slab's slices and any slice outside that slab, um.

    ``z_um`` and ``cluster`` as in :class:`RockSlices`; inf when there is no
    slab or nothing outside it.

    >>> min_separation_um(np.array([0.0, 9.0, 300.0, 309.0, 700.0]), np.array([-1, -1, 0, 0, 1]))
    291.0
    """
    z, c = np.asarray(z_um, dtype=float), np.asarray(cluster)
    best = np.inf
    for k in np.unique(c[c >= 0]):
        inside = c == k
        if (~inside).any():
            best = min(best, float(np.abs(z[inside][:, None] - z[~inside][None, :]).min()))
    return best
