import numpy as np
import pytest

from dmtnn.config import PAPER_PIXEL_UM, PROFILES, SEED_PARTS, config_hash, load_profile
from dmtnn.data.layout import rock_layout


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_loads(name):
    cfg = load_profile(name)
    assert cfg.profile == name
    assert cfg.data.image_size % 32 == 0  # the segmenter needs sides divisible by 32


def test_paper_profile_is_the_papers_setting():
    """Six rocks x 1000 slices of 256 px (1000 px at 2.25 um), split 5000/500/500."""
    d = load_profile("paper").data
    assert (d.image_size, d.native_size, len(d.train_rocks)) == (256, 1000, 6)
    assert PAPER_PIXEL_UM == pytest.approx(8.7890625)
    split = rock_layout(d, "Berea").split
    # per rock 834 / 83 / 83 slices: 5004 / 498 / 498 over six rocks (paper: 5000 / 500 / 500)
    assert np.bincount(split).tolist() == [834, 83, 83]
    assert load_profile("paper").multitask.epochs == 100
    assert "Castle Gate" not in d.train_rocks and d.heldout_rocks == ("Castle Gate",)


def test_overrides_and_errors():
    cfg = load_profile("ci", data={"image_size": 32}, device="cpu")
    assert cfg.data.image_size == 32 and cfg.device == "cpu"
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        load_profile("fast")
    with pytest.raises(ValueError, match="unknown setting data.imagesize"):
        load_profile("ci", data={"imagesize": 32})
    # the networks' training settings: ``multitask`` (beside ``segmenter``), not ``train``
    with pytest.raises(ValueError, match="unknown setting train; valid: .*multitask"):
        load_profile("ci", train={"epochs": 1})
    with pytest.raises(ValueError, match="multitask.schedule must be"):
        load_profile("ci", multitask={"schedule": "linear"})
    with pytest.raises(ValueError, match="slices_per_rock=3"):
        load_profile("ci", data={"slices_per_rock": 3})


def test_config_hash_follows_content():
    a, b = load_profile("ci").data, load_profile("ci", data={"seed": 1}).data
    assert config_hash(a) == config_hash(load_profile("ci").data)
    assert config_hash(a) != config_hash(b)


def test_appendix_training_settings_and_rock():
    quick = load_profile("quick")
    assert quick.appendix.train_config(quick.multitask).epochs == quick.appendix.epochs == 14
    assert quick.appendix.train_config(quick.multitask).width == quick.multitask.width
    ci = load_profile("ci")
    assert ci.appendix.train_config(ci.multitask) == ci.multitask  # no override: the same
    with pytest.raises(ValueError, match="appendix.rock 'Castle Gate' must be one of"):
        load_profile("ci", appendix={"rock": "Castle Gate"})


def test_headline_seeds_per_profile():
    """Notebook 05 trains DMTNN and the CNN over ``loss.headline_seeds`` seeds each."""
    assert {p: load_profile(p).loss.headline_seeds for p in PROFILES} == {
        "paper": 5, "book": 5, "quick": 2, "ci": 2}
    with pytest.raises(ValueError, match="loss.headline_seeds must be >= 1, got 1, 0"):
        load_profile("ci", loss={"headline_seeds": 0})


def test_strategy_and_appendix_seeds_per_profile():
    """Notebook 06's strategies over ``loss.seeds``; Appendix A over ``appendix.seeds``,
    which defaults to ``loss.seeds``."""
    seeds = {p: (load_profile(p).loss.seeds, load_profile(p).appendix.seeds) for p in PROFILES}
    assert seeds == {"paper": (3, None), "book": (3, None), "quick": (2, 1), "ci": (1, None)}
    assert all(load_profile(p).loss.normalize for p in PROFILES)
    with pytest.raises(ValueError, match="appendix.seeds must be >= 1"):
        load_profile("ci", appendix={"seeds": 0})
    assert {p: load_profile(p).loss.treatment_seeds for p in PROFILES} == {
        "paper": None, "book": None, "quick": 1, "ci": None}
    with pytest.raises(ValueError, match="loss.treatment_seeds must be >= 1"):
        load_profile("ci", loss={"treatment_seeds": 0})


def test_seeds_resolves_each_part_and_its_default():
    """``Config.seeds``: the counts set per part, ``loss.seeds`` where a part's is unset."""
    book, quick = load_profile("book"), load_profile("quick")
    assert [book.seeds(p) for p in SEED_PARTS] == [5, 3, 3, 3]  # treatment, appendix: default
    assert [quick.seeds(p) for p in SEED_PARTS] == [2, 2, 1, 1]
    other = load_profile("book", loss={"seeds": 4, "treatment_seeds": 2})
    assert [other.seeds(p) for p in SEED_PARTS] == [5, 4, 2, 4]
    with pytest.raises(ValueError, match="unknown part 'cnn': one of headline, strategies"):
        book.seeds("cnn")


def test_train_workers_and_threads_defaults_and_refusal():
    """``train_workers`` 0 (as many as the threads hold) and ``train_threads`` 1 in every
    profile; a negative count of either is refused."""
    assert {load_profile(p).train_workers for p in PROFILES} == {0}
    assert {load_profile(p).train_threads for p in PROFILES} == {1}
    assert load_profile("ci", train_workers=1).train_workers == 1
    assert load_profile("ci", train_threads=0).train_threads == 0
    for key in ("train_workers", "train_threads"):
        with pytest.raises(ValueError, match="train_workers and train_threads must be >= 0"):
            load_profile("ci", **{key: -1})
