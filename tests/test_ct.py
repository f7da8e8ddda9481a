"""The CT forward model: phase levels, noise, drift."""

import numpy as np
import pytest

from dmtnn.data.ct import CTModel, forward
from dmtnn.data.synthetic import CLAY, PORE, QUARTZ

FLAT = CTModel(drift=0.0, cupping=0.0)


def test_noise_free_image_shows_the_phase_levels():
    phases = np.full((32, 32), QUARTZ, np.uint8)
    phases[:, :16] = PORE
    image = forward(phases, 2.25, model=FLAT)
    assert image.dtype == np.uint8
    assert image[5, 2] == FLAT.pore and image[5, 30] == FLAT.quartz  # far from the edge
    assert FLAT.pore < image[5, 15] < FLAT.quartz  # partial volume at the edge


def test_noise_falls_with_coarser_pixels():
    phases = np.full((256, 256), CLAY, np.uint8)
    fine = forward(phases, 2.25, model=FLAT, rng=np.random.default_rng(0)).std()
    coarse = forward(phases, 9.0, model=FLAT, rng=np.random.default_rng(0)).std()
    assert fine == pytest.approx(FLAT.noise, rel=0.05)
    assert coarse == pytest.approx(FLAT.noise / 4, rel=0.1)


def test_drift_changes_brightness_through_the_stack():
    phases = np.full((16, 16), QUARTZ, np.uint8)
    model = CTModel(drift=0.1, cupping=0.0)
    first, last = (forward(phases, 2.25, depth=d, model=model).mean() for d in (0.0, 1.0))
    assert last / first == pytest.approx(1.05 / 0.95, rel=0.01)


def test_bad_phase_map():
    with pytest.raises(ValueError, match="2D map of ids"):
        forward(np.full((4, 4), 7, np.uint8), 2.25)
