"""dmtnn.predict and the ``dmtnn`` command, end to end on tiny random-init weights (CPU)."""

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from dmtnn import cli, images, models
from dmtnn.config import PAPER_PIXEL_UM
from dmtnn.data import real
from dmtnn.data.fem_labels import label_chunk
from dmtnn.images import ImageError, ImageWarning
from dmtnn.morphology import porosity
from dmtnn.parallel import thread_count
from dmtnn.predict import predict_stack, window_layout, write_prediction
from dmtnn.samples import SEGMENTATION
from dmtnn.train import predict
from dmtnn.weights import load_network, save_network
from tests.predict_helpers import DATA, SEG_KWARGS, SIZE, ct_like, tiny_weights

OUTPUTS = ["mask.tif", "result.json", "slices.csv", "windows.csv"]


@pytest.fixture(scope="module")
def wfolder(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights") / "dmtnn")


@pytest.fixture(scope="module")
def net(wfolder):
    return load_network(wfolder)


def _run(net, stack, pixel, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageWarning)
        return predict_stack(stack, pixel, net, device="cpu", precision="float32",
                             progress=False, **kw)


# -- the library -----------------------------------------------------------------------


def test_window_layout_partitions_every_side():
    for n in range(1, 300):
        before, wins = window_layout(n, 64)
        padded = max(n, 64)
        assert len(wins) == -(-padded // 64)
        assert before == max(0, 64 - n) // 2
        assert [w[1] for w in wins] == [0] + [w[2] for w in wins[:-1]]  # contiguous
        assert wins[-1][2] == n and all(0 <= s <= padded - 64 for s, _, _ in wins)
        for s, lo, hi in wins:  # each window holds the pixels it owns
            assert s <= lo + before and hi + before <= s + 64


def test_predict_stack_windows_resampling_and_aggregation(net):
    stack, _ = ct_like(2, 150, 170)
    pred = _run(net, stack, 4.0)
    h, w = images.grid_shape((150, 170), (4.0, 4.0), PAPER_PIXEL_UM)
    assert pred.mask.shape == (2, h, w) == (2, 68, 77)
    m = pred.method
    assert m["resampling"]["shape"] == [h, w] and m["windows"]["per_slice"] == 4
    assert m["resampling"]["pixel_um"] == [150 * 4 / h, 170 * 4 / w]
    assert m["input"]["pixel_um"] == [4.0, 4.0] and m["intensity"]["value_range"] is None
    win, sl = pred.windows, pred.slices
    assert len(win) == 8 and len(sl) == 2
    np.testing.assert_allclose(win.groupby("slice")["weight"].sum(), 1.0)
    for k in range(2):
        part = win[win["slice"] == k]
        for col in ("phi", "mu", "kappa"):
            assert sl.loc[k, col] == pytest.approx((part[col] * part["weight"]).sum())
        assert sl.loc[k, "phi_mask"] == porosity(pred.mask[k])
    # every owned region of the mask is the network's mask of its own window
    gray = images.to_uint8(images.area_resample(stack[1], (h, w)), None)
    box = ["y", "x", "own_y0", "own_y1", "own_x0", "own_x1"]
    for y, x, y0, y1, x0, x1 in win[win["slice"] == 1][box].to_numpy(int):
        own = predict(net.model, gray[y:y + SIZE, x:x + SIZE], SEGMENTATION, net.scales,
                      device="cpu", precision="float32")["mask"][0]
        np.testing.assert_array_equal(pred.mask[1, y0:y1, x0:x1],
                                      own[y0 - y:y1 - y, x0 - x:x1 - x])
    again = _run(net, stack, 4.0)  # same input, same numbers
    pd.testing.assert_frame_equal(again.windows, win)


def _passes(net, stack, torch_threads, **kw):
    """A prediction in a process of ``torch_threads`` threads, with the size of
    each forward pass and the torch threads it ran on."""
    seen = []
    hook = net.model.register_forward_pre_hook(
        lambda _m, args: seen.append((len(args[0]), torch.get_num_threads())))
    try:
        with thread_count(torch_threads):
            pred = _run(net, stack, 4.0, **kw)
    finally:
        hook.remove()
    return pred, sorted(seen)


def test_forward_passes_do_not_depend_on_the_machines_threads(net):
    stack, _ = ct_like(5, 150, 170)  # 4 windows a slice at 4 um
    # 8 windows a pass: two whole slices, then the last slice alone
    one, seen1 = _passes(net, stack, 1, batch_size=8)
    three, seen3 = _passes(net, stack, 3, batch_size=8)
    assert seen1 == seen3 == [(4, 1), (8, 1), (8, 1)]
    assert one.method["threads"]["lanes"] == 1 and three.method["threads"]["lanes"] == 3
    assert three.method["threads"]["windows_per_pass"] == 8
    pd.testing.assert_frame_equal(one.windows, three.windows)
    np.testing.assert_array_equal(one.mask, three.mask)
    # more windows a slice than a pass holds: each slice in passes of 3 and 1, however many lanes
    assert _passes(net, stack, 1, batch_size=3)[1] == _passes(net, stack, 3, batch_size=3)[1] \
        == [(1, 1)] * 5 + [(3, 1)] * 5
    # threads=0: one pass at a time on all the process's threads
    every, seen = _passes(net, stack, 3, batch_size=8, threads=0)
    assert seen == [(4, 3), (8, 3), (8, 3)] and every.method["threads"]["per_pass"] == 3
    with pytest.raises(ValueError, match="threads must be >= 0"):
        _run(net, stack, 4.0, threads=-1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        _run(net, stack, 4.0, batch_size=0)


def test_small_slices_are_padded_by_reflection_or_refused(net):
    stack, _ = ct_like(1, 40, 50)
    pred = _run(net, stack, PAPER_PIXEL_UM)
    assert pred.mask.shape == (1, 40, 50) and len(pred.windows) == 1
    assert pred.method["windows"]["padding"]["px"] == [[12, 12], [7, 7]]
    assert pred.windows.loc[0, "weight"] == 1.0 and (pred.windows.loc[0, "y"],
                                                     pred.windows.loc[0, "x"]) == (-12, -7)
    with pytest.raises(ImageError, match="smaller than its 64 px window.*--small pad"):
        _run(net, stack, PAPER_PIXEL_UM, small="refuse")
    with pytest.raises(ImageError, match="by more than half .*at least about 57 px"):
        _run(net, ct_like(1, 50, 50)[0], 5.0)  # 28 px at 8.79 um: under half of 64


def test_mask_on_the_input_grid_and_inverted_input(net):
    stack, _ = ct_like(1, 128, 128)
    half = PAPER_PIXEL_UM / 2  # each network pixel is 2 x 2 input pixels
    pred = _run(net, stack, half)
    mapped = _run(net, stack, half, mask_grid="input")
    assert mapped.mask.shape == (1, 128, 128) and mapped.method["mask"]["pixel_um"] == [half] * 2
    np.testing.assert_array_equal(mapped.mask[:, ::2, ::2], pred.mask)
    np.testing.assert_array_equal(mapped.mask[:, 1::2, 1::2], pred.mask)
    inv = _run(net, 255 - stack, half, invert=True)
    np.testing.assert_array_equal(inv.mask, pred.mask)
    assert inv.method["intensity"]["inverted"] is True


def test_fem_beside_the_network(net):
    stack, _ = ct_like(1, 64, 64)
    pred = _run(net, stack, PAPER_PIXEL_UM, fem=True)
    row = pred.windows.iloc[0]
    ref = label_chunk(pred.mask[:1], {"K": 36.6, "G": 45.0, "plane": "strain",
                                      "tol": None, "dtype": "float32"}, "cpu")
    assert row.fem_mu == pytest.approx(ref["mu"][0]) and row.fem_kappa == pytest.approx(
        ref["kappa"][0])
    assert pred.slices.loc[0, "fem_mu"] == pytest.approx(row.fem_mu)
    assert pred.method["fem"]["K"] == 36.6 and pred.method["fem"]["plane"] == "strain"


def test_a_segmenter_alone_gives_the_mask_and_its_porosity(tmp_path):
    torch.manual_seed(1)
    seg = models.build("linknet", **SEG_KWARGS).eval()
    folder = save_network(tmp_path / "linknet", seg, network="linknet", kwargs=SEG_KWARGS,
                          scales={"input": (0.45, 0.2)}, data=DATA)
    net = load_network(folder)
    assert net.outputs == ("mask",)
    stack, _ = ct_like(1, 64, 64)
    pred = _run(net, stack, PAPER_PIXEL_UM)
    own = predict(seg, stack, SEGMENTATION, {"input": (0.45, 0.2)}, device="cpu",
                  precision="float32")["mask"]
    np.testing.assert_array_equal(pred.mask, own)
    assert "phi" not in pred.slices and pred.slices.loc[0, "phi_mask"] == porosity(own)


def test_the_cnn_gives_porosity_and_moduli_and_writes_no_mask(tmp_path):
    torch.manual_seed(2)
    kwargs = {"image_size": SIZE, "width": 0.125}
    cnn = models.build("cnn", **kwargs).eval()
    scales = {"input": (0.45, 0.2), "phi": (0.2, 0.05), "mu": (10.0, 3.0), "kappa": (12.0, 3.0)}
    folder = save_network(tmp_path / "cnn", cnn, network="cnn", kwargs=kwargs, scales=scales,
                          data=DATA)
    net = load_network(folder)
    assert net.outputs == ("phi", "mu", "kappa")
    stack, _ = ct_like(2, SIZE, SIZE)
    pred = _run(net, stack, PAPER_PIXEL_UM)
    assert pred.mask is None and pred.method["mask"] is None
    assert {"phi", "mu", "kappa"} <= set(pred.slices) and "phi_mask" not in pred.slices
    written = write_prediction(pred, tmp_path / "out")
    assert [p.name for p in written] == ["windows.csv", "slices.csv", "result.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "result.json", "slices.csv", "windows.csv"]


def test_write_prediction_all_or_nothing(net, tmp_path, monkeypatch):
    stack, _ = ct_like(2, 64, 64)
    pred = _run(net, stack, PAPER_PIXEL_UM)
    files = write_prediction(pred, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == OUTPUTS
    assert [f.name for f in files] == ["mask.tif", "windows.csv", "slices.csv", "result.json"]
    with tifffile.TiffFile(tmp_path / "out" / "mask.tif") as tif:
        np.testing.assert_array_equal(tif.asarray(), pred.mask)
        pixel, source, _ = images.tiff_pixel_size(tif)
    assert pixel == pytest.approx((PAPER_PIXEL_UM, PAPER_PIXEL_UM), rel=1e-6) and "um" in source
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert set(result) == {"method", "warnings", "summary", "slices", "windows"}
    assert len(result["windows"]) == 2 and result["slices"][1]["phi"] == pred.slices.loc[1, "phi"]

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        write_prediction(pred, tmp_path / "out2")
    with pytest.raises(OSError, match="disk full"):
        write_prediction(pred, tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folder left
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == OUTPUTS  # old one intact


# -- the command ---------------------------------------------------------------------


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_predict_reads_the_pixel_size_from_the_tiff(wfolder, tmp_path, capsys):
    stack, _ = ct_like(2, 100, 100)
    tifffile.imwrite(tmp_path / "scan.tif", stack, imagej=True, resolution=(1 / 5.0, 1 / 5.0),
                     metadata={"unit": "micron", "axes": "ZYX"})
    code, out, err = _cli(capsys, "predict", tmp_path / "scan.tif", "--weights", wfolder,
                          "--out", tmp_path / "res", "-q", "--precision", "float32")
    assert code == 0, err
    assert "pixel 5 x 5 um (TIFF ImageJ metadata (unit 'micron'" in out
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == OUTPUTS
    method = json.loads((tmp_path / "res" / "result.json").read_text())["method"]
    assert method["input"]["pixel_um_source"].startswith("TIFF ImageJ metadata")
    assert method["input"]["pixel_um"] == [5.0, 5.0] and method["resampling"]["shape"] == [57, 57]
    assert method["network"]["sha256"] == load_network(wfolder).sha256
    assert method["threads"]["per_pass"] == 1  # --threads' default
    for flag, value in (("--threads", "-1"), ("--threads", "two"), ("--batch-size", "0")):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["predict", "scan.tif", "-o", "res", flag, value])
        assert f"argument {flag}: " in capsys.readouterr().err
    slices = pd.read_csv(tmp_path / "res" / "slices.csv")
    assert list(slices["slice"]) == [0, 1] and {"phi", "mu", "kappa"} <= set(slices)
    # --pixel-um wins over the metadata, and says so
    code, out, err = _cli(capsys, "predict", tmp_path / "scan.tif", "--weights", wfolder,
                          "--out", tmp_path / "res2", "-q", "--pixel-um", "8.79")
    assert code == 0 and "using --pixel-um 8.79; the file's metadata says 5 um" in err


def test_cli_warns_and_records_what_it_rescaled(wfolder, tmp_path, capsys):
    stack, _ = ct_like(1, 64, 64)
    np.save(tmp_path / "scan.npy", stack.astype(np.uint16) * 257)
    code, _, err = _cli(capsys, "predict", tmp_path / "scan.npy", "--weights", wfolder,
                        "--pixel-um", "30", "--out", tmp_path / "res", "-q")
    assert code == 0
    assert "warning: scan.npy is uint16, not uint8: gray values rescaled linearly" in err
    assert "warning: scan.npy: pixels of 30 um are 3.41 x coarser" in err
    result = json.loads((tmp_path / "res" / "result.json").read_text())
    assert any("uint16" in w for w in result["warnings"])
    assert result["method"]["intensity"]["rule"].startswith("linear: the 0.5th percentile")
    np.save(tmp_path / "noise.npy", np.random.default_rng(0).integers(0, 256, (64, 64),
                                                                       dtype=np.uint8))
    code, _, err = _cli(capsys, "predict", tmp_path / "noise.npy", "--weights", wfolder,
                        "--pixel-um", str(PAPER_PIXEL_UM), "--out", tmp_path / "res2", "-q")
    assert code == 0 and "noise.npy: slice 0 look like noise" in err


def test_installed_entry_point_runs_predict(wfolder, tmp_path):
    exe = Path(sys.executable).with_name("dmtnn")
    assert exe.is_file(), f"no {exe}: reinstall the package (pip install -e .) for its scripts"
    np.save(tmp_path / "slice.npy", ct_like(1, 64, 64)[0][0])
    env = {**os.environ, "DMTNN_PROGRESS": "0"}
    done = subprocess.run([str(exe), "predict", str(tmp_path / "slice.npy"), "--pixel-um",
                           str(PAPER_PIXEL_UM), "--weights", str(wfolder), "--out",
                           str(tmp_path / "res")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 slice(s), 1 window(s) of 64 px each" in done.stdout
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == OUTPUTS
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             timeout=300)
    assert version.returncode == 0 and version.stdout.strip() == "dmtnn 0.1.0"


def _bad_inputs(tmp_path):
    """name -> (file, extra arguments, words the error must hold)."""
    good, _ = ct_like(1, 64, 64)
    np.save(tmp_path / "rgb.npy", np.repeat(good[0][..., None], 3, axis=2))
    tifffile.imwrite(tmp_path / "rgb.tif", np.repeat(good[0][..., None], 3, axis=2),
                     photometric="rgb")
    np.save(tmp_path / "four.npy", good[None])
    nan = good.astype(np.float32)
    nan[0, 5, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "small.npy", good[:, :20, :20])
    np.save(tmp_path / "good.npy", good)
    good.tofile(tmp_path / "good.raw")
    pix = ["--pixel-um", str(PAPER_PIXEL_UM)]
    return {
        "rgb npy": ("rgb.npy", pix, ["rgb.npy has shape (64, 64, 3): an RGB image"]),
        "rgb tiff": ("rgb.tif", pix, ["rgb.tif holds colour samples", "RGB"]),
        "4D": ("four.npy", pix, ["four.npy has shape (1, 1, 64, 64): a 4D array"]),
        "NaN": ("nan.npy", pix, ["nan.npy has NaN or infinite values"]),
        "too small": ("small.npy", pix, ["small.npy: slices of 20 x 20 px", "64 px window"]),
        "no pixel size": ("good.npy", [], ["good.npy: no pixel size given", "--pixel-um"]),
        "raw, no shape": ("good.raw", pix, ["good.raw is read as a headerless raw", "--shape"]),
        "raw, wrong size": ("good.raw", [*pix, "--shape", "2,64,64", "--dtype", "uint8"],
                            ["good.raw has 4096 bytes", "--shape (2, 64, 64)"]),
        "missing": ("absent.tif", pix, ["absent.tif does not exist"]),
    }


def test_cli_refuses_bad_inputs_without_leaving_output(wfolder, tmp_path, capsys):
    for case, (name, extra, words) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{case.replace(' ', '_').replace(',', '')}"
        code, _, err = _cli(capsys, "predict", tmp_path / name, "--weights", wfolder,
                            "--out", out, "-q", *extra)
        assert code == 2, case
        assert err.startswith("dmtnn predict: error: "), case
        for word in words:
            assert word in err, (case, err)
        assert not out.exists(), case
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder


def test_cli_refuses_bad_weights_and_an_existing_output(wfolder, tmp_path, capsys):
    np.save(tmp_path / "good.npy", ct_like(1, 64, 64)[0])
    args = ["predict", tmp_path / "good.npy", "--pixel-um", "8.79", "-q"]
    broken = tiny_weights(tmp_path / "broken")
    (broken / "config.json").write_text((broken / "config.json").read_text() + " ")
    code, _, err = _cli(capsys, *args, "--weights", broken, "--out", tmp_path / "o1")
    assert code == 2 and "config.json is damaged or was changed" in err
    assert not (tmp_path / "o1").exists()
    code, _, err = _cli(capsys, *args, "--weights", tmp_path, "--out", tmp_path / "o1")
    assert code == 2 and "has no SHA256SUMS: not a dmtnn weights folder" in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    code, _, err = _cli(capsys, *args, "--weights", wfolder, "--out", tmp_path / "taken")
    assert code == 2 and "--out" in err and "--overwrite" in err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    code, _, err = _cli(capsys, *args, "--weights", wfolder, "--out", tmp_path / "taken",
                        "--overwrite")
    assert code == 0 and sorted(p.name for p in (tmp_path / "taken").iterdir()) == OUTPUTS


def test_cli_without_weights_says_where_to_get_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DMTNN_WEIGHTS", str(tmp_path / "none"))
    np.save(tmp_path / "good.npy", ct_like(1, 64, 64)[0])
    code, _, err = _cli(capsys, "predict", tmp_path / "good.npy", "--pixel-um", "8.79",
                        "--out", tmp_path / "o")
    assert code == 2 and "no shipped weights found" in err and "--weights FOLDER" in err


def test_cli_weights_list_and_verify(wfolder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DMTNN_WEIGHTS", str(wfolder.parent))
    code, out, _ = _cli(capsys, "weights", "list")
    assert code == 0 and out.startswith("dmtnn") and "64 px at 8.789 um, profile test" in out
    code, out, _ = _cli(capsys, "weights", "list", "--markdown")
    assert code == 0 and out.splitlines()[0].startswith("| folder | network |")
    assert "| `dmtnn` | dmtnn | 64 px at 8.79 µm | `test`, " in out
    code, out, _ = _cli(capsys, "weights", "verify")
    assert code == 0 and out.startswith(f"ok {wfolder}: dmtnn, outputs mask, phi, mu, kappa")
    code, _, err = _cli(capsys, "weights", "verify", tmp_path / "nothing")
    assert code == 2 and "no weights folder" in err


def test_cli_pipeline_without_papermill_says_how_to_install(capsys, monkeypatch):
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "papermill" else real_find(name, *a))
    code, _, err = _cli(capsys, "pipeline", "--profile", "ci", "--only", "01")
    assert code == 2 and "needs papermill" in err and "install with pip install -e .[book]" in err


@pytest.mark.realdata
def test_worked_example_real_berea_as_ct(wfolder, tmp_path, capsys):
    if "icl_400" not in real.available():
        pytest.skip(f"real volume icl_400 not found under {real.real_root()}")
    code, out, _ = _cli(capsys, "example", tmp_path / "berea.tif", "--slices", "2")
    assert code == 0 and "(2, 400, 400) uint8, 5.345 um pixels (real)" in out
    code, out, err = _cli(capsys, "predict", tmp_path / "berea.tif", "--weights", wfolder,
                          "--out", tmp_path / "res", "-q")
    assert code == 0, err
    result = json.loads((tmp_path / "res" / "result.json").read_text())
    assert result["method"]["resampling"]["shape"] == [243, 243]  # 400 x 5.345 / 8.789
    assert result["method"]["windows"]["per_slice"] == 16
    stats = pd.read_csv(tmp_path / "res" / "slices.csv")
    assert (stats["autocorr"] > images.MIN_AUTOCORR).all()  # real CT is far from noise
