import pytest

from dmtnn.config import load_profile


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run torch on one thread for a module (the FEM tests use it): their small grids gain
    nothing from two, and a contended 2-core CPU (other processes busy) slows torch's
    thread pool down by 10-100x."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_cfg(tmp_path, monkeypatch):
    """A two-rock configuration with a private artifact folder."""
    monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("DMTNN_PROGRESS", "0")
    return load_profile(
        "ci",
        data={
            "image_size": 32,
            "slices_per_rock": 12,
            "val_slices_per_rock": 1,
            "test_slices_per_rock": 1,
            "heldout_slices_per_rock": 3,
            "train_rocks": ["Berea"],
            "heldout_rocks": ["Castle Gate"],
            "unseen_rocks": [],
            "workers": 1,
        },
    )
