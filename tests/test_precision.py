"""bf16 on the CPU and DMTNN's segmenter cache (dmtnn.settings precision rule, dmtnn.train)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dmtnn import models
from dmtnn.augmentation import apply_symmetry
from dmtnn.config import TrainConfig
from dmtnn.multitask import REGRESSION
from dmtnn.samples import Samples, compute_scales, to_device
from dmtnn.settings import PRECISIONS, fast_precision, resolve_precision
from dmtnn.train import _inputs, fit, predict, seed_everything, train_epoch
from dmtnn.weighting import FixedWeights

SIZE = 32  # LinkNet takes multiples of 32


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux), e.g. ``avx512_bf16``."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        pytest.skip("no /proc/cpuinfo")
    for line in path.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("no CPU flags in /proc/cpuinfo")


def rocks(n: int, seed: int) -> Samples:
    """Images with a mask and the three regression targets (porosity, two moduli)."""
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (n, SIZE, SIZE), dtype=np.uint8)
    mask = (gray > 100).astype(np.uint8)
    phi = 1 - mask.mean(axis=(1, 2))
    return Samples(gray, {"mask": mask, "phi": phi, "mu": 30 * (1 - phi) ** 2,
                          "kappa": 40 * (1 - phi) ** 2})


def dmtnn(seed: int = 0) -> nn.Module:
    seed_everything(seed)
    seg = models.build("linknet", width=0.125)
    return models.build("dmtnn", segmenter=seg, image_size=SIZE, width=0.125)


class Uncached(nn.Module):
    """DMTNN seen without its ``frozen_segmenter``: the loop runs the segmenter every batch."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


class Recorder(nn.Module):
    """A one-conv network that records the dtype its convolution computes in."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)
        self.seen: list[torch.dtype] = []

    def forward(self, x):
        f = self.conv(x)
        self.seen.append(f.dtype)
        y = self.head(f.mean((2, 3)))
        return {"phi": y[:, 0], "mu": y[:, 1], "kappa": y[:, 2]}


def weights() -> FixedWeights:
    return FixedWeights({t.name: 1.0 for t in REGRESSION})


# -- the precision rule ---------------------------------------------------------------


def test_fast_precision_follows_the_cpus_bf16_instructions():
    native = bool({"avx512_bf16", "amx_bf16"} & cpu_flags()) and \
        torch.backends.mkldnn.is_available()
    assert fast_precision("cpu") == (torch.bfloat16 if native else None)
    assert fast_precision(torch.device("meta")) is None


def test_resolve_precision_forces_and_refuses():
    assert resolve_precision("float32", "cpu") is None
    assert resolve_precision("bf16", "cpu") is torch.bfloat16
    assert resolve_precision("auto", "cpu") is fast_precision("cpu")
    assert PRECISIONS == ("auto", "bf16", "float32")
    with pytest.raises(ValueError, match=r"multitask.precision\) must be one of auto, bf16, "
                                         r"float32, got 'fp16'"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize(("precision", "dtype", "layout"), [
    ("float32", torch.float32, torch.contiguous_format),
    ("bf16", torch.bfloat16, torch.channels_last),
])
def test_fit_computes_in_the_precision_asked(tmp_path, precision, dtype, layout):
    net = Recorder()
    tc = TrainConfig(epochs=1, batch_size=4, lr=1e-3, precision=precision)
    res = fit(net, REGRESSION, rocks(8, 1), rocks(4, 2), tc, tmp_path, device="cpu",
              progress=False)
    assert set(net.seen) == {dtype}  # training and validation passes alike
    assert net.conv.weight.is_contiguous(memory_format=layout)
    for col in ("train loss", "val phi R2"):  # losses and KPIs stay float32 numbers
        assert np.isfinite(res.history[col]).all()
    net.seen.clear()
    predict(net, rocks(3, 3).gray, REGRESSION, res.scales, device="cpu", precision=precision)
    assert net.seen == [dtype]


def test_bf16_predictions_are_close_to_float32():
    net = dmtnn().eval()
    s = rocks(6, 4)
    scales = compute_scales(s, REGRESSION)
    f32 = predict(net, s.gray, REGRESSION, scales, device="cpu", precision="float32")
    b16 = predict(net, s.gray, REGRESSION, scales, device="cpu", precision="bf16")
    for t in REGRESSION:  # bf16 keeps 8 bits of mantissa: ~0.4 % a rounding
        np.testing.assert_allclose(b16[t.name], f32[t.name], rtol=0.05, atol=0.05)
    with torch.no_grad():  # the segmenter's own logits, the "mask" output
        x = torch.from_numpy(s.gray).float()[:, None] / 255
        a = net.segmenter(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = net.segmenter(x)
    assert b.dtype == torch.bfloat16
    torch.testing.assert_close(b.float(), a, rtol=0.05, atol=0.05)


# -- DMTNN's segmenter cache -------------------------------------------------------------


def test_dmtnn_runs_standalone_and_on_given_logits():
    net = dmtnn().eval()
    x = torch.randn(2, 1, SIZE, SIZE)
    with torch.no_grad():
        alone = net(x)
        given = net(x, seg_logits=net.segmenter(x))
    for k in alone:
        assert torch.equal(alone[k], given[k]), k
    assert net.frozen_segmenter is net.segmenter
    ws = models.build("mtnn_ws", image_size=SIZE, width=0.125)
    assert ws.frozen_segmenter is None
    with pytest.raises(ValueError, match="without a frozen segmenter"):
        ws(x, seg_logits=x)


@pytest.mark.parametrize("precision", ["bf16", "float32"])
def test_cached_logits_are_the_segmenters_of_the_turned_image(precision):
    net = dmtnn()
    seg = net.segmenter.eval()
    s = rocks(10, 5)
    data = to_device(s, REGRESSION, compute_scales(s, REGRESSION), torch.device("cpu"))
    dtype = resolve_precision(precision, "cpu")
    seen = []
    net.sharing.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    calls = []
    seg.register_forward_hook(lambda m, inp, out: calls.append(len(inp[0])))
    epoch = dict(generator=torch.Generator().manual_seed(3), augment=True, precision=precision)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.0)
    for _ in range(3):
        train_epoch(net, REGRESSION, data, weights(), opt, 4, **epoch)
    cache, computed = data.cache["frozen logits"], sum(calls)
    assert computed == int(cache.done.sum()) <= 8 * len(s)  # each pair computed once
    assert 0 < computed < 3 * len(s)  # and some reused
    tol = {} if dtype is not None else {"rtol": 1e-5, "atol": 1e-5}  # bf16: bit for bit
    checked = 0
    for k in range(8):
        turn = (k // 2, bool(k % 2))
        idx = torch.nonzero(cache.done[k]).reshape(-1)
        if len(idx) == 0:
            continue
        x = apply_symmetry(_inputs(data, idx, channels_last=dtype is not None), turn)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                             enabled=dtype is not None):
            direct = seg(x)
        torch.testing.assert_close(cache.slots[k][idx], direct, **tol)
        checked += len(idx)
    assert checked == computed
    # what the sharing network saw is the sigmoid of those logits
    assert all(v.dtype == (dtype or torch.float32) for v in seen)


def test_training_with_the_cache_equals_running_the_segmenter_every_batch():
    s = rocks(12, 6)
    data = to_device(s, REGRESSION, compute_scales(s, REGRESSION), torch.device("cpu"))
    runs = {}
    for name, wrap in (("cached", lambda m: m), ("uncached", Uncached)):
        net = dmtnn(seed=1).to(memory_format=torch.channels_last)
        model = wrap(net)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        gen = torch.Generator().manual_seed(7)
        runs[name] = [train_epoch(model, REGRESSION, data, weights(), opt, 4, generator=gen,
                                  augment=True, precision="bf16") for _ in range(3)]
        runs[name + " weights"] = net.state_dict()
    assert "frozen logits" in data.cache
    assert runs["cached"] == runs["uncached"]
    a, b = runs["cached weights"], runs["uncached weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_cache_follows_the_segmenters_weights():
    net = dmtnn().eval()
    s = rocks(4, 8)
    data = to_device(s, REGRESSION, compute_scales(s, REGRESSION), torch.device("cpu"))
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.0)

    def mask_logits():
        train_epoch(net, REGRESSION, data, weights(), opt, 4, precision="bf16")
        return data.cache["frozen logits"].slots[0].clone()

    first = mask_logits()
    other = dmtnn(seed=2).segmenter.state_dict()
    net.segmenter.load_state_dict(other)  # new weights, copied in place
    second = mask_logits()
    assert not torch.equal(first, second)
    x = _inputs(data, torch.arange(4), channels_last=True)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(second, net.segmenter(x))


def test_same_seed_same_numbers_in_bf16(tmp_path):
    tc = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=3, precision="bf16")
    hist = []
    for run in ("a", "b"):
        res = fit(dmtnn(), REGRESSION, rocks(8, 9), rocks(4, 10), tc, tmp_path / run,
                  device="cpu", progress=False)
        hist.append(res.history.drop(columns="seconds"))
    pd.testing.assert_frame_equal(hist[0], hist[1])


def test_a_resumed_bf16_dmtnn_run_repeats_an_uninterrupted_one(tmp_path):
    """The resumed run refills the segmenter cache on other batches: bf16 logits are the same."""
    tc = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=4, precision="bf16")
    train, val = rocks(8, 11), rocks(4, 12)

    def run(folder, **kw):
        return fit(dmtnn(), REGRESSION, train, val, tc, tmp_path / folder, device="cpu",
                   progress=False, **kw)

    def stop(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt  # the run killed after its first epoch

    whole = run("whole")
    with pytest.raises(KeyboardInterrupt):
        run("resumed", callback=stop)
    resumed = run("resumed")
    pd.testing.assert_frame_equal(whole.history.drop(columns="seconds"),
                                  resumed.history.drop(columns="seconds"))
