from dataclasses import replace

import numpy as np
import pytest

from dmtnn.data import build_dataset
from dmtnn.losses import DWAWeights, DynamicWeights, FixedWeights, UncertaintyWeights
from dmtnn.multitask import (
    make_weighting,
    predict_parameters,
    r2_summary,
    r2_table,
    regression_samples,
    segment_then_simulate,
    strategy_table,
    train_network,
)
from dmtnn.segmentation import train_segmenter
from dmtnn.train import Samples


def fake_labels(ds, converged_every=True):
    """Labels of the right shape without a FEM solve: phi from the mask, moduli from phi."""
    out = {}
    for name, r in ds.rocks.items():
        phi = 1 - r.label.mean(axis=(1, 2))
        conv = np.ones(len(phi), bool)
        if not converged_every and len(r.select("train")):
            conv[r.select("train")[0]] = False
        out[name] = {"label": {"porosity": phi, "mu": 40 * (1 - phi) ** 2,
                               "kappa": 50 * (1 - phi) ** 2, "converged": conv}}
    return out


@pytest.fixture
def tiny(tiny_cfg):
    cfg = replace(tiny_cfg, device="cpu")
    return cfg, build_dataset(cfg)


def test_regression_samples_drop_unconverged_solves(tiny):
    cfg, ds = tiny
    full, _ = regression_samples(ds, fake_labels(ds), "train")
    part, info = regression_samples(ds, fake_labels(ds, converged_every=False), "train")
    assert len(part) == len(full) - 1 and info["dropped"] == 1
    assert set(part.targets) == {"phi", "mu", "K", "mask"}
    np.testing.assert_allclose(part.targets["phi"], 1 - part.targets["mask"].mean(axis=(1, 2)))
    assert "truth" in info and len(info["rock"]) == len(part)
    with pytest.raises(KeyError, match="run notebook 03"):
        regression_samples(ds, {}, "train")


def test_weighting_names(tiny):
    cfg, _ = tiny
    w = make_weighting(cfg, "1:10:3")
    assert isinstance(w, FixedWeights) and w.weights() == {"phi": 1.0, "mu": 10.0, "K": 3.0}
    assert isinstance(make_weighting(cfg, "dynamic"), DynamicWeights)
    assert isinstance(make_weighting(cfg, "uncertainty"), UncertaintyWeights)
    assert isinstance(make_weighting(cfg, "dwa"), DWAWeights)
    assert isinstance(make_weighting(cfg), DynamicWeights)  # the paper's, cfg.loss.strategy
    with pytest.raises(ValueError, match="phi:mu:K"):
        make_weighting(cfg, "1:10")
    with pytest.raises(ValueError, match="unknown weighting 'focal'"):
        make_weighting(cfg, "focal")


def test_r2_table_scores_and_counts_left_out():
    y = {"phi": np.array([0.1, 0.2, 0.3]), "mu": np.array([10.0, 20.0, 30.0]),
         "K": np.array([5.0, 6.0, 7.0])}
    truth = Samples(np.zeros((3, 4, 4), np.uint8), dict(y))
    mean = {k: np.full(3, v.mean()) for k, v in y.items()}
    with_nan = {**y, "mu": np.array([10.0, np.nan, 30.0]), "K": np.full(3, np.nan)}
    t = r2_table({"exact": y, "mean": mean, "nan": with_nan}, truth)
    assert np.isnan(t.loc[("nan", "K"), "R2"]) and t.loc[("nan", "K"), "left out"] == 3
    assert t.loc[("exact", "mu"), "R2"] == 1.0
    assert t.loc[("mean", "K"), "R2"] == pytest.approx(0.0)
    assert t.loc[("mean", "phi"), "relative error"] == pytest.approx((1 + 0 + 1 / 3) / 3)  # |0.2 - y| / y
    assert t.loc[("nan", "mu"), "left out"] == 1 and t.loc[("nan", "mu"), "R2"] == 1.0
    s = r2_summary(t, paper={"exact": {"phi": 0.9}})
    assert list(s.index) == ["exact", "mean", "nan"]
    assert s.loc["exact", "paper phi"] == 0.9 and np.isnan(s.loc["mean", "paper phi"])


def test_dmtnn_and_cnn_train_and_predict_in_physical_units(tiny):
    cfg, ds = tiny
    cfg = replace(cfg, train=replace(cfg.train, epochs=2))
    train_segmenter(cfg, ds, "linknet", progress=False)
    labels = fake_labels(ds)
    train, _ = regression_samples(ds, labels, "train")
    val, _ = regression_samples(ds, labels, "val")
    runs = {}
    for net, strategy in (("dmtnn", "dynamic"), ("cnn", "1:1:1")):
        runs[net] = [train_network(cfg, train, val, net, strategy, progress=False)]
        h = runs[net][0].history
        assert len(h) == 2 and np.isfinite(h["train loss"]).all()
        pred = predict_parameters(runs[net][0], val.gray, cfg)
        assert {k: v.shape for k, v in pred.items()} == {k: (len(val),) for k in ("phi", "mu", "K")}
    # the moduli come back in GPa: the scale of the training labels, not standardised
    assert runs["dmtnn"][0].scales["mu"][0] == pytest.approx(train.targets["mu"].mean())
    table = strategy_table(runs, val, cfg)
    assert list(table.index) == ["dmtnn", "cnn"] and (table["seeds"] == 1).all()
    assert np.isnan(table["R2 phi std"]).all()  # one seed: no spread


def test_segment_then_simulate_of_solid_and_porous_masks(tiny):
    cfg, ds = tiny
    masks = np.concatenate([np.ones((1, 32, 32), np.uint8), ds["Berea"].label[:2]])
    params, seconds = segment_then_simulate(masks, cfg)
    np.testing.assert_allclose(params["phi"], 1 - masks.mean(axis=(1, 2)))
    # an all-grain mask is quartz in plane strain: mu = G, 2D kappa = K + G / 3
    assert params["mu"][0] == pytest.approx(cfg.fem.G, rel=1e-4)
    assert params["K"][0] == pytest.approx(cfg.fem.K + cfg.fem.G / 3, rel=1e-4)
    assert (params["mu"][1:] < cfg.fem.G).all() and seconds > 0


def test_rock_table_intervals_and_best_alternative():
    from types import SimpleNamespace

    import pandas as pd

    from dmtnn.multitask import best_alternative, rock_table

    rng = np.random.default_rng(0)
    y = {k: rng.normal(size=12) + 5 for k in ("phi", "mu", "K")}
    truth = Samples(np.zeros((12, 4, 4), np.uint8), dict(y))
    noisy = {k: v + rng.normal(scale=0.3, size=12) for k, v in y.items()}
    noisy["K"][0] = np.nan
    t = rock_table({"exact": y, "noisy": noisy}, truth, np.repeat([0, 1], 6),
                   ["A", "B"], n_boot=200)
    exact = t.loc[("A", "exact", "mu")]
    assert (exact["R2"], exact["R2 low"], exact["R2 high"]) == (1.0, 1.0, 1.0)
    assert t.loc[("A", "noisy", "K"), "images"] == 5  # the NaN prediction is left out
    row = t.loc[("B", "noisy", "mu")]
    assert row["MAE low"] <= row["MAE"] <= row["MAE high"]
    runs = {s: SimpleNamespace(history=pd.DataFrame({"val score": v}))
            for s, v in {"dynamic": [0.9], "1:1:1": [0.2, 0.5], "dwa": [0.4]}.items()}
    assert best_alternative(runs, exclude="dynamic") == "1:1:1"


def test_scores_by_split_one_prediction_per_set_and_lower_of(monkeypatch):
    """R2 and MAE from one prediction of each set; a single-task net has NaN elsewhere."""
    import dmtnn.multitask as mt

    y = np.linspace(0.1, 0.3, 12)
    sets = {"a": Samples(np.zeros((12, 4, 4), np.uint8), {"phi": y, "mu": 2 * y, "K": 3 * y})}
    calls = []

    def predict(res, gray, cfg):
        calls.append(res)
        return {t: v + res["offset"] for t, v in sets["a"].targets.items() if t in res["tasks"]}

    monkeypatch.setattr(mt, "predict_parameters", predict)
    nets = {"good": {"offset": 0.001, "tasks": ("phi", "mu", "K")},
            "bad": {"offset": 0.05, "tasks": ("phi",)}}
    scored = mt.scores_by_split(nets, sets, cfg=None, n_boot=200)
    assert len(calls) == 2  # each network predicts each set once for both scores
    assert scored["MAE"].loc[("good", "mu"), "a"] == pytest.approx(0.001)
    assert scored["R2"].loc[("good", "phi"), "a"] > scored["R2"].loc[("bad", "phi"), "a"]
    assert np.isnan(scored["R2"].loc[("bad", "K"), "a"])
    assert mt.lower_of(scored["MAE"], "good", "bad", "phi", "a") == "first"
    assert mt.lower_of(scored["MAE"], "bad", "good", "phi", "a") == "second"
