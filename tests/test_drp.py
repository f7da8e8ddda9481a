import numpy as np
import pytest

from dmtnn.data import drp

SHAPE = (6, 40, 40)


def write_rock(root, prefix="Berea", shape=SHAPE, binary_values=(0, 1), seed=0):
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, shape, dtype=np.uint8)
    binary = rng.choice(np.array(binary_values, dtype=np.uint8), size=shape)
    gray.tofile(root / f"{prefix}_2d25um_grayscale.raw")
    binary.tofile(root / f"{prefix}_2d25um_binary.raw")
    return gray, binary


def test_reads_slices_back_along_any_axis(tmp_path):
    gray, _ = write_rock(tmp_path)
    vol = drp.open_volume(drp.volume_path(tmp_path, "Berea"), SHAPE)
    assert isinstance(vol, np.memmap)  # nothing read until sliced
    for axis in range(3):
        got = drp.read_slices(vol, [1, 3], axis=axis)
        assert np.array_equal(got, np.stack([np.take(gray, i, axis=axis) for i in (1, 3)]))


def test_load_rock_slices_reduces_gray_by_area_and_binary_by_fraction(tmp_path):
    gray, binary = write_rock(tmp_path)
    out = drp.load_rock_slices("berea", [0, 5], root=tmp_path, image_size=10, shape=SHAPE)
    assert out["gray"].shape == out["label"].shape == (2, 10, 10)
    block = gray[0, :4, :4].astype(float).mean()
    assert out["gray"][0, 0, 0] == np.rint(block)
    assert out["label"][1, 0, 0] == int(binary[5, :4, :4].mean() >= 0.5)


def test_wrong_size_names_the_file_and_both_sizes(tmp_path):
    write_rock(tmp_path)
    path = drp.volume_path(tmp_path, "Berea")
    with pytest.raises(ValueError, match=rf"{path.name}: expected 10000 bytes .* found 9600 bytes"):
        drp.open_volume(path, (10, 10, 100))
    with pytest.raises(ValueError, match="expected 19200 bytes"):
        drp.open_volume(path, SHAPE, dtype="<u2")


def test_binary_with_other_values_is_refused(tmp_path):
    write_rock(tmp_path, binary_values=(0, 255))
    with pytest.raises(ValueError, match=r"binary.raw: a binary volume must hold only 0 .* \[0, 255\]"):
        drp.load_rock_slices("Berea", [0], root=tmp_path, image_size=10, shape=SHAPE)


def test_missing_root_file_and_index(tmp_path, monkeypatch):
    monkeypatch.delenv(drp.ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="DMTNN_DATA_ROOT"):
        drp.data_root()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        drp.data_root(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="Kirby_2d25um_grayscale.raw not found"):
        drp.open_volume(drp.volume_path(tmp_path, "Kirby"), SHAPE)
    write_rock(tmp_path)
    vol = drp.open_volume(drp.volume_path(tmp_path, "Berea"), SHAPE)
    with pytest.raises(IndexError, match="outside 0..5"):
        drp.read_slices(vol, [6])
    with pytest.raises(ValueError, match="unknown volume kind"):
        drp.volume_path(tmp_path, "Berea", "segmented")
