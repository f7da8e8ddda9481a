import numpy as np
import pytest

from dmtnn.data import synthetic
from dmtnn.data.synthetic import CLAY, PORE, make_pack, render_phases

BOX = (200.0, 600.0, 600.0)


@pytest.fixture(scope="module")
def pack():
    return make_pack("Berea", BOX, seed=7)


def test_same_seed_same_rock(pack):
    again = make_pack("Berea", BOX, seed=7)
    assert np.array_equal(render_phases(pack, 100.0, 64, 9.0), render_phases(again, 100.0, 64, 9.0))
    other = make_pack("Berea", BOX, seed=8)
    assert not np.array_equal(render_phases(pack, 100.0, 64, 9.0),
                              render_phases(other, 100.0, 64, 9.0))


def test_calibrated_to_the_target_porosity(pack):
    """Porosity (clay counted as solid) of fresh slices matches the target within sampling error."""
    phases = np.stack([render_phases(pack, z, 200, 3.0) for z in (25.0, 75.0, 125.0, 175.0)])
    target = synthetic.get_rock("Berea").segmented_porosity
    assert (phases == PORE).mean() == pytest.approx(target, abs=0.02)
    assert set(np.unique(phases)) <= {0, 1, 2, 3}
    # clay fills a fraction of the intergranular space close to the texture's
    clay_share = (phases == CLAY).mean() / ((phases == CLAY).mean() + (phases == PORE).mean())
    assert clay_share == pytest.approx(synthetic.TEXTURES["Berea"].clay, abs=0.04)


def test_consecutive_slices_are_correlated_like_a_scan(pack):
    a, b, far = (render_phases(pack, z, 64, 9.0) != PORE for z in (100.0, 102.25, 190.0))
    assert (a == b).mean() > 0.95  # one voxel apart: nearly identical
    assert (a == far).mean() < 0.85  # a grain diameter apart: different


def test_slices_outside_the_box_are_refused(pack):
    with pytest.raises(ValueError, match="outside the pack's box"):
        render_phases(pack, 250.0, 64, 9.0)
    with pytest.raises(ValueError, match="outside the pack's box"):
        render_phases(pack, 100.0, 100, 9.0)


def test_porosity_outside_range_is_refused():
    with pytest.raises(ValueError, match="porosity must lie"):
        make_pack("Berea", BOX, porosity=0.9)


def test_every_rock_has_a_texture():
    assert set(synthetic.TEXTURES) == set(synthetic.get_rock(r).name for r in synthetic.TEXTURES)
    assert len(synthetic.TEXTURES) == 11
