from dataclasses import asdict, replace

import numpy as np
import pytest

from dmtnn.artifacts import CorruptArtifactError, store_for
from dmtnn.config import load_profile
from dmtnn.data.dataset import build_dataset, slab_layout, summary
from dmtnn.data.resample import reduce_binary
from tests.test_drp import write_rock


@pytest.mark.parametrize("n, gap", [(12, 0), (12, 2), (1000, 10)])
def test_slabs_are_contiguous_disjoint_and_separated(n, gap):
    pos, split = slab_layout(n, 1 / 12, 1 / 12, gap)
    assert len(pos) == n and len(set(pos.tolist())) == n
    for a, b in ((0, 1), (1, 2)):
        assert pos[split == b].min() - pos[split == a].max() == gap + 1
    for k in (0, 1, 2):  # each slab contiguous
        assert np.all(np.diff(pos[split == k]) == 1)


def test_build_cache_and_rebuild(tiny_cfg):
    ds = build_dataset(tiny_cfg)
    berea, castle = ds["Berea"], ds["castlegate"]
    assert berea.gray.shape == (12, 32, 32) and berea.gray.dtype == np.uint8
    assert np.bincount(berea.split).tolist() == [10, 1, 1]
    assert castle.select("heldout").tolist() == [0, 1, 2]
    assert set(np.unique(berea.label)) <= {0, 1} and berea.truth is not None
    # labels are the threshold segmentation: close to, but not the same as, the truth
    assert 0.9 < (berea.label == berea.truth).mean() < 1.0

    store = store_for(tiny_cfg)
    stamp = store.manifest()["data/Berea.npz"]["created"]
    again = build_dataset(tiny_cfg)  # cached: not rebuilt
    assert store.manifest()["data/Berea.npz"]["created"] == stamp
    assert np.array_equal(again["Berea"].gray, berea.gray)

    train = ds.split("train")
    assert train["gray"].shape == (10, 32, 32) and train["names"].tolist() == ["Berea", "Castle Gate"]
    with pytest.raises(ValueError, match="empty"):
        ds.split("train", rocks=["Castle Gate"])
    table = summary(ds)
    assert table.set_index("rock").loc["Castle Gate", "role"] == "held-out"


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
    return {k: d[k] for k in ("image_size", "slices_per_rock", "heldout_slices_per_rock",
                              "gap_slices", "train_rocks", "heldout_rocks", "unseen_rocks",
                              "workers")}


def test_portal_files_build_the_same_dataset_structure(tmp_path, monkeypatch):
    """source="drp": slices come from the portal's raw files (here tiny ones in their format)."""
    monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "artifacts"))
    shape = (32, 40, 40)
    write_rock(tmp_path, "Berea", shape)
    gray, binary = write_rock(tmp_path, "CastleGate", shape, seed=1)
    cfg = load_profile("ci", data={
        "source": "drp", "data_root": str(tmp_path), "drp_shape": shape, "image_size": 8,
        "slices_per_rock": 12, "heldout_slices_per_rock": 3, "gap_slices": 1,
        "slice_spacing_um": 4.5,  # every second voxel plane
        "train_rocks": ["Berea"], "heldout_rocks": ["Castle Gate"], "unseen_rocks": [],
        "workers": 1})
    assert cfg.data.native_size == 31  # 8 px of 8.79 um cropped from 2.25 um voxels
    ds = build_dataset(cfg)
    castle = ds["Castle Gate"]
    assert castle.truth is None and np.isnan(castle.threshold)
    assert castle.gray.shape == (3, 8, 8)
    crop = binary[4, 4:35, 4:35]  # centre crop of 31 px from 40; slice 2 is plane 4
    assert np.array_equal(castle.label[2], reduce_binary(crop, 8))
    assert castle.z_um.tolist() == [0.0, 4.5, 9.0]
    assert "truth" not in ds.split("heldout")
    assert np.isnan(summary(ds)["label PA"]).all()
    with pytest.raises(ValueError, match="slice_spacing_um=3.0 must be a whole multiple"):
        build_dataset(replace(cfg, data=replace(cfg.data, slice_spacing_um=3.0)))
