import numpy as np
import pytest

from dmtnn.data import build_dataset
from dmtnn.data.labels import otsu_threshold
from dmtnn.segmentation import (
    load_segmenter,
    paper_comparison,
    segment,
    segmentation_table,
    threshold_baseline,
    train_segmenter,
)
from dmtnn.train import run_folder


def test_threshold_baseline_thresholds_each_image_on_its_own():
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 100, (8, 8), dtype=np.uint8)
    bright = dark + np.uint8(120)  # same pattern, other gray levels: other threshold
    masks = threshold_baseline(np.stack([dark, bright]))
    assert masks.dtype == np.uint8 and masks.shape == (2, 8, 8)
    np.testing.assert_array_equal(masks[0], dark > otsu_threshold(dark))
    np.testing.assert_array_equal(masks[0], masks[1])


def test_segmentation_table_per_rock_with_the_all_grain_floor():
    label = np.ones((4, 2, 2), np.uint8)
    label[0, 0, 0] = label[1, 0, 0] = label[2, 0, 0] = label[2, 1, 1] = 0
    test = {"label": label, "rock": np.array([0, 0, 1, 1]), "names": np.array(["A", "B"])}
    t = segmentation_table(test, {"perfect": label.copy()})
    assert t.loc[("A", "perfect"), "PA"] == 1.0
    # rock A: 2 pores in 8 pixels; rock B: 2 in 8; pooled: 4 in 16
    assert t.loc[("A", "all grain"), "PA"] == pytest.approx(6 / 8)
    assert t.loc[("all", "all grain"), "PA"] == pytest.approx(12 / 16)
    assert t.loc[("all", "all grain"), "porosity error"] == pytest.approx(-4 / 16)
    with pytest.raises(KeyError, match="truth"):
        segmentation_table(test, {}, "truth")
    cmp = paper_comparison(t, {"perfect": "LinkNet"})
    assert cmp.loc["perfect", "PA (ours)"] == 1.0
    assert "0.97" in cmp.loc["perfect", "PA (paper)"]


def test_train_then_load_segmenter(tiny_cfg):
    from dataclasses import replace

    cfg = replace(tiny_cfg, device="cpu")
    ds = build_dataset(cfg)
    run = train_segmenter(cfg, ds, "linknet", progress=False)
    assert len(run.history) == cfg.segmenter.epochs
    model, scales = load_segmenter(cfg, "linknet")
    gray = ds.split("test")["gray"]
    masks = segment(model, scales, gray, cfg)
    assert masks.shape == gray.shape and set(np.unique(masks)) <= {0, 1}
    np.testing.assert_array_equal(masks, segment(run.model, run.scales, gray, cfg))
    # a segmenter trained under other settings is refused by later notebooks ...
    other = replace(cfg, segmenter=replace(cfg.segmenter, lr=0.1))
    with pytest.raises(ValueError, match="segmenter-linknet/best.pt was made under another "
                                         "setup .*train.lr: 0.003 -> 0.1"):
        load_segmenter(other, "linknet")
    # ... and retrained from scratch by train_segmenter
    assert len(train_segmenter(other, ds, "linknet", progress=False).history) == \
        other.segmenter.epochs
    with pytest.raises(FileNotFoundError, match="run notebook 04_segmenter"):
        load_segmenter(cfg, "unet")
    assert (run_folder(cfg, "segmenter-linknet") / "history.csv").exists()
