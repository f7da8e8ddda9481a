"""Real Berea volumes from ../shared/data/real (skipped where absent)."""

import numpy as np
import pytest

from dmtnn.config import PAPER_PIXEL_UM
from dmtnn.data import real
from dmtnn.data.fem_labels import real_samples
from dmtnn.data.threshold import otsu_threshold
from dmtnn.morphology import porosity

pytestmark = pytest.mark.realdata


def need(name):
    if name not in real.available():
        pytest.skip(f"real volume {name} not found under {real.real_root()}")


@pytest.mark.parametrize("name, phi", [("ibm_100", 0.2625), ("icl_400", 0.196), ("dpm_110", 0.178)])
def test_real_volumes_load_with_their_documented_porosity(name, phi):
    need(name)
    volume, _ = real.load_real(name)
    assert volume.shape == real.REAL_VOLUMES[name].shape
    assert set(volume.ravel()[:100000].tolist()) <= {0, 1}
    # porosities from each folder's PROVENANCE.md (rounded there)
    assert porosity(volume) == pytest.approx(phi, abs=0.0006)


def test_icl_reduced_to_the_papers_pixel_size():
    need("icl_400")
    slices = real.real_slices("icl_400", PAPER_PIXEL_UM, every=100)
    assert slices.shape == (4, 243, 243)  # 400 * 5.345 / 8.789 = 243 px


def test_missing_volume_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(real.ENV_VAR, str(tmp_path))
    assert real.available() == []
    with pytest.raises(real.RealDataMissing, match=str(tmp_path)):
        real.load_real("icl_400")


def test_real_samples_give_ct_gray_that_thresholds_to_the_real_binary(tiny_cfg):
    need("icl_400")
    r = real_samples(tiny_cfg, "icl_400", n_images=4)
    assert r["gray"].shape == r["solid"].shape == (4, 32, 32) and r["gray"].dtype == np.uint8
    # the CT model's gray, thresholded, gives back the real geometry almost everywhere
    agree = ((r["gray"] > otsu_threshold(r["gray"])) == r["solid"]).mean()
    assert agree > 0.95, agree
    np.testing.assert_allclose(r["phi"], 1 - r["solid"].mean(axis=(1, 2)))
    assert r["converged"].all() and (r["mu"] > 0).all()
