"""Training on a fixed number of threads, side by side: the numbers do not depend on the
machine's threads (dmtnn.parallel)."""

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from unittest import mock

import numpy as np
import pytest
import torch

from dmtnn.data import build_dataset
from dmtnn.multitask import predict_parameters, train_network
from dmtnn.parallel import network_threads, plan, thread_count
from dmtnn.segmentation import load_segmenter, segment, train_segmenter, train_segmenters
from tests.test_multitask import trained_segmenter


@pytest.fixture
def tiny(tiny_cfg):
    cfg = replace(tiny_cfg, device="cpu")
    return cfg, build_dataset(cfg)


def test_plan_gives_each_training_its_fixed_threads():
    from dmtnn.config import load_profile

    cfg = load_profile("ci", device="cpu")
    assert cfg.train_threads == 1
    with thread_count(2):
        assert plan(cfg, 5) == (2, 1)  # two processes of one thread
        assert plan(cfg, 1) == (1, 1)  # a lone network keeps its one thread
        assert plan(replace(cfg, train_workers=1), 5) == (1, 1)
        assert plan(replace(cfg, train_workers=3), 5) == (3, 1)
        shared = replace(cfg, train_threads=0)  # the run's threads, shared among the batch
        assert plan(shared, 1) == (1, 2) and plan(shared, 5) == (2, 1)
    with thread_count(4):
        assert plan(replace(cfg, train_threads=2), 5) == (2, 2)
        assert plan(cfg, 3) == (3, 1)
    with thread_count(1):
        assert plan(cfg, 5) == (1, 1)
        assert plan(replace(cfg, train_threads=2), 5) == (1, 2)  # the count, even on one


def test_network_threads_sets_and_restores_the_count():
    from dmtnn.config import load_profile

    cfg = load_profile("ci", device="cpu")
    with thread_count(2):
        with network_threads(cfg) as lanes:  # two batches of a prediction at once
            assert torch.get_num_threads() == 1 and lanes == 2
        assert torch.get_num_threads() == 2
        with network_threads(replace(cfg, train_threads=0)) as lanes:
            assert torch.get_num_threads() == 2 and lanes == 1


def test_predictions_run_on_train_threads_whatever_the_process_has(tiny):
    """Masks and parameters are computed with torch on ``train_threads`` (one) in a process
    of two threads, and equal those of a process of one. (At these tiny shapes a forward
    pass gives the same bits on two threads anyway, so the threads are read in the forward
    pass itself.)"""
    cfg, train, val, segmenter = trained_segmenter(tiny, 1)
    runs = [train_network(cfg, train, val, "dmtnn", segmenter=segmenter, progress=False),
            train_network(cfg, train, val, "cnn", progress=False)]
    linknet = load_segmenter(cfg, "linknet")
    seen = []
    for net in (linknet[0], *(r.model for r in runs)):
        net.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))

    def outputs(threads):
        with thread_count(threads):
            out = [segment(*linknet, val.gray, cfg)]
            out += [v for r in runs for v in predict_parameters(r, val.gray, cfg).values()]
        return out

    one, two = outputs(1), outputs(2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))
    assert seen and set(seen) == {1}


def test_prediction_lanes_give_the_bits_of_one_batch_at_a_time(tiny_cfg):
    """``predict(lanes=3)`` computes three batches at once in threads of its own, torch on
    one thread: the same bits as one batch after another, in order."""
    from dmtnn.multitask import REGRESSION, build_network
    from dmtnn.train import predict

    cfg = replace(tiny_cfg, device="cpu")
    torch.manual_seed(0)
    net = build_network(cfg, "cnn").eval()
    side = cfg.data.image_size
    gray = np.random.default_rng(0).integers(0, 256, (37, side, side), dtype=np.uint8)
    scales = {"input": (0.5, 0.2), **{t.name: (1.0, 2.0) for t in REGRESSION}}
    with thread_count(1):
        one, three = (predict(net, gray, REGRESSION, scales, batch_size=8, device="cpu",
                              lanes=lanes) for lanes in (1, 3))
    assert all(np.array_equal(one[k], three[k]) and one[k].shape == (37,) for k in one)


def test_segmenters_side_by_side_as_one_at_a_time(tiny, tmp_path, monkeypatch):
    """Two processes of one thread each train the segmenters, bit for bit, as a process of
    two threads training them one after another (each on one); a variant under its own
    configuration; a finished batch is read back, not trained again."""
    cfg, ds = tiny
    variant = replace(cfg, segmenter=replace(cfg.segmenter, input_norm="global"))
    jobs = [{"arch": "unet"}, {"arch": "linknet"},
            {"arch": "linknet", "cfg": variant, "name": "segmenter-linknet-global"}]
    with thread_count(2):
        with mock.patch("dmtnn.parallel.ProcessPoolExecutor", wraps=ProcessPoolExecutor) as pool:
            side = train_segmenters(cfg, ds, jobs, progress=False)
        assert pool.call_args.args[0] == 2
        with mock.patch("dmtnn.parallel.ProcessPoolExecutor", wraps=ProcessPoolExecutor) as pool:
            again = train_segmenters(cfg, ds, jobs, progress=False)  # read back
        assert not pool.called
        monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "one-at-a-time"))
        alone = [train_segmenter(job.get("cfg", cfg), ds, job["arch"], name=job.get("name"),
                                 progress=False) for job in jobs]
    assert [r.folder.name for r in side] == ["segmenter-unet", "segmenter-linknet",
                                             "segmenter-linknet-global"]
    # the variant trained under its own configuration: another input scaling, other losses
    assert not side[2].history["train loss"].equals(side[1].history["train loss"])
    for a, b, c in zip(side, again, alone, strict=True):
        assert a.folder == b.folder and a.folder.name == c.folder.name != ""
        for other in (b, c):
            sa, sb = a.model.state_dict(), other.model.state_dict()
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
            cols = [col for col in a.history if col != "seconds"]
            assert a.history[cols].equals(other.history[cols])
