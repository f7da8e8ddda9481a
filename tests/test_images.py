import warnings

import numpy as np
import pytest
import tifffile
import torch

from dmtnn import images, models
from dmtnn.config import load_profile
from dmtnn.images import ImageError, ImageWarning
from dmtnn.segmentation import segment, threshold_baseline
from tests.predict_helpers import ct_like

# -- shape and dtype ------------------------------------------------------------------


def test_as_stack_accepts_images_and_stacks_as_views():
    a = np.zeros((3, 20, 30), np.uint16)
    assert images.as_stack(a).shape == (3, 20, 30)
    assert np.shares_memory(images.as_stack(a), a)
    assert images.as_stack(a[0]).shape == (1, 20, 30)
    assert images.as_stack(np.zeros((3, 64, 64))).shape == (3, 64, 64)  # 3 slices, not RGB


@pytest.mark.parametrize("array, words", [
    (np.zeros((64, 64, 3), np.uint8), ["has shape (64, 64, 3)", "an RGB image", "rgb2gray"]),
    (np.zeros((64, 64, 4), np.uint8), ["an RGBA image"]),
    (np.zeros((2, 64, 64, 3), np.uint8), ["a stack of RGB(A) images"]),
    (np.zeros((2, 2, 64, 64), np.uint8), ["a 4D array"]),
    (np.zeros(64, np.uint8), ["(1D)"]),
    (np.zeros((0, 64, 64), np.uint8), ["is empty"]),
    (np.zeros((64, 64), bool), ["boolean array (a mask?)"]),
    (np.zeros((64, 64), complex), ["dtype complex128"]),
    (np.zeros((2, 64, 5), np.uint8), ["64 x 5 px are too small"]),
])
def test_as_stack_names_what_is_wrong(array, words):
    with pytest.raises(ImageError) as err:
        images.as_stack(array, "scan.npy")
    assert str(err.value).startswith("scan.npy")
    for word in words:
        assert word in str(err.value)


def test_as_stack_refuses_nan_and_inf_naming_the_slices():
    a = np.ones((4, 16, 16), np.float32)
    a[1, 3, 3], a[3, 0, 0] = np.nan, np.inf
    with pytest.raises(ImageError, match=r"NaN or infinite values in 2 slice\(s\), first \[1, 3\]"):
        images.as_stack(a)


def test_intensity_rule_maps_robust_percentiles_to_0_and_255():
    a = np.arange(1001, dtype=np.uint16).reshape(1, 7, 143)
    assert images.intensity_range(a) == (5.0, 995.0)  # np.percentile of 0..1000 at 0.5 / 99.5
    assert images.intensity_range(a.astype(np.uint8)) is None
    u = images.to_uint8(a, (5.0, 995.0))
    assert u.dtype == np.uint8
    assert u.flat[5] == 0 and u.flat[995] == 255 and u.flat[0] == 0 and u.flat[1000] == 255
    assert u.flat[500] == round((500 - 5) * 255 / 990)  # 127
    assert images.to_uint8(np.full((2, 2), 7.0), (7.0, 7.0)).tolist() == [[0, 0], [0, 0]]


def test_as_uint8_stack_rescales_other_dtypes_with_a_warning():
    gray, _ = ct_like(1, 64, 64)
    wide = gray.astype(np.uint16) * 100
    lo, hi = np.percentile(wide, [0.5, 99.5])
    with pytest.warns(ImageWarning, match=rf"uint16, not uint8: .*0.5th percentile \({lo:g}\)"):
        out, info = images.as_uint8_stack(wide, "scan")
    assert info["value_range"] == (lo, hi)
    np.testing.assert_array_equal(out, images.to_uint8(wide, (lo, hi)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean uint8 CT-like slice: no warning at all
        same, info = images.as_uint8_stack(gray)
    assert same is not None and info == {"value_range": None, "warnings": []}


# -- quality -------------------------------------------------------------------------


def test_lag1_autocorrelation_on_exact_cases():
    checker = np.indices((6, 6)).sum(0) % 2
    assert images.lag1_autocorrelation(checker) == -1.0
    stripes = np.tile([0.0, 1.0], (6, 3))  # alternating columns: -1 across, +1 down
    assert images.lag1_autocorrelation(stripes) == pytest.approx(0.0)
    assert np.isnan(images.lag1_autocorrelation(np.ones((5, 5))))
    noise = np.random.default_rng(0).standard_normal((256, 256))
    assert abs(images.lag1_autocorrelation(noise)) < 0.02
    gray, _ = ct_like(1, 128, 128)
    assert images.lag1_autocorrelation(gray[0]) > 0.8


def test_quality_warnings_flag_constant_and_noise_slices_only():
    gray, _ = ct_like(3, 64, 64)
    gray[1] = 120
    gray[1, 0, 0] = 121  # std 0.12 gray levels
    gray[2] = np.random.default_rng(1).integers(0, 256, (64, 64))
    found = images.quality_warnings(images.image_stats(gray), "scan")
    assert len(found) == 2
    assert found[0].startswith("scan: slice 1 near-constant")
    assert found[1].startswith("scan: slice 2 look like noise")
    assert images.quality_warnings(images.image_stats(gray[:1])) == []


def test_contrast_warning_on_bright_pores_or_high_porosity():
    gray, solid = ct_like(2, 64, 64)
    assert images.contrast_warning(gray, solid) is None
    assert "contrast may be inverted" in images.contrast_warning(255 - gray, solid)
    assert "predicted porosity 1.00, no grains predicted" in images.contrast_warning(
        gray, np.zeros_like(solid))


def test_pixel_size_warnings_thresholds():
    assert images.pixel_size_warnings(8.79, 8.79, 2.25) == []
    assert images.pixel_size_warnings(2.25, 8.79, 2.25) == []  # the training scans' own voxels
    assert images.pixel_size_warnings(17.5, 8.79, 2.25) == []  # just under 2x coarser
    coarse = images.pixel_size_warnings(17.7, 8.79, 2.25)
    assert len(coarse) == 1 and "2.01 x coarser" in coarse[0]
    fine = images.pixel_size_warnings(1.1, 8.79, 2.25)
    assert len(fine) == 1 and "much finer than the training scans' 2.25 um" in fine[0]


# -- resampling ----------------------------------------------------------------------


def test_resample_weights_are_exact_area_shares_both_ways():
    np.testing.assert_allclose(images.resample_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(images.resample_weights(2, 3), [[1, 0], [0.5, 0.5], [0, 1]])
    for n_in, n_out in ((1000, 256), (256, 1000), (7, 7), (5, 13)):
        np.testing.assert_allclose(images.resample_weights(n_in, n_out).sum(1), 1.0)


def test_area_resample_averages_blocks_and_keeps_the_mean():
    a = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(images.area_resample(a, (2, 2)), [[2.5, 4.5], [10.5, 12.5]])
    x = np.random.default_rng(0).random((2, 100, 77))
    for shape in ((39, 30), (256, 200)):
        np.testing.assert_allclose(images.area_resample(x, shape).mean(axis=(1, 2)),
                                   x.mean(axis=(1, 2)))
    assert images.grid_shape((1000, 500), (2.25, 2.25), 2.25 * 1000 / 256) == (256, 128)


# -- files ---------------------------------------------------------------------------


def test_tiff_pixel_size_rules(tmp_path):
    a = np.zeros((2, 16, 16), np.uint8)
    cases = {
        "ij.tif": (dict(imagej=True, resolution=(1 / 5.345, 1 / 5.345),
                        metadata={"unit": "um", "spacing": 10.69}), (5.345, "ImageJ"), 10.69),
        "mm.tif": (dict(imagej=True, resolution=(1 / 0.002, 1 / 0.002),
                        metadata={"unit": "mm"}), (2.0, "ImageJ"), None),
        "cm.tif": (dict(resolution=(1e4 / 2.5, 1e4 / 2.5), resolutionunit="CENTIMETER"),
                   (2.5, "centimeter"), None),
        "dpi.tif": (dict(resolution=(72, 72), resolutionunit="INCH"), (None, "dots per inch"),
                    None),
        "plain.tif": ({}, (None, "without a unit"), None),
    }
    for name, (kwargs, (pixel, source), spacing) in cases.items():
        tifffile.imwrite(tmp_path / name, a, **kwargs)
        f = images.read_image(tmp_path / name)
        assert f.kind == "tiff" and f.array.shape == (2, 16, 16)
        assert (None if f.pixel_um is None else round(f.pixel_um[1], 6)) == pixel, name
        assert source in f.pixel_source, name
        assert f.spacing_um == pytest.approx(spacing) if spacing else f.spacing_um is None


def test_read_image_raw_npy_and_what_they_need(tmp_path):
    a = np.arange(2 * 20 * 30, dtype=">u2").reshape(2, 20, 30)
    a.tofile(tmp_path / "scan.raw")
    f = images.read_image(tmp_path / "scan.raw", shape=(2, 20, 30), dtype=">u2")
    np.testing.assert_array_equal(f.array, a)
    with pytest.raises(ImageError, match="give its --shape"):
        images.read_image(tmp_path / "scan.raw")
    with pytest.raises(ImageError, match=r"has 2400 bytes, but --shape \(2, 20, 20\) x --dtype"):
        images.read_image(tmp_path / "scan.raw", shape=(2, 20, 20), dtype="uint16")
    with pytest.raises(ImageError, match="'uint17' is not a NumPy dtype"):
        images.read_image(tmp_path / "scan.raw", shape=(2, 20, 30), dtype="uint17")
    np.save(tmp_path / "scan.npy", a)
    assert images.read_image(tmp_path / "scan.npy").array.shape == (2, 20, 30)
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ImageError, match="bad.tif cannot be read as a TIFF"):
        images.read_image(tmp_path / "bad.tif")
    with pytest.raises(FileNotFoundError, match="missing.tif does not exist"):
        images.read_image(tmp_path / "missing.tif")


# -- the library's segmenters use the same checks ---------------------------------------


def test_segment_and_threshold_baseline_refuse_what_predict_refuses():
    cfg = load_profile("ci", device="cpu")
    model = models.build("linknet", in_channels=1, width=0.125).eval()
    scales = {"input": (0.45, 0.2)}
    with pytest.raises(ImageError, match=r"gray has shape \(64, 64, 3\): an RGB image"):
        segment(model, scales, np.zeros((64, 64, 3), np.uint8), cfg)
    with pytest.raises(ImageError, match="must be multiples of 32 .*predict_stack tiles"):
        segment(model, scales, ct_like(2, 64, 48)[0], cfg)
    with pytest.raises(ImageError, match="a 4D array"):
        threshold_baseline(np.zeros((2, 2, 64, 64), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        threshold_baseline(np.full((64, 64), np.nan))
    gray, _ = ct_like(2, 64, 64)
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = segment(model, scales, gray.astype(np.uint16), cfg)
    assert masks.shape == (2, 64, 64)
    assert any("gray is uint16, not uint8" in str(w.message) for w in caught)
    np.testing.assert_array_equal(threshold_baseline(gray.astype(np.uint16) * 256),
                                  threshold_baseline(gray))
