import json

import numpy as np
import pytest
import torch

from dmtnn import models, weights
from dmtnn.checkpoints import CheckpointMismatch, run_folder
from dmtnn.config import load_profile
from dmtnn.multitask import build_network, regression_tasks
from dmtnn.samples import SEGMENTATION, Samples
from dmtnn.segmentation import segmenter_kwargs
from dmtnn.train import fit, predict, seed_everything
from dmtnn.weights import WeightsError
from tests.predict_helpers import SCALES, ct_like, tiny_dmtnn, tiny_weights


def _outputs(model, gray, names=("mask", "phi", "mu", "kappa"), scales=SCALES):
    from dmtnn.samples import Task

    tasks = [Task(n, "segmentation" if n == "mask" else "regression") for n in names]
    return predict(model, gray, tasks, scales, device="cpu", precision="float32")


def _resum(folder):
    """Rewrite SHA256SUMS after a deliberate change (a foreign file with valid sums)."""
    (folder / "SHA256SUMS").write_text(weights._sums_text(folder))


def test_save_then_load_gives_the_same_network(tmp_path):
    folder = tiny_weights(tmp_path / "dmtnn")
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "config.json", "model.pt"]
    net = weights.load_network(folder)
    assert (net.name, net.kind, net.outputs) == ("dmtnn", "regression",
                                                 ("mask", "phi", "mu", "kappa"))
    assert (net.image_size, net.multiple, net.native_pixel_um) == (64, 32, 2.25)
    assert net.scales == SCALES
    gray, _ = ct_like(3, 64, 64)
    a, b = _outputs(tiny_dmtnn(), gray), _outputs(net.model, gray)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert weights.load_network(folder / "config.json").sha256 == net.sha256
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == ["model.pt", "config.json"]
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        tiny_weights(folder)


def test_damaged_foreign_and_mismatched_folders_are_refused(tmp_path):
    folder = tiny_weights(tmp_path / "dmtnn")
    config = json.loads((folder / "config.json").read_text())
    raw = bytearray((folder / "model.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="model.pt is damaged or was changed: its SHA-256"):
        weights.load_network(folder)
    (folder / "model.pt").write_bytes(bytes(raw[: len(raw) // 2]))
    _resum(folder)  # garbled (cut short), but with matching sums: torch cannot read it
    with pytest.raises(WeightsError, match="model.pt is not a PyTorch state_dict"):
        weights.load_network(folder)
    torch.save(models.build("linknet", in_channels=1, width=0.125).state_dict(),
               folder / "model.pt")
    _resum(folder)
    with pytest.raises(WeightsError, match="does not fit the dmtnn of config.json"):
        weights.load_network(folder)
    (folder / "config.json").write_text(json.dumps({**config, "format": "other"}))
    _resum(folder)
    with pytest.raises(WeightsError, match="is not a dmtnn-weights file"):
        weights.load_network(folder)
    (folder / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    _resum(folder)
    with pytest.raises(WeightsError, match="newer than this dmtnn"):
        weights.load_network(folder)
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(WeightsError, match="has no SHA256SUMS: not a dmtnn weights folder"):
        weights.load_network(folder)
    with pytest.raises(WeightsError, match="no weights folder .*DMTNN_WEIGHTS"):
        weights.load_network(tmp_path / "absent")


def test_save_network_refuses_kwargs_that_do_not_rebuild_the_model(tmp_path):
    with pytest.raises(ValueError, match="do not rebuild the given dmtnn model"):
        weights.save_network(tmp_path / "x", tiny_dmtnn(), network="dmtnn",
                             kwargs={"image_size": 128, "width": 0.125},
                             scales=SCALES, data={"pixel_um": 8.79, "image_size": 128},
                             segmenter={"network": "linknet",
                                        "kwargs": {"in_channels": 1, "width": 0.125}})
    assert not (tmp_path / "x").exists() and not list(tmp_path.iterdir())


def test_list_weights_and_the_root(tmp_path, monkeypatch):
    tiny_weights(tmp_path / "dmtnn")
    (tmp_path / "junk").mkdir()
    monkeypatch.setenv("DMTNN_WEIGHTS", str(tmp_path))
    assert weights.weights_root() == tmp_path
    rows = {r["name"]: r for r in weights.list_weights()}
    assert rows["dmtnn"]["status"] == "ok" and rows["dmtnn"]["image_size"] == 64
    assert 0.5 < rows["dmtnn"]["MB"] < 2  # ci-sized: under a megabyte of float32
    assert "has no SHA256SUMS" in rows["junk"]["status"]


def test_export_from_trained_runs_reproduces_their_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "artifacts"))
    cfg = load_profile("ci", device="cpu", segmenter={"epochs": 1}, multitask={"epochs": 1})
    with pytest.raises(FileNotFoundError, match="run notebook 04_segmenter"):
        weights.export_weights(cfg, tmp_path / "weights")
    gray, solid = ct_like(12, 64, 64)
    train, val = slice(0, 8), slice(8, 12)
    seed_everything(0, 0)
    seg = models.build("linknet", **segmenter_kwargs(cfg))
    fit(seg, SEGMENTATION, Samples(gray[train], {"mask": solid[train]}),
        Samples(gray[val], {"mask": solid[val]}), cfg.segmenter,
        run_folder(cfg, "segmenter-linknet"), device="cpu", progress=False)
    with pytest.raises(FileNotFoundError, match="run notebook 05_dmtnn"):
        weights.export_weights(cfg, tmp_path / "weights")
    phi = 1 - solid.mean(axis=(1, 2))
    targets = {"phi": phi, "mu": 30 * (1 - phi), "kappa": 35 * (1 - phi)}
    net = build_network(cfg, "dmtnn", segmenter=seg)
    run = fit(net, regression_tasks(cfg), Samples(gray[train], {k: v[train] for k, v in
                                                                 targets.items()}),
              Samples(gray[val], {k: v[val] for k, v in targets.items()}), cfg.multitask,
              run_folder(cfg, f"dmtnn-{cfg.loss.strategy}-seed0"), device="cpu",
              progress=False)
    with pytest.raises(FileNotFoundError, match="no trained CNN .* run notebook 05_dmtnn"):
        weights.export_weights(cfg, tmp_path / "weights")
    cnn = build_network(cfg, "cnn")
    cnn_run = fit(cnn, regression_tasks(cfg), Samples(gray[train], {k: v[train] for k, v in
                                                                     targets.items()}),
                  Samples(gray[val], {k: v[val] for k, v in targets.items()}), cfg.multitask,
                  run_folder(cfg, f"cnn-{cfg.loss.strategy}-seed0"), device="cpu",
                  progress=False)
    written = weights.export_weights(cfg, tmp_path / "weights", commit="abc1234")
    assert [p.name for p in written] == ["linknet", "dmtnn", "cnn"]
    cnn_loaded = weights.load_network(tmp_path / "weights" / "cnn")
    assert cnn_loaded.outputs == ("phi", "mu", "kappa")
    tasks = ("phi", "mu", "kappa")
    for k, v in _outputs(cnn_run.model, gray[:3], tasks, cnn_run.scales).items():
        # the trained model sits in channels_last (fit's bf16 layout), the loaded one does
        # not: float32 sums in another order
        np.testing.assert_allclose(v, _outputs(cnn_loaded.model, gray[:3], tasks,
                                               cnn_loaded.scales)[k], rtol=1e-5)
    loaded = weights.load_network(tmp_path / "weights" / "dmtnn")
    cfg_json = loaded.config
    assert cfg_json["training"]["profile"] == "ci" and cfg_json["training"]["best_epoch"] == 1
    assert cfg_json["training"]["commit"] == "abc1234"  # the run's, as given
    assert cfg_json["segmenter"] == {"network": "linknet",
                                     "kwargs": {"in_channels": 1, "width": cfg.segmenter.width,
                                                "input_norm": "image"}}
    assert cfg_json["data"]["pixel_um"] == cfg.data.pixel_um
    new, _ = ct_like(3, 64, 64, seed=5)
    a = _outputs(run.model, new, scales=run.scales)
    b = _outputs(loaded.model, new, scales=loaded.scales)
    np.testing.assert_array_equal(a["mask"], b["mask"])
    for k in ("phi", "mu", "kappa"):  # channels_last (trained) against NCHW (loaded)
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5)
    seg_only = weights.load_network(tmp_path / "weights" / "linknet")
    assert seg_only.outputs == ("mask",)
    np.testing.assert_array_equal(_outputs(seg_only.model, new, ("mask",), seg_only.scales)["mask"],
                                  _outputs(seg, new, ("mask",), seg_only.scales)["mask"])
    other = load_profile("ci", device="cpu", segmenter={"epochs": 2}, multitask={"epochs": 1})
    with pytest.raises(CheckpointMismatch, match="train.epochs: 1 -> 2"):
        weights.export_weights(other, tmp_path / "weights2")


def test_half_weights_are_the_float16_rounding_of_the_trained_ones(tmp_path):
    full = tiny_weights(tmp_path / "full")
    half = weights.save_network(tmp_path / "half", tiny_dmtnn(), network="dmtnn",
                                kwargs=json.loads((full / "config.json").read_text())["kwargs"],
                                scales=SCALES, data={"pixel_um": 8.79, "image_size": 64},
                                segmenter={"network": "linknet",
                                           "kwargs": {"in_channels": 1, "width": 0.125}},
                                half=True)
    ratio = (half / "model.pt").stat().st_size / (full / "model.pt").stat().st_size
    assert 0.45 < ratio < 0.6
    loaded = weights.load_network(half)
    assert loaded.config["stored_dtype"] == "float16"
    for k, v in tiny_dmtnn().state_dict().items():
        got = loaded.model.state_dict()[k]
        assert got.dtype == v.dtype
        expect = v.half().to(v.dtype) if v.is_floating_point() else v
        assert torch.equal(got, expect), k


def test_int8_matrices_are_within_half_a_step_of_each_row(tmp_path, monkeypatch):
    """``int8=True``: large matrices as int8 rows (error at most half a row's step), the
    rest as float16; smaller on disk, and read back into the same network."""
    monkeypatch.setattr(weights, "INT8_MIN_VALUES", 1000)  # the tiny DMTNN's fc layers
    model = tiny_dmtnn()
    kwargs = json.loads((tiny_weights(tmp_path / "full") / "config.json").read_text())["kwargs"]
    common = dict(network="dmtnn", kwargs=kwargs, scales=SCALES,
                  data={"pixel_um": 8.79, "image_size": 64},
                  segmenter={"network": "linknet", "kwargs": {"in_channels": 1, "width": 0.125}})
    half = weights.save_network(tmp_path / "half", model, half=True, **common)
    q = weights.save_network(tmp_path / "int8", model, int8=True, **common)
    stored = torch.load(q / "model.pt", weights_only=True)
    big = [k for k, v in model.state_dict().items()
           if v.is_floating_point() and v.dim() == 2 and v.numel() >= 1000]
    assert big and all(stored[k].dtype == torch.int8 for k in big)
    saved = (half / "model.pt").stat().st_size - (q / "model.pt").stat().st_size
    assert saved > sum(model.state_dict()[k].numel() for k in big) // 2  # 1 byte, not 2
    loaded = weights.load_network(q)
    assert loaded.config["stored_dtype"] == weights.INT8_DTYPE
    got = loaded.model.state_dict()
    assert set(got) == set(model.state_dict())
    for k, v in model.state_dict().items():
        if k in big:
            ref = v.half().float()  # quantised from the float16 rounding
            step = ref.abs().amax(dim=1, keepdim=True) / 127
            assert torch.all((got[k] - ref).abs() <= step / 2 + 1e-3 * step), k
        else:
            expect = v.half().to(v.dtype) if v.is_floating_point() else v
            assert torch.equal(got[k], expect), k
