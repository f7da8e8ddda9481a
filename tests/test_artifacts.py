import json
import os

import numpy as np
import pytest

from dmtnn.artifacts import CorruptArtifactError, Store, atomic_write


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no partial file left


def test_atomic_write_gives_the_file_the_usual_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "page.svg", lambda tmp: tmp.write_text("<svg/>"))
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_store_round_trip_staleness_and_corruption(tmp_path):
    store = Store(tmp_path)
    arrays = {"a": np.arange(5), "b": np.eye(2)}
    store.save_arrays("x/data.npz", arrays, key="k1", config={"seed": 1})
    assert store.status("x/data.npz", "k1") == "ok"
    assert store.status("x/data.npz", "k2") == "stale"
    assert store.status("y.npz", "k1") == "missing"
    got = store.load_arrays("x/data.npz", key="k1")
    assert np.array_equal(got["a"], arrays["a"]) and np.array_equal(got["b"], arrays["b"])
    assert store.manifest()["x/data.npz"]["config"] == {"seed": 1}
    with pytest.raises(KeyError, match="stale"):
        store.load_arrays("x/data.npz", key="k2")
    # damage the file: the error names it and the manifest
    path = tmp_path / "x/data.npz"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CorruptArtifactError, match=r"data.npz is damaged.*manifest.json"):
        store.load_arrays("x/data.npz")


def test_json_artifacts_and_broken_manifest(tmp_path):
    store = Store(tmp_path)
    store.save_json("r.json", {"pa": np.float64(0.97)}, key="k")
    assert store.load_json("r.json", key="k") == {"pa": 0.97}
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(CorruptArtifactError, match="manifest.json is not valid JSON"):
        store.status("r.json", "k")
    assert json.loads((tmp_path / "r.json").read_text()) == {"pa": 0.97}  # nothing lost
