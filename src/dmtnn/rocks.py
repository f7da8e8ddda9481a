"""The eleven sandstones of the Digital Rocks Portal "Eleven Sandstones" set.

Facts per rock: the portal's file prefix, laboratory porosity and
permeability, and the porosity of the full segmented 1000^3 volume.

References
----------
.. [1] Neumann, R. F., Andreeta, M., Lucas-Oliveira, E. (2020). 11 Sandstones:
   raw, filtered and segmented data. Digital Rocks Portal.
   doi:10.17612/f4h1-w124
.. [2] Neumann, R. F. et al. (2021). High accuracy capillary network
   representation in digital rock reveals permeability scaling functions.
   Scientific Reports 11, 11370.

The segmented porosities were computed on the full segmented volumes by a
third party (the "voids" repository); see ``eleven_sandstones.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

__all__ = ["QUARTZ_K", "QUARTZ_G", "Rock", "ROCKS", "get_rock", "rock_names"]

#: Bulk modulus of quartz in GPa (Mavko et al., The Rock Physics Handbook): the grains'
#: mineral in the FEM labels (``dmtnn.fem``, ``Config.fem``). Defined here, once.
QUARTZ_K = 36.6
#: Shear modulus of quartz in GPa (Mavko et al., The Rock Physics Handbook).
QUARTZ_G = 45.0


@dataclass(frozen=True)
class Rock:
    """One sandstone of the set.

    Attributes
    ----------
    name : str
        Sample name, e.g. ``"Berea Sister Gray"``.
    prefix : str
        File prefix on the portal, e.g. ``"BSG"``.
    lab_porosity : float
        Laboratory (helium) porosity, fraction.
    lab_permeability_md : float
        Laboratory permeability, millidarcy.
    segmented_porosity : float
        Pore fraction of the full segmented 1000^3 volume.
    """

    name: str
    prefix: str
    lab_porosity: float
    lab_permeability_md: float
    segmented_porosity: float


def _load() -> dict[str, Rock]:
    text = resources.files("dmtnn").joinpath("eleven_sandstones.csv").read_text()
    rocks = {}
    for row in csv.DictReader(text.splitlines()):
        rock = Rock(
            name=row["sample"],
            prefix=row["file_prefix"],
            lab_porosity=float(row["lab_porosity_pct"]) / 100,
            lab_permeability_md=float(row["lab_permeability_mD"]),
            segmented_porosity=float(row["segmented_full_image_porosity_pct_(voids_repo_computed)"])
            / 100,
        )
        rocks[rock.name] = rock
    return rocks


#: Registry, keyed by sample name, in order of permeability.
ROCKS: dict[str, Rock] = _load()


def _key(text: str) -> str:
    return "".join(text.split()).lower()


_LOOKUP = {_key(k): r for r in ROCKS.values() for k in (r.name, r.prefix)}


def get_rock(name: str) -> Rock:
    """Look a rock up by name or file prefix, ignoring case and spaces.

    >>> get_rock("castlegate").name
    'Castle Gate'
    >>> get_rock("BSG").name
    'Berea Sister Gray'
    """
    try:
        return _LOOKUP[_key(name)]
    except KeyError:
        raise ValueError(
            f"unknown rock {name!r}; known rocks: {', '.join(ROCKS)} "
            f"(or their file prefixes: {', '.join(r.prefix for r in ROCKS.values())})"
        ) from None


def rock_names() -> list[str]:
    """Names of the eleven rocks."""
    return list(ROCKS)
