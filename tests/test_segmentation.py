import numpy as np
import pytest

from dmtnn.checkpoints import run_folder
from dmtnn.data import build_dataset
from dmtnn.data.threshold import otsu_threshold
from dmtnn.segmentation import (
    load_segmenter,
    segment,
    threshold_baseline,
    train_segmenter,
)


def test_threshold_baseline_thresholds_each_image_on_its_own():
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 100, (8, 8), dtype=np.uint8)
    bright = dark + np.uint8(120)  # same pattern, other gray levels: other threshold
    masks = threshold_baseline(np.stack([dark, bright]))
    assert masks.dtype == np.uint8 and masks.shape == (2, 8, 8)
    np.testing.assert_array_equal(masks[0], dark > otsu_threshold(dark))
    np.testing.assert_array_equal(masks[0], masks[1])


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
