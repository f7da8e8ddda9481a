from dataclasses import asdict, replace

import numpy as np
import pytest

from dmtnn.artifacts import CorruptArtifactError, store_for
from dmtnn.config import load_profile
from dmtnn.data import ct, dataset, synthetic
from dmtnn.data.dataset import (
    build_dataset,
    layout_table,
    rock_key,
    rock_packs,
    summary,
)
from dmtnn.data.layout import (
    cluster_ids,
    min_separation_um,
    rock_layout,
    separation_um,
    slab_layout,
)
from dmtnn.data.resample import reduce_binary
from dmtnn.data.threshold import otsu_threshold
from dmtnn.multitask import regression_samples
from tests.test_drp import write_rock
from tests.test_multitask import fake_labels


def _check_layout(lay, n_train, n_val, n_test, gap, blocks, slab, block_gap):
    """Every property slab_layout promises, checked slice by slice."""
    pos, split, cluster, block = lay.pos, lay.split, lay.cluster, lay.block
    assert np.bincount(split, minlength=3).tolist() == [n_train, n_val, n_test]
    assert np.all(np.diff(pos) > 0)  # distinct, in depth order
    n_slabs = (n_val + n_test) // slab
    assert sorted(set(cluster[cluster >= 0].tolist())) == list(range(n_slabs))
    assert np.all((cluster == -1) == (split == 0))
    for k in range(n_slabs):
        inside = cluster == k
        assert inside.sum() == slab and np.all(np.diff(pos[inside]) == 1)
        assert len(set(split[inside].tolist())) == 1
        assert np.abs(pos[inside][:, None] - pos[~inside][None, :]).min() >= gap
    assert np.all(np.diff(cluster[cluster >= 0]) >= 0)  # slabs numbered in depth order
    n_blocks = min(blocks, n_slabs)
    assert block.max() + 1 == n_blocks and np.all(np.diff(block) >= 0)
    runs = [pos[(block == b) & (split == 0)] for b in range(n_blocks)]
    assert all(np.all(np.diff(r) == 1) for r in runs)  # one consecutive run per block
    assert max(map(len, runs)) - min(map(len, runs)) <= 1  # shared out evenly
    for b in range(1, n_blocks):  # blocks apart
        assert pos[block == b].min() - pos[block == b - 1].max() >= max(gap, block_gap)


@pytest.mark.parametrize("n_train, n_val, n_test, gap, blocks, slab, block_gap", [
    (6, 2, 2, 3, 2, 1, 0),
    (64, 16, 32, 28, 8, 1, 61),  # quick, Berea
    (10, 4, 4, 1, 4, 2, 0),  # adjacent slabs of two slices
    (0, 0, 32, 37, 8, 1, 90),  # a held-out rock
    (3, 1, 1, 5, 8, 1, 0),  # more blocks than slabs: one per slab
])
def test_slab_layout_separates_every_slab(n_train, n_val, n_test, gap, blocks, slab, block_gap):
    lay = slab_layout(n_train, n_val, n_test, gap=gap, blocks=blocks, slab=slab,
                      block_gap=block_gap)
    _check_layout(lay, n_train, n_val, n_test, gap, blocks, slab, block_gap)


def test_validation_slabs_are_spread_among_the_test_slabs():
    lay = slab_layout(64, 16, 32, gap=28, blocks=8)
    order = lay.split[lay.cluster >= 0].tolist()
    assert order == [2, 2, 1] * 16  # every third slab, from the first block to the last
    alternate = slab_layout(4, 2, 2, gap=2, blocks=2)
    assert alternate.pos.tolist() == [0, 1, 3, 5, 7, 8, 10, 12]
    assert alternate.split.tolist() == [0, 0, 2, 1, 0, 0, 2, 1]
    with pytest.raises(ValueError, match="whole slabs of 2"):
        slab_layout(4, 3, 2, gap=2, blocks=2, slab=2)
    with pytest.raises(ValueError, match="validation or test slice"):
        slab_layout(4, 0, 0, gap=2, blocks=2)
    with pytest.raises(ValueError, match="gap, blocks and slab must be >= 1"):
        slab_layout(4, 1, 1, gap=0, blocks=2)


def test_min_separation_by_hand():
    z = np.array([0.0, 9.0, 261.0, 270.0, 530.0, 800.0])
    cluster = np.array([-1, -1, 0, 0, 1, -1])
    assert min_separation_um(z, cluster) == 252.0  # slab 0 (261) to the training slice at 9
    assert min_separation_um(z[:2], cluster[:2]) == np.inf  # no slab


@pytest.mark.parametrize("profile", ["ci", "quick", "book"])
def test_profiles_separate_slabs_by_two_grain_diameters(profile):
    d = load_profile(profile).data
    least = 32 if profile != "ci" else 4
    for rock in d.rocks:
        lay = rock_layout(d, rock)
        z = (lay.pos + 0.5) * d.slice_spacing_um
        sep = min_separation_um(z, lay.cluster)
        d50 = synthetic.TEXTURES[rock].d50_um
        assert separation_um(d, rock) == 2 * d50
        assert 2 * d50 <= sep < 2 * d50 + d.slice_spacing_um  # no wider than needed
        counts = lay.counts()
        if rock in d.train_rocks:
            assert counts["test"] >= least and counts["val"] >= least // 2
            assert counts["train"] == d.slices_per_rock - counts["val"] - counts["test"]
        else:
            assert counts["heldout"] == d.heldout_slices_per_rock >= least


def test_quick_berea_layout_by_hand():
    """Berea: d50 125 um, slices 9 um apart -> slabs ceil(250 / 9) = 28 positions away."""
    d = load_profile("quick").data
    lay = rock_layout(d, "Berea")
    assert lay.pos[:8].tolist() == list(range(8))  # the first block's 8 training slices
    assert lay.pos[8:14].tolist() == [35, 63, 91, 119, 147, 175]  # then 6 slabs, 28 apart
    margin = synthetic.margin_um(synthetic.TEXTURES["Berea"])  # 274 um: blocks 2 x 274 apart
    assert lay.pos[14] - lay.pos[13] == int(np.ceil(2 * margin / 9.0)) == 61


def test_drp_layout_has_no_block_margin():
    d = load_profile("quick", data={"source": "drp"}).data
    lay = rock_layout(d, "Berea")
    assert np.diff(lay.pos).max() == 28  # blocks as close as slabs: the volume is finite


def test_cluster_ids_are_unique_across_rocks():
    assert cluster_ids(np.array([1, 1, 0, 0]), np.array([2, 2, 2, 0])).tolist() == [2, 2, 1, 0]
    assert cluster_ids(np.array([0, 1]), np.array([-1, -1])).tolist() == [-1, -1]


def test_build_cache_and_rebuild(tiny_cfg):
    ds = build_dataset(tiny_cfg)
    berea, castle = ds["Berea"], ds["castlegate"]
    assert berea.gray.shape == (12, 32, 32) and berea.gray.dtype == np.uint8
    assert np.bincount(berea.split).tolist() == [10, 1, 1]
    assert berea.cluster.tolist() == [-1] * 5 + [0] + [-1] * 5 + [1]
    assert castle.select("heldout").tolist() == [0, 1, 2]
    assert castle.cluster.tolist() == [0, 1, 2]
    assert set(np.unique(berea.label)) <= {0, 1} and berea.truth is not None
    # labels are the threshold segmentation: close to, but not the same as, the truth
    assert 0.9 < (berea.label == berea.truth).mean() < 1.0
    sep = {r: min_separation_um(ds[r].z_um, ds[r].cluster) for r in ("Berea", "Castle Gate")}
    assert sep["Berea"] >= 250 and sep["Castle Gate"] >= 326

    store = store_for(tiny_cfg)
    stamp = store.manifest()["data/Berea.npz"]["created"]
    again = build_dataset(tiny_cfg)  # cached: not rebuilt
    assert store.manifest()["data/Berea.npz"]["created"] == stamp
    assert np.array_equal(again["Berea"].gray, berea.gray)

    train = ds.split("train")
    assert train["gray"].shape == (10, 32, 32) and train["names"].tolist() == ["Berea", "Castle Gate"]
    assert (train["cluster"] == -1).all()
    test = ds.split("heldout")
    assert test["cluster"].tolist() == [0, 1, 2]
    assert ds.split("test")["cluster"].tolist() == [0]
    with pytest.raises(ValueError, match="empty"):
        ds.split("train", rocks=["Castle Gate"])
    table = summary(ds)
    assert table.set_index("rock").loc["Castle Gate", "role"] == "held-out"
    lay = layout_table(ds).set_index("rock")
    assert lay.loc["Berea", ["train", "val", "test", "slabs"]].tolist() == [10, 1, 1, 2]
    assert lay.loc["Berea", "min separation um"] >= lay.loc["Berea", "required um"] == 250
    assert ds.cube("Berea").shape == (5, 32, 32)  # the longest training run: one block's


def test_regression_samples_carry_the_clusters(tiny_cfg):
    ds = build_dataset(tiny_cfg)
    _, info = regression_samples(ds, fake_labels(ds), "heldout")
    assert info["cluster"].tolist() == [0, 1, 2]
    _, info = regression_samples(ds, fake_labels(ds), "train")
    assert (info["cluster"] == -1).all() and len(info["cluster"]) == 10


def test_a_changed_layout_changes_the_cache_key(tiny_cfg, monkeypatch):
    d = tiny_cfg.data
    key = rock_key(d, "Berea")
    assert rock_key(replace(d, min_separation_d50=3.0), "Berea") != key
    assert rock_key(replace(d, blocks_per_rock=1), "Berea") != key
    monkeypatch.setattr(dataset, "LAYOUT_VERSION", dataset.LAYOUT_VERSION + 1)
    assert rock_key(d, "Berea") != key


def test_blocks_are_packs_of_their_own_with_one_cementation_factor(tiny_cfg):
    d = tiny_cfg.data
    lay = rock_layout(d, "Berea")
    packs = list(rock_packs(d, "Berea"))
    assert len(packs) == 2 and packs[0].scale == packs[1].scale
    for b, pack in enumerate(packs):  # each box spans its block's slices
        span = np.ptp(lay.pos[lay.block == b]) + 1
        assert pack.box_um[0] == span * d.slice_spacing_um
    assert not np.array_equal(packs[0].centers[:5], packs[1].centers[:5])  # own grains
    # the clay field built again from the saved stream is the one a lone pack gets
    alone = synthetic.make_pack("Berea", packs[1].box_um, seed=dataset.rock_seed(d, "Berea", 0, 1),
                                scale=packs[1].scale)
    assert np.array_equal(alone.clay_field, packs[1].clay_field)
    assert np.array_equal(alone.centers, packs[1].centers)
    # calibrated together: on the calibration slices of both blocks (two each) the pore
    # share is the target porosity
    pore, free = [], []
    for pack in packs:
        pixel = pack.box_um[1] / 256
        for z in np.linspace(0, pack.box_um[0], dataset.CALIBRATION_SLICES + 2)[1:-1]:
            pore.append(synthetic._grain_field(pack, z, 256, pixel, synthetic.S_MAX)[0]
                        > pack.scale)
            free.append(~synthetic._clay_mask(pack, z, 256, pixel))
    pore, free = np.array(pore), np.array(free)
    target = synthetic.get_rock("Berea").segmented_porosity
    assert (pore & free).mean() == pytest.approx(target, abs=1e-4)


def test_placed_grains_keep_their_distance():
    """The vectorised clash test: no two grains closer than keep * (r_i + r_j)."""
    tex = synthetic.TEXTURES["Berea"]
    centers, radii = synthetic._place_grains(tex, np.zeros(3), np.full(3, 600.0),
                                             np.random.default_rng(3))
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    bound = (1 - tex.overlap) * (radii[:, None] + radii[None])
    np.fill_diagonal(dist, np.inf)
    assert len(radii) > 100 and (dist >= bound).all()


def test_same_seed_same_slices_and_a_changed_config_rebuilds(tiny_cfg, tmp_path, monkeypatch):
    a = build_dataset(tiny_cfg)["Berea"].gray
    monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "other"))
    assert np.array_equal(build_dataset(tiny_cfg)["Berea"].gray, a)
    reseeded = load_profile("ci", data={**_data(tiny_cfg), "seed": 1})
    assert not np.array_equal(build_dataset(reseeded)["Berea"].gray, a)


def test_corrupted_cache_is_reported_with_its_path(tiny_cfg):
    build_dataset(tiny_cfg)
    path = store_for(tiny_cfg).path("data/Berea.npz")
    path.write_bytes(b"not a zip file")
    with pytest.raises(CorruptArtifactError, match="Berea.npz is damaged"):
        build_dataset(tiny_cfg)


def _data(cfg):
    d = asdict(cfg.data)
    return {k: d[k] for k in ("image_size", "slices_per_rock", "val_slices_per_rock",
                              "test_slices_per_rock", "heldout_slices_per_rock",
                              "train_rocks", "heldout_rocks", "unseen_rocks", "workers")}


def test_portal_files_build_the_same_dataset_structure(tmp_path, monkeypatch):
    """source="drp": slices come from the portal's raw files (here tiny ones in their format)."""
    monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "artifacts"))
    shape = (32, 40, 40)
    write_rock(tmp_path, "Berea", shape)
    gray, binary = write_rock(tmp_path, "CastleGate", shape, seed=1)
    data = {"source": "drp", "data_root": str(tmp_path), "drp_shape": shape, "image_size": 8,
            "slices_per_rock": 12, "val_slices_per_rock": 1, "test_slices_per_rock": 1,
            "heldout_slices_per_rock": 3,
            "slice_spacing_um": 4.5,  # every second voxel plane
            "min_separation_d50": 0.05,  # Castle Gate: 8.2 um, two slices
            "train_rocks": ["Berea"], "heldout_rocks": ["Castle Gate"], "unseen_rocks": [],
            "workers": 1}
    cfg = load_profile("ci", data=data)
    assert cfg.data.native_size == 31  # 8 px of 8.79 um cropped from 2.25 um voxels
    ds = build_dataset(cfg)
    castle = ds["Castle Gate"]
    assert castle.truth is None and np.isnan(castle.threshold)
    assert castle.gray.shape == (3, 8, 8)
    crop = binary[8, 4:35, 4:35]  # centre crop of 31 px from 40; slice 2 is plane 8
    assert np.array_equal(castle.label[2], reduce_binary(crop, 8))
    assert castle.z_um.tolist() == [0.0, 9.0, 18.0]  # slabs two slices apart
    assert castle.cluster.tolist() == [0, 1, 2]
    assert "truth" not in ds.split("heldout")
    assert np.isnan(summary(ds)["label PA"]).all()
    with pytest.raises(ValueError, match="slice_spacing_um=3.0 must be a whole multiple"):
        build_dataset(replace(cfg, data=replace(cfg.data, slice_spacing_um=3.0)))
    # two grain diameters (250 um for Berea) do not fit a 72 um deep volume
    deep = load_profile("ci", data={**data, "min_separation_d50": 2.0})
    with pytest.raises(ValueError, match="72 um deep along axis 0. With these training "
                                         "slices it holds 0 slab"):
        build_dataset(deep)


def test_rock_cube_is_a_repeatable_isotropic_view(tiny_cfg):
    d = tiny_cfg.data
    cube = dataset.rock_cube(d, "Berea")
    assert cube.shape == (32, 32, 32) and cube.dtype == np.uint8
    assert np.array_equal(cube, dataset.rock_cube(d, "Berea"))
    # dark pores: the share below the Otsu threshold is about the rock's porosity (0.217)
    filtered = ct.denoise(cube)
    assert (filtered <= otsu_threshold(filtered)).mean() == pytest.approx(0.217, abs=0.05)


def test_layout_settings_are_checked():
    with pytest.raises(ValueError, match="test_slices_per_rock=5 must be a multiple of "
                                         "data.slab_slices=2"):
        load_profile("ci", data={"slab_slices": 2, "test_slices_per_rock": 5})
    with pytest.raises(ValueError, match="min_separation_d50 >= 0"):
        load_profile("ci", data={"min_separation_d50": -1.0})
    with pytest.raises(ValueError, match="val_slices_per_rock=20 and test_slices_per_rock=4 "
                                         "leaves an empty train"):
        load_profile("ci", data={"val_slices_per_rock": 20, "slices_per_rock": 24})
