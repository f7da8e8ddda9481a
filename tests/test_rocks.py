import pytest

from dmtnn.rocks import ROCKS, get_rock


def test_eleven_rocks_with_the_facts_table_values():
    assert len(ROCKS) == 11
    berea = get_rock("Berea")
    # eleven_sandstones_facts.csv: Berea,Berea,18.96,121,21.67
    assert (berea.lab_porosity, berea.lab_permeability_md, berea.segmented_porosity) == (
        pytest.approx(0.1896), 121.0, pytest.approx(0.2167))


@pytest.mark.parametrize("alias, name", [("BSG", "Berea Sister Gray"), ("castlegate", "Castle Gate"),
                                         ("Castle Gate", "Castle Gate"), ("bb", "Buff Berea")])
def test_lookup_by_name_or_prefix(alias, name):
    assert get_rock(alias).name == name


def test_unknown_rock_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown rock 'Navajo'.*Bentheimer"):
        get_rock("Navajo")
