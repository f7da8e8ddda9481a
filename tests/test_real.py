"""Real Berea volumes from ../shared/data/real (skipped where absent)."""

import pytest

from dmtnn.config import PAPER_PIXEL_UM
from dmtnn.data import real
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
