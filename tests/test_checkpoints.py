import logging

import pytest
import torch
from torch import nn

from dmtnn.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointMismatch,
    architecture,
    load_checkpoint,
    read,
    read_history,
    resume_state,
    run_folder,
    save,
)


def test_resume_state_is_the_one_rule_for_an_existing_checkpoint(tmp_path, caplog):
    path = tmp_path / "last.pt"
    ident = {"model": "Toy", "train": {"lr": 0.1, "epochs": 3}}
    assert resume_state(path, ident) is None  # nothing to resume
    save(path, {"format": CHECKPOINT_FORMAT, "identity": ident, "epoch": 2})
    assert resume_state(path, ident)["epoch"] == 2
    other = {"model": "Toy", "train": {"lr": 0.2, "epochs": 3}}
    with pytest.raises(CheckpointMismatch, match=r"another setup \(train.lr: 0.1 -> 0.2\)"):
        resume_state(path, other)
    with caplog.at_level(logging.WARNING, logger="dmtnn.checkpoints"):
        assert resume_state(path, other, on_mismatch="restart") is None
    assert "train.lr: 0.1 -> 0.2" in caplog.text and "training afresh" in caplog.text
    with pytest.raises(ValueError, match="on_mismatch"):
        resume_state(path, ident, on_mismatch="ignore")


def test_a_damaged_checkpoint_is_a_mismatch(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatch, match="cannot be read"):
        read(path)
    assert resume_state(path, {}, on_mismatch="restart") is None


def test_load_checkpoint_checks_the_architecture(tmp_path):
    a, b = nn.Linear(2, 3), nn.Linear(2, 4)
    save(tmp_path / "best.pt", {"identity": {"model": "Linear", "architecture": architecture(a)},
                                "model": a.state_dict()})
    fresh = nn.Linear(2, 3)
    state = load_checkpoint(tmp_path / "best.pt", fresh)
    assert torch.equal(fresh.weight, a.weight) and "identity" in state
    with pytest.raises(CheckpointMismatch, match="architecture"):
        load_checkpoint(tmp_path / "best.pt", b)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt", a)
    a.weight.requires_grad_(False)  # which parameters train is part of the architecture
    assert architecture(a) != architecture(nn.Linear(2, 3))


def test_run_folders_and_history(tiny_cfg, tmp_path):
    folder = run_folder(tiny_cfg, "segmenter-linknet")
    assert folder.parts[-3:] == (tiny_cfg.profile, "models", "segmenter-linknet")
    with pytest.raises(FileNotFoundError, match="train the model first"):
        read_history(tmp_path)
