from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dmtnn.checkpoints import CheckpointMismatch, load_checkpoint, read_history
from dmtnn.config import TrainConfig
from dmtnn.samples import SEGMENTATION, Samples, Task, compute_scales, to_device
from dmtnn.train import (
    collapsed_tasks,
    evaluate,
    fit,
    predict,
    seed_everything,
    train_epoch,
)
from dmtnn.weighting import FixedWeights

TASKS = (Task("mask", "segmentation"), Task("phi", "regression"),
         Task("mu", "regression", normalize=True))


class Toy(nn.Module):
    """A two-head network small enough for many CPU fits: a mask and two scalars."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.Dropout(0.1))
        self.head_seg = nn.Conv2d(width, 1, 1)
        self.head_reg = nn.Linear(width, 2)

    def forward(self, x):
        f = self.body(x)
        y = self.head_reg(f.mean((2, 3)))
        return {"mask": self.head_seg(f), "phi": y[:, 0], "mu": y[:, 1]}


def samples(n: int, seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
    mask = (gray > 100).astype(np.uint8)
    phi = 1 - mask.mean(axis=(1, 2))
    return Samples(gray, {"mask": mask, "phi": phi, "mu": 30 * (1 - phi) ** 2})


@pytest.fixture
def cfg():
    return TrainConfig(epochs=3, batch_size=4, lr=1e-3, lr_step=2, seed=5)


def toy(seed: int = 0) -> Toy:
    seed_everything(seed)
    return Toy()


def run(cfg, folder, **kw):
    return fit(toy(), TASKS, samples(12, 1), samples(5, 2), cfg, folder, device="cpu",
               progress=False, **kw)


def test_fit_writes_history_and_checkpoints(cfg, tmp_path):
    res = run(cfg, tmp_path / "a")
    h = res.history
    assert h["epoch"].tolist() == [1, 2, 3]
    assert h["lr"].tolist() == pytest.approx([1e-3, 1e-3, 1e-4])  # step schedule
    for col in ("train loss", "val loss", "train mask PA", "val phi R2", "weight mu"):
        assert col in h and np.isfinite(h[col]).all(), col
    assert ((h["val mask PA"] >= 0) & (h["val mask PA"] <= 1)).all()
    assert res.best_epoch == int(h.loc[h["val selection loss"].idxmin(), "epoch"])
    assert (tmp_path / "a" / "best.pt").exists() and (tmp_path / "a" / "last.pt").exists()
    pd.testing.assert_frame_equal(read_history(tmp_path / "a"), h, check_dtype=False)
    # the loss is the weighted sum of the task losses (equal weights)
    parts = h[[f"train {t.name} loss" for t in TASKS]].sum(axis=1)
    np.testing.assert_allclose(h["train loss"], parts, rtol=1e-6)


def test_resume_after_a_kill_repeats_an_uninterrupted_run(cfg, tmp_path):
    whole = run(cfg, tmp_path / "whole")

    class Killed(Exception):
        pass

    def kill_after_first(row):
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        run(cfg, tmp_path / "resumed", callback=kill_after_first)
    resumed = run(cfg, tmp_path / "resumed")
    cols = [c for c in whole.history if c != "seconds"]
    pd.testing.assert_frame_equal(whole.history[cols], resumed.history[cols])
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_finished_run_is_read_back_not_retrained(cfg, tmp_path):
    first = run(cfg, tmp_path / "a")
    epochs = []
    again = run(cfg, tmp_path / "a", callback=epochs.append)
    assert epochs == []
    pd.testing.assert_frame_equal(first.history, again.history)


def test_same_seed_same_numbers(cfg, tmp_path):
    a, b = run(cfg, tmp_path / "a"), run(cfg, tmp_path / "b")
    cols = [c for c in a.history if c != "seconds"]
    pd.testing.assert_frame_equal(a.history[cols], b.history[cols])


def test_checkpoint_of_another_setup_is_refused(cfg, tmp_path):
    run(cfg, tmp_path / "a")
    other = replace(cfg, lr=0.01)
    with pytest.raises(CheckpointMismatch, match=r"last.pt was made under another setup "
                                                 r"\(train.lr: 0.001 -> 0.01\)"):
        run(other, tmp_path / "a")
    with pytest.raises(CheckpointMismatch, match="train data"):
        fit(toy(), TASKS, samples(12, 9), samples(5, 2), cfg, tmp_path / "a", progress=False)
    with pytest.raises(CheckpointMismatch, match="architecture"):
        load_checkpoint(tmp_path / "a" / "best.pt", Toy(width=8))
    with pytest.raises(CheckpointMismatch, match="weighting settings"):
        run(cfg, tmp_path / "a", weighting=FixedWeights({"mask": 1, "phi": 1, "mu": 10}))
    # starting afresh is explicit
    assert len(run(other, tmp_path / "a", resume=False).history) == 3


def test_nan_loss_stops_with_epoch_and_batch(cfg, tmp_path):
    class Broken(Toy):
        def forward(self, x):
            out = super().forward(x)
            return {**out, "phi": out["phi"] * float("nan")}

    seed_everything(0)
    with pytest.raises(FloatingPointError, match="at epoch 1, batch 1 of 3"):
        fit(Broken(), TASKS, samples(12, 1), samples(5, 2), cfg, tmp_path, progress=False)


def test_selection_by_unweighted_standardised_validation_loss_or_last_epoch(tmp_path):
    # a learning rate high enough that the first epoch is the best: 'val_loss' and 'last'
    # keep different epochs (found by trying seeds; same seed, same numbers)
    cfg = TrainConfig(epochs=4, batch_size=4, lr=3e-2, lr_step=2, seed=2)
    weights = FixedWeights({"mask": 1.0, "phi": 10.0, "mu": 3.0})
    res = run(cfg, tmp_path / "loss", weighting=weights)
    h = res.history
    # the task losses summed without the strategy's weights, on standardised targets:
    # phi trains in its own units (normalize=False), so its loss counts / its variance
    var_phi = np.var(samples(12, 1).targets["phi"])
    expected = h["val mask loss"] + h["val phi loss"] / var_phi + h["val mu loss"]
    np.testing.assert_allclose(h["val selection loss"], expected, rtol=1e-12)
    assert not np.allclose(h["val selection loss"], h["val loss"])  # not the weighted total
    assert res.best_epoch == int(h.loc[h["val selection loss"].idxmin(), "epoch"]) == 1
    last = run(replace(cfg, select="last"), tmp_path / "last", weighting=weights)
    assert last.best_epoch == 4
    final = torch.load(tmp_path / "last" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(v, final[k]) for k, v in last.model.state_dict().items())
    kept = res.model.state_dict()
    assert any(not torch.equal(v, kept[k]) for k, v in last.model.state_dict().items())


class Constant(nn.Module):
    """Predicts one learned number per regression task, whatever the image."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))
        self.seg = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        b = self.bias.expand(len(x), 2)
        return {"mask": self.seg(x), "phi": b[:, 0], "mu": b[:, 1]}


def test_a_constant_predictor_is_flagged_as_collapsed(cfg, tmp_path, caplog):
    seed_everything(0)
    with caplog.at_level("WARNING", logger="dmtnn.train"):
        res = fit(Constant(), TASKS, samples(12, 1), samples(5, 2), cfg, tmp_path,
                  device="cpu", progress=False)
    # a constant scores R2 <= 0 on any targets; the mask is no regression: never flagged
    assert res.collapsed == ("phi", "mu")
    assert (res.history[["train phi R2", "train mu R2"]] <= 0).all().all()
    assert "epoch 3: training R2 of phi" in caplog.text and "epoch 2:" not in caplog.text


def test_collapsed_tasks_read_the_last_epoch_from_epoch_3_on():
    def history(*r2):
        return pd.DataFrame({"epoch": range(1, len(r2) + 1), "train phi R2": [0.9] * len(r2),
                             "train mu R2": r2, "train mask PA": [0.0] * len(r2)})

    assert collapsed_tasks(history(0.0, 0.0)) == ()  # too early to tell
    assert collapsed_tasks(history(0.5, 0.5, 0.04)) == ("mu",)
    assert collapsed_tasks(history(0.0, 0.0, 0.0, 0.3)) == ()  # recovered
    assert collapsed_tasks(history(0.0, 0.0, 0.3), threshold=0.5) == ("mu",)
    assert collapsed_tasks(pd.DataFrame()) == ()


def test_bad_samples_are_named():
    s = samples(4, 0)
    with pytest.raises(ValueError, match=r"target 'phi' has NaN .* images \[2\]"):
        Samples(s.gray, {"phi": np.array([0.1, 0.2, np.nan, 0.3])})
    with pytest.raises(TypeError, match="uint8"):
        Samples(s.gray.astype(np.float32))
    with pytest.raises(ValueError, match="3 entries for 4 images"):
        Samples(s.gray, {"phi": np.zeros(3)})
    with pytest.raises(ValueError, match="not a binary mask"):
        Samples(s.gray, {"mask": s.targets["mask"] * 2}).check(SEGMENTATION, "train")
    with pytest.raises(KeyError, match="no target 'mask'"):
        Samples(s.gray, {}).check(SEGMENTATION, "val")


def test_predict_returns_physical_units(cfg, tmp_path):
    class Zero(nn.Module):  # predicts 0 in normalised units: the training mean
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            z = self.w * x.mean((1, 2, 3))
            return {"mask": torch.ones_like(x) * self.w - 1, "phi": z, "mu": z}

    train = samples(12, 1)
    res = fit(Zero(), TASKS, train, samples(5, 2), cfg, tmp_path, progress=False)
    assert res.scales["mu"] == pytest.approx((train.targets["mu"].mean(),
                                              train.targets["mu"].std()))
    out = predict(res.model, train.gray, TASKS, res.scales, device="cpu")
    # the weight stays near 0, so mu comes back near the training mean, phi near 0
    assert out["mask"].shape == train.gray.shape and out["mask"].dtype == np.uint8
    assert np.abs(out["phi"]).max() < 0.05
    np.testing.assert_allclose(out["mu"], train.targets["mu"].mean(),
                               atol=0.05 * train.targets["mu"].std())


def test_evaluate_repeats_the_best_epochs_validation_numbers(cfg, tmp_path):
    res = run(cfg, tmp_path / "a")
    val = samples(5, 2)
    data = to_device(val, TASKS, res.scales, torch.device("cpu"))
    before = {k: v.clone() for k, v in res.model.state_dict().items()}
    scores = evaluate(res.model, TASKS, data, FixedWeights({t.name: 1.0 for t in TASKS}),
                      cfg.batch_size)
    best = res.history.set_index("epoch").loc[res.best_epoch]
    assert scores.total == best["val loss"]
    assert scores.kpi == {t.name: best[f"val {t.name} {t.kpi}"] for t in TASKS}
    assert scores.loss == {t.name: best[f"val {t.name} loss"] for t in TASKS}
    assert all(torch.equal(v, before[k]) for k, v in res.model.state_dict().items())
    assert not res.model.training


def test_train_epoch_is_one_optimizer_step_per_batch(cfg):
    train = samples(10, 1)
    tasks = TASKS
    data = to_device(train, tasks, compute_scales(train, tasks), torch.device("cpu"))
    w = FixedWeights({t.name: 1.0 for t in tasks})

    def epoch(**kw):
        model = toy()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        scores = train_epoch(model, tasks, data, w, opt, 4, **kw)
        return model, opt, scores

    model, opt, scores = epoch()
    assert model.training
    assert opt.state[next(iter(model.parameters()))]["step"] == 3  # 10 images, batches of 4
    assert set(scores.loss) == set(scores.kpi) == {t.name for t in tasks}
    # the same seed draws the same order and symmetries: the same numbers
    a = epoch(generator=seed_everything(1, 2), augment=True)
    b = epoch(generator=seed_everything(1, 2), augment=True)
    assert a[2] == b[2] != scores
    assert all(torch.equal(v, b[0].state_dict()[k]) for k, v in a[0].state_dict().items())


def test_a_nan_in_evaluation_is_named(cfg):
    class Broken(Toy):
        def forward(self, x):
            out = super().forward(x)
            return {**out, "mu": out["mu"] * float("inf")}

    val = samples(5, 2)
    data = to_device(val, TASKS, compute_scales(val, TASKS), torch.device("cpu"))
    seed_everything(0)
    with pytest.raises(FloatingPointError, match="in evaluation, batch 1 of 2"):
        evaluate(Broken(), TASKS, data, FixedWeights({t.name: 1.0 for t in TASKS}), 4)


def test_a_mismatch_restarts_when_asked_as_a_fresh_run_would(cfg, tmp_path, caplog):
    run(cfg, tmp_path / "a")
    other = replace(cfg, lr=0.01)
    with caplog.at_level("WARNING", logger="dmtnn.checkpoints"):
        restarted = run(other, tmp_path / "a", on_mismatch="restart")
    assert "train.lr: 0.001 -> 0.01" in caplog.text and "training afresh" in caplog.text
    fresh = run(other, tmp_path / "b")
    cols = [c for c in fresh.history if c != "seconds"]
    pd.testing.assert_frame_equal(restarted.history[cols], fresh.history[cols])
    a, b = restarted.model.state_dict(), fresh.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ... and the restarted run is now the folder's run: resumed, not retrained
    epochs = []
    run(other, tmp_path / "a", callback=epochs.append)
    assert epochs == []


def test_warmup_then_cosine_learning_rates(cfg, tmp_path):
    cosine = replace(cfg, epochs=4, schedule="cosine")
    plain = run(cosine, tmp_path / "plain").history["lr"]
    # torch's CosineAnnealingLR stepped per epoch: lr (1 + cos(pi e / 4)) / 2
    np.testing.assert_allclose(plain, [1e-3 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)],
                               rtol=1e-9)
    warm = run(replace(cosine, warmup=1), tmp_path / "warm").history["lr"]
    # 12 images, batches of 4: epoch 1 climbs 1/3, 2/3, 3/3 of lr batch by batch (its
    # first batch is recorded), then half a cosine over the 3 epochs left
    np.testing.assert_allclose(warm, [1e-3 / 3, 1e-3, 1e-3 * 0.75, 1e-3 * 0.25], rtol=1e-9)


def test_selection_and_width_settings_are_checked():
    from dmtnn.config import load_profile

    assert load_profile("quick").multitask.schedule == "cosine"  # the multitask default
    assert load_profile("paper").segmenter.schedule == "step"
    with pytest.raises(ValueError, match="multitask.select must be 'val_loss' or 'last'"):
        load_profile("ci", multitask={"select": "best"})
    with pytest.raises(ValueError, match="multitask.head_width must be positive"):
        load_profile("ci", multitask={"head_width": 0.0})
    with pytest.raises(ValueError, match=r"multitask.warmup must be >= 0 and below "
                                         r"multitask.epochs \(2\)"):
        load_profile("ci", multitask={"warmup": 2})
