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


def test_image_normalised_segmenter_ignores_gain_and_offset(torch_one_thread):
    import torch

    from dmtnn import models

    torch.manual_seed(0)
    net = models.build("linknet", width=0.125, input_norm="image").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(2.5 * x - 0.7), atol=1e-4, rtol=1e-4)
        paper = models.build("linknet", width=0.125).eval()  # the paper's: global scale
        assert not torch.allclose(paper(x), paper(2.5 * x - 0.7), atol=1e-2)
    with pytest.raises(ValueError, match="input_norm must be one of"):
        models.build("unet", width=0.125, input_norm="per-image")


def test_scanner_slices_share_the_geometry_and_the_table_scores_them(tiny_cfg):
    from dmtnn.data.scanners import SCANNERS, scanner_slices
    from dmtnn.reports import scanner_table

    sl = scanner_slices(tiny_cfg.data, "Castle Gate", 2)
    size = tiny_cfg.data.image_size
    assert set(sl["gray"]) == set(SCANNERS) and sl["truth"].shape == (2, size, size)
    assert sl["gray"]["16-bit"].dtype == np.uint16 and sl["gray"]["default"].dtype == np.uint8
    # another rendering of the same slices: dark pores where the truth has pores
    for gray in sl["gray"].values():
        g = gray.astype(float)
        assert g[sl["truth"] == 0].mean() < g[sl["truth"] == 1].mean()
    perfect = {s: sl["truth"] for s in SCANNERS}
    flipped = {**perfect, "dark": 1 - sl["truth"]}
    t = scanner_table({"perfect": perfect, "flipped": flipped}, sl["truth"])
    assert (t.loc["perfect", "PA"] == 1).all() and (t.loc["perfect", "PA change"] == 0).all()
    row = t.loc[("flipped", "dark")]
    phi = 1 - sl["truth"].mean(axis=(1, 2))
    assert row["PA"] == 0 and row["PA change"] == -1
    assert row["|porosity change|"] == pytest.approx(np.abs(1 - 2 * phi).mean())
