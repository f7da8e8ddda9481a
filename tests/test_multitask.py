from dataclasses import replace

import numpy as np
import pytest

from dmtnn.data import build_dataset
from dmtnn.multitask import (
    build_network,
    predict_parameters,
    regression_samples,
    regression_tasks,
    segment_then_simulate,
    train_network,
    trained_parameters,
)
from dmtnn.reports import seed_predictions, strategy_table
from dmtnn.segmentation import load_segmenter, train_segmenter


def fake_labels(ds, converged_every=True):
    """Labels of the right shape without a FEM solve: phi from the mask, moduli from phi."""
    out = {}
    for name, r in ds.rocks.items():
        phi = 1 - r.label.mean(axis=(1, 2))
        conv = np.ones(len(phi), bool)
        if not converged_every and len(r.select("train")):
            conv[r.select("train")[0]] = False
        out[name] = {"label": {"phi": phi, "mu": 40 * (1 - phi) ** 2,
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
    assert set(part.targets) == {"phi", "mu", "kappa", "mask"}
    np.testing.assert_allclose(part.targets["phi"], 1 - part.targets["mask"].mean(axis=(1, 2)))
    assert "truth" in info and len(info["rock"]) == len(part)
    with pytest.raises(KeyError, match="run notebook 03"):
        regression_samples(ds, {}, "train")


def trained_segmenter(tiny, epochs):
    """``tiny``'s configuration with ``epochs`` of regression, its training and validation
    samples (labels from the masks) and a trained LinkNet for DMTNN to sit on."""
    cfg, ds = tiny
    cfg = replace(cfg, multitask=replace(cfg.multitask, epochs=epochs))
    train_segmenter(cfg, ds, "linknet", progress=False)
    labels = fake_labels(ds)
    train, _ = regression_samples(ds, labels, "train")
    val, _ = regression_samples(ds, labels, "val")
    return cfg, train, val, load_segmenter(cfg, "linknet")[0]


def test_dmtnn_and_cnn_train_and_predict_in_physical_units(tiny):
    cfg, train, val, segmenter = trained_segmenter(tiny, 2)
    runs = {}
    for net, strategy in (("dmtnn", "dynamic"), ("cnn", "1:1:1")):
        extra = {"segmenter": segmenter} if net == "dmtnn" else {}
        runs[net] = [train_network(cfg, train, val, net, strategy, progress=False, **extra)]
        h = runs[net][0].history
        assert len(h) == 2 and np.isfinite(h["train loss"]).all()
        pred = predict_parameters(runs[net][0], val.gray, cfg)
        assert {k: v.shape for k, v in pred.items()} == {k: (len(val),) for k in ("phi", "mu", "kappa")}
    # the moduli come back in GPa: the scale of the training labels, not standardised
    assert runs["dmtnn"][0].scales["mu"][0] == pytest.approx(train.targets["mu"].mean())
    # every target is standardised, porosity too
    assert runs["dmtnn"][0].scales["phi"] == pytest.approx(
        (train.targets["phi"].mean(), train.targets["phi"].std()))
    # the counts of the networks trained: DMTNN's segmenter frozen, the CNN all trainable
    seg_params = sum(p.numel() for p in segmenter.parameters())
    assert trained_parameters(runs["dmtnn"][0])["frozen"] == seg_params
    cnn_net = build_network(cfg, "cnn")
    assert trained_parameters(runs["cnn"][0]) == {
        "trainable": sum(p.numel() for p in cnn_net.parameters()), "frozen": 0,
        "total": sum(p.numel() for p in cnn_net.parameters())}
    table = strategy_table(seed_predictions(runs, val.gray, cfg), val)
    assert list(table.index) == ["dmtnn", "cnn"] and (table["seeds"] == 1).all()
    assert np.isnan(table["R2 phi std"]).all()  # one seed: no spread


def test_raw_porosity_is_the_papers_setting_and_another_run(tiny, caplog):
    cfg, ds = tiny
    labels = fake_labels(ds)
    train, _ = regression_samples(ds, labels, "train")
    val, _ = regression_samples(ds, labels, "val")
    one = replace(cfg, multitask=replace(cfg.multitask, epochs=1))
    paper = replace(one, loss=replace(one.loss, standardize_phi=False))
    assert [t.normalize for t in regression_tasks(one)] == [True, True, True]
    assert [t.normalize for t in regression_tasks(paper)] == [False, True, True]
    std = train_network(one, train, val, "cnn", "1:1:1", progress=False)
    with caplog.at_level("WARNING", logger="dmtnn.checkpoints"):
        raw = train_network(paper, train, val, "cnn", "1:1:1", progress=False)
    assert "phi" in std.scales and "phi" not in raw.scales and "mu" in raw.scales
    # the same run's folder, but the tasks are in the checkpoint's identity: trained afresh
    assert raw.folder == std.folder
    assert "'normalize': True}" in caplog.text and "training afresh" in caplog.text
    for r in (std, raw):
        pred = predict_parameters(r, val.gray, one)["phi"]
        assert pred.shape == (len(val),) and np.isfinite(pred).all()


def test_segment_then_simulate_of_solid_and_porous_masks(tiny):
    cfg, ds = tiny
    masks = np.concatenate([np.ones((1, 32, 32), np.uint8), ds["Berea"].label[:2]])
    params, seconds = segment_then_simulate(masks, cfg)
    np.testing.assert_allclose(params["phi"], 1 - masks.mean(axis=(1, 2)))
    # an all-grain mask is quartz in plane strain: mu = G, 2D kappa = K + G / 3 (quartz's K, G)
    assert params["mu"][0] == pytest.approx(cfg.fem.G, rel=1e-4)
    assert params["kappa"][0] == pytest.approx(cfg.fem.K + cfg.fem.G / 3, rel=1e-4)
    assert (params["mu"][1:] < cfg.fem.G).all() and seconds > 0


def test_best_alternative_by_the_validation_loss_of_the_kept_epoch():
    from types import SimpleNamespace

    import pandas as pd

    from dmtnn.multitask import best_alternative

    def run(losses, best):
        h = pd.DataFrame({"epoch": range(1, len(losses) + 1), "val selection loss": losses})
        return SimpleNamespace(history=h, best_epoch=best)

    # "dwa" reached the lowest loss at an epoch its run did not keep: the kept ones count
    runs = {"dynamic": run([0.1], 1), "1:1:1": run([3.0, 2.0], 2), "dwa": run([1.0, 2.5], 2)}
    assert best_alternative(runs, exclude="dynamic") == "1:1:1"
    with pytest.raises(ValueError, match="no strategy other than 'dynamic'"):
        best_alternative({"dynamic": runs["dynamic"]}, exclude="dynamic")


def test_train_networks_in_processes_as_one_at_a_time(tiny, tmp_path, monkeypatch):
    """Two processes of one thread each train the same networks, bit for bit, as one
    process of two threads training them one at a time (each on ``train_threads``, one);
    each job under its own configuration, DMTNN on the segmenter passed."""
    from concurrent.futures import ProcessPoolExecutor
    from unittest import mock

    import torch

    from dmtnn.multitask import train_networks
    from dmtnn.parallel import plan, thread_count

    cfg, train, val, segmenter = trained_segmenter(tiny, 1)
    raw = replace(cfg, loss=replace(cfg.loss, standardize_phi=False))
    jobs = [{"name": "dmtnn", "seed": 0}, {"name": "cnn", "seed": 1},
            {"name": "cnn", "cfg": raw, "tag": "raw"}]
    with thread_count(2):
        assert plan(cfg, len(jobs)) == (2, 1)
        with mock.patch("dmtnn.parallel.ProcessPoolExecutor", wraps=ProcessPoolExecutor) as pool:
            side = train_networks(cfg, train, val, jobs, segmenter=segmenter, progress=False)
        assert pool.call_args.args[0] == 2  # trained in two processes, not here
        # one at a time, here, in a process of two threads: each still trains on one
        monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "one-at-a-time"))
        one = replace(cfg, train_workers=1)
        assert plan(one, len(jobs)) == (1, 1)
        with mock.patch("dmtnn.parallel.ProcessPoolExecutor", wraps=ProcessPoolExecutor) as pool:
            alone = train_networks(one, train, val, jobs, segmenter=segmenter, progress=False)
        assert not pool.called
    assert [r.folder.name for r in side] == ["dmtnn-dynamic-seed0", "cnn-dynamic-seed1",
                                             "raw-cnn-dynamic-seed0"]
    assert "phi" not in side[2].scales and "phi" in side[1].scales  # the job's own cfg
    for a, b in zip(side, alone, strict=True):
        assert a.folder != b.folder and a.folder.name == b.folder.name
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        cols = [c for c in a.history if c != "seconds"]
        assert a.history[cols].equals(b.history[cols])
    with pytest.raises(ValueError, match="sets 'seeds'"):
        train_networks(cfg, train, val, [{"seeds": 2}])
