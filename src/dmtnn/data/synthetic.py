r"""Synthetic "eleven sandstones": 3D grain packs that can be sliced anywhere.

The real Digital Rocks Portal volumes cannot be downloaded on our machines,
so by default the project studies synthetic rocks. Each rock is a 3D pack of
ellipsoidal grains in a box (micrometres), so consecutive slices are
correlated as in a real scan, and a slice can be rendered at any pixel size.

The model, per rock (parameters in :data:`TEXTURES`):

1. Grain sizes are log-normal: median equivalent diameter ``d50`` and
   sorting ``sigma`` (standard deviation of :math:`\ln d`). Grains are
   ellipsoids of random orientation, the short axis ``elongation`` times the
   long one, all of the same volume as their equivalent sphere.
2. Grains are placed by random sequential addition, each allowed to
   overlap its neighbours by the fraction ``overlap`` of the sum of radii
   (compaction and pressure solution), until the placed volume reaches
   ``fill`` times the box.
3. All grains are scaled by one factor ``s`` (quartz overgrowth / cement)
   so that the porosity equals the target; a point :math:`x` is grain when
   :math:`r_1(x) = \min_i \sqrt{(x - c_i)^T M_i (x - c_i)} \le s`.
   Contact cement fills the narrow gaps where two grains nearly touch: a
   point is also solid when its second-smallest normalised distance
   :math:`r_2(x)` (to a different grain) is at most :math:`(1 + c) s`, with
   ``c`` the texture's ``cement``. Cement at grain contacts is what makes
   consolidated sandstone stiff at a given porosity (the contact-cement model
   of Dvorkin & Nur 1996); without it, 2D slices of the pack were about 30 %
   softer than real Berea at equal porosity (notebook 03).
4. Clay: where a smooth Gaussian random field (correlation length
   ``clay_um``) exceeds a threshold, pore space is filled with clay, the
   fraction ``clay`` of the intergranular pore space. Clay counts as solid
   in the true geometry but images with an intermediate gray value.
5. A fraction ``feldspar`` of the grains is feldspar (brighter than quartz).

Everything is deterministic given the seed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage, sparse
from scipy.spatial import cKDTree

from dmtnn.rocks import ROCKS, Rock, get_rock  # noqa: F401 (Rock re-exported for tests)

__all__ = [
    "PORE",
    "QUARTZ",
    "FELDSPAR",
    "CLAY",
    "Texture",
    "TEXTURES",
    "GrainPack",
    "make_pack",
    "make_packs",
    "margin_um",
    "render_phases",
    "rock_table",
]

log = logging.getLogger(__name__)

#: Phase ids of a rendered slice.
PORE, QUARTZ, FELDSPAR, CLAY = 0, 1, 2, 3

GENERATOR_VERSION = 3  # bump when the model changes, so caches are rebuilt
S_MAX = 1.8  # largest cementation factor: packs are built at it, then calibrated below


@dataclass(frozen=True)
class Texture:
    """Geometry parameters of one synthetic sandstone.

    Attributes
    ----------
    d50_um : float
        Median equivalent-sphere grain diameter, micrometres.
    sorting : float
        Standard deviation of the natural log of grain diameter.
    elongation : float
        Lower bound of the short/long axis ratio of the grains (uniform in
        [elongation, 1]).
    overlap : float
        Allowed overlap of two grains, as a fraction of the sum of radii.
    fill : float
        Placed grain volume relative to the box before cementation.
    clay : float
        Fraction of the intergranular pore space filled by clay.
    clay_um : float
        Correlation length of the clay field, micrometres.
    feldspar : float
        Fraction of grains that are feldspar.
    cement : float
        Contact cement: pore points within ``(1 + cement)`` times the cementation
        factor of two grains are solid (quartz of the nearest grain).
    """

    d50_um: float
    sorting: float = 0.35
    elongation: float = 0.6
    overlap: float = 0.15
    fill: float = 0.9
    clay: float = 0.1
    clay_um: float = 12.0
    feldspar: float = 0.08
    cement: float = 0.2


#: Per-rock textures. Grain sizes are typical values for these formations
#: (fine to medium sand); they are assumptions of the synthetic model, not
#: measurements of the portal volumes. Berea's d50 and the contact cement were
#: calibrated together on the real Imperial College Berea volume at the paper's
#: pixel size: d50 so that the correlation length and pore chords match (notebook
#: 01), the cement so that the 2D moduli match at equal porosity (notebook 03:
#: cement 0 gave 0.73 / 0.71 of the real trend of kappa / mu, 0.2 gave 0.97 /
#: 0.94 over four packs). The other rocks share the cement (an assumption: no
#: real volume of them here) and kept their grain sizes relative to Berea's first
#: guess of 150 um.
TEXTURES: dict[str, Texture] = {
    "Bandera Gray": Texture(d50_um=98, sorting=0.40, clay=0.16, feldspar=0.12),
    "Parker": Texture(d50_um=107, sorting=0.40, clay=0.14, feldspar=0.10),
    "Kirby": Texture(d50_um=130, sorting=0.38, clay=0.12, feldspar=0.10),
    "Bandera Brown": Texture(d50_um=103, sorting=0.42, clay=0.18, feldspar=0.12),
    "Berea Sister Gray": Texture(d50_um=130, sorting=0.35, clay=0.10, feldspar=0.08),
    "Berea Upper Gray": Texture(d50_um=130, sorting=0.35, clay=0.09, feldspar=0.08),
    "Berea": Texture(d50_um=125, sorting=0.35, clay=0.08, feldspar=0.08),
    "Castle Gate": Texture(d50_um=163, sorting=0.40, clay=0.07, feldspar=0.10),
    "Buff Berea": Texture(d50_um=150, sorting=0.35, clay=0.06, feldspar=0.07),
    "Leopard": Texture(d50_um=140, sorting=0.32, clay=0.05, feldspar=0.06),
    "Bentheimer": Texture(d50_um=215, sorting=0.30, clay=0.03, feldspar=0.05),
}


@dataclass(frozen=True)
class GrainPack:
    r"""A synthetic rock: grains in a box (all lengths in micrometres).

    Attributes
    ----------
    centers : (N, 3) float array
        Grain centres (z, y, x).
    shapes : (N, 3, 3) float array
        Quadratic forms :math:`M_i`; the grain is
        :math:`(x - c_i)^T M_i (x - c_i) \le s^2`.
    half_widths : (N, 3) float array
        Half extent of each grain at scale 1 along z, y, x.
    minerals : (N,) uint8 array
        ``QUARTZ`` or ``FELDSPAR``.
    scale : float
        Cementation factor ``s``.
    clay_field : 3D float32 array
        Gaussian random field on a regular grid of spacing ``clay_grid_um``
        with origin at the box corner.
    clay_threshold : float
        Pore is clay where the field exceeds this value.
    box_um : (3,) float
        Box extent (z, y, x); slices and windows must stay inside.
    cement : float
        Contact cement of the texture (see :class:`Texture`).
    """

    centers: np.ndarray
    shapes: np.ndarray
    half_widths: np.ndarray
    minerals: np.ndarray
    scale: float
    clay_field: np.ndarray
    clay_grid_um: float
    clay_threshold: float
    box_um: tuple[float, float, float]
    cement: float = 0.0

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "centers": self.centers,
            "shapes": self.shapes,
            "half_widths": self.half_widths,
            "minerals": self.minerals,
            "scale": np.float64(self.scale),
            "clay_field": self.clay_field,
            "clay_grid_um": np.float64(self.clay_grid_um),
            "clay_threshold": np.float64(self.clay_threshold),
            "box_um": np.asarray(self.box_um, dtype=np.float64),
            "cement": np.float64(self.cement),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> GrainPack:
        return cls(
            centers=a["centers"],
            shapes=a["shapes"],
            half_widths=a["half_widths"],
            minerals=a["minerals"],
            scale=float(a["scale"]),
            clay_field=a["clay_field"],
            clay_grid_um=float(a["clay_grid_um"]),
            clay_threshold=float(a["clay_threshold"]),
            box_um=tuple(float(v) for v in a["box_um"]),
            cement=float(a.get("cement", 0.0)),
        )


def _random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random rotation matrices from normalised quaternions."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def _place_grains(
    texture: Texture, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random sequential addition of overlapping spheres: centres and radii."""
    r50 = texture.d50_um / 2
    r_max = r50 * np.exp(2.5 * texture.sorting)
    target = texture.fill * np.prod(hi - lo)
    keep = 1.0 - texture.overlap
    centers = np.empty((0, 3))
    radii = np.empty(0)
    placed_volume, batch, failures = 0.0, 512, 0
    while placed_volume < target and failures < 8:
        cand = rng.uniform(lo, hi, size=(batch, 3))
        rc = np.minimum(r50 * np.exp(texture.sorting * rng.standard_normal(batch)), r_max)
        ok = np.ones(batch, bool)
        if len(centers):
            # The nearest grain rejects most candidates; the few left are checked against
            # every grain close enough to clash. Same decisions as testing each pair in turn.
            tree = cKDTree(centers)
            j = tree.query(cand)[1]
            ok = np.linalg.norm(centers[j] - cand, axis=1) >= keep * (rc + radii[j])
            left = np.flatnonzero(ok)
            near = tree.query_ball_point(cand[left], keep * (rc[left] + r_max))
            i = np.repeat(left, [len(n) for n in near])
            j = np.fromiter((k for n in near for k in n), int, len(i))
            dist = np.linalg.norm(centers[j] - cand[i], axis=1)
            ok[i[dist < keep * (rc[i] + radii[j])]] = False
        accepted = []
        for i in np.flatnonzero(ok):  # conflicts inside the batch, in order
            if accepted:
                dist = np.linalg.norm(cand[accepted] - cand[i], axis=1)
                if np.any(dist < keep * (rc[i] + rc[accepted])):
                    continue
            accepted.append(i)
            placed_volume += 4 / 3 * np.pi * rc[i] ** 3
            if placed_volume >= target:
                break
        failures = failures + 1 if len(accepted) < batch // 50 else 0
        centers = np.concatenate([centers, cand[accepted]])
        radii = np.concatenate([radii, rc[accepted]])
    return centers, radii


def _clay_field(
    box: np.ndarray, grid_um: float, corr_um: float, rng: np.random.Generator
) -> np.ndarray:
    shape = tuple(int(np.ceil(b / grid_um)) + 2 for b in box)
    field = ndimage.gaussian_filter(
        rng.standard_normal(shape, dtype=np.float32), sigma=corr_um / grid_um, mode="wrap"
    )
    field -= field.mean()
    field /= field.std()
    return field.astype(np.float32)


def _grain_field(
    pack: GrainPack, z_um: float, size: int, pixel_um: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Solid test ratio and the nearest grain's index on a slice.

    The ratio is ``min(r1, r2 / (1 + cement))`` with ``r1 <= r2`` the two smallest
    normalised distances to different grains: a point is solid when it lies inside
    a grain (``r1 <= s``) or within the cement lens where two grains nearly touch
    (``r2 <= (1 + cement) s``).
    """
    r1 = np.full((size, size), np.inf, dtype=np.float32)
    r2 = np.full((size, size), np.inf, dtype=np.float32)
    owner = np.full((size, size), -1, dtype=np.int32)
    extent = size * pixel_um
    reach = scale * (1 + pack.cement)
    hw = pack.half_widths * reach
    c = pack.centers
    near = (
        (np.abs(c[:, 0] - z_um) < hw[:, 0])
        & (c[:, 1] + hw[:, 1] > 0)
        & (c[:, 1] - hw[:, 1] < extent)
        & (c[:, 2] + hw[:, 2] > 0)
        & (c[:, 2] - hw[:, 2] < extent)
    )
    axis = (np.arange(size) + 0.5) * pixel_um  # pixel centres
    for i in np.flatnonzero(near):
        cz, cy, cx = c[i]
        y0, y1 = np.searchsorted(axis, [cy - hw[i, 1], cy + hw[i, 1]])
        x0, x1 = np.searchsorted(axis, [cx - hw[i, 2], cx + hw[i, 2]])
        if y0 >= y1 or x0 >= x1:
            continue
        dz = z_um - cz
        dy = (axis[y0:y1] - cy)[:, None]
        dx = (axis[x0:x1] - cx)[None, :]
        m = pack.shapes[i]
        q = (
            m[0, 0] * dz * dz
            + m[1, 1] * dy * dy
            + m[2, 2] * dx * dx
            + 2 * (m[0, 1] * dz * dy + m[0, 2] * dz * dx + m[1, 2] * dy * dx)
        )
        r = np.sqrt(q, dtype=np.float32)
        first = r1[y0:y1, x0:x1]
        second = r2[y0:y1, x0:x1]
        closer = r < first
        np.minimum(second, np.where(closer, first, r), out=second)
        first[closer] = r[closer]
        owner[y0:y1, x0:x1][closer] = i
    if pack.cement > 0:
        np.minimum(r1, r2 / np.float32(1 + pack.cement), out=r1)
    return r1, owner


def _linear_weights(coords: np.ndarray, n: int) -> sparse.csr_matrix:
    """Sparse matrix of linear interpolation from a grid of ``n`` nodes to ``coords`` (in nodes)."""
    coords = np.clip(coords, 0, n - 1)
    lo = np.minimum(np.floor(coords).astype(int), n - 2)
    frac = coords - lo
    rows = np.repeat(np.arange(len(coords)), 2)
    cols = np.stack([lo, lo + 1], 1).ravel()
    vals = np.stack([1 - frac, frac], 1).ravel()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(coords), n))


def _clay_mask(pack: GrainPack, z_um: float, size: int, pixel_um: float) -> np.ndarray:
    field = pack.clay_field
    z = np.clip(z_um / pack.clay_grid_um, 0, field.shape[0] - 1)
    k = min(int(z), field.shape[0] - 2)
    plane = (1 - (z - k)) * field[k] + (z - k) * field[k + 1]  # trilinear = lerp in z ...
    axis = (np.arange(size) + 0.5) * pixel_um / pack.clay_grid_um
    wy = _linear_weights(axis, field.shape[1])
    wx = _linear_weights(axis, field.shape[2])
    values = wy @ (wx @ plane.T).T  # ... then bilinear in the plane
    return np.asarray(values) > pack.clay_threshold


def render_phases(
    pack: GrainPack, z_um: float, size: int, pixel_um: float, *, scale: float | None = None
) -> np.ndarray:
    """Phase map of one slice: PORE, QUARTZ, FELDSPAR or CLAY per pixel.

    Parameters
    ----------
    pack : GrainPack
        The rock.
    z_um : float
        Depth of the slice in the box, micrometres.
    size : int
        Slice side in pixels; the slice covers ``[0, size * pixel_um)`` in y and x.
    pixel_um : float
        Pixel size, micrometres.
    scale : float, optional
        Cementation factor; default the pack's calibrated one.

    Returns
    -------
    (size, size) uint8 array
    """
    extent = size * pixel_um
    if not (0 <= z_um <= pack.box_um[0]) or extent > min(pack.box_um[1:]) + 1e-6:
        raise ValueError(
            f"slice z={z_um:.1f} um, {extent:.1f} um wide, lies outside the pack's box "
            f"{tuple(round(b, 1) for b in pack.box_um)} um"
        )
    s = pack.scale if scale is None else scale
    ratio, owner = _grain_field(pack, z_um, size, pixel_um, s)
    grain = ratio <= s
    phases = np.where(grain, pack.minerals[np.maximum(owner, 0)], PORE).astype(np.uint8)
    phases[~grain & _clay_mask(pack, z_um, size, pixel_um)] = CLAY
    return phases


def make_pack(
    rock: str | Rock,
    box_um: tuple[float, float, float],
    *,
    porosity: float | None = None,
    texture: Texture | None = None,
    seed: int | np.random.SeedSequence = 0,
    scale: float | None = None,
    calibration_slices: int = 6,
    calibration_px: int = 256,
) -> GrainPack:
    """Build a synthetic rock in a box and calibrate it to a target porosity.

    Parameters
    ----------
    rock : str or Rock
        Rock name (texture and default porosity come from it).
    box_um : (z, y, x) floats
        Extent of the region that will be sliced, micrometres. Grains are
        placed in a margin around it as well (:func:`margin_um`), so its
        borders are not depleted.
    porosity : float, optional
        Target porosity (pore fraction, clay counted as solid); default the
        rock's segmented porosity from the facts table.
    texture : Texture, optional
        Override the rock's texture.
    seed : int or SeedSequence
        Randomness; equal seeds give equal packs.
    scale : float, optional
        Cementation factor to use as is, e.g. one calibrated on another pack
        of the same rock: then this pack's porosity deviates from the target
        as a sample of the rock does. Default: solve for it on this pack.
    calibration_slices, calibration_px : int
        Slices (spread over the box) and their size in pixels used to solve
        for the cementation factor.

    Returns
    -------
    GrainPack
    """
    if scale is not None:
        rock = get_rock(rock) if isinstance(rock, str) else rock
        if not 0 < scale < S_MAX:
            raise ValueError(f"scale must lie in (0, {S_MAX}), got {scale}")
        return _pack(texture or TEXTURES[rock.name], box_um, np.random.default_rng(seed),
                     float(scale))
    return next(make_packs(rock, [box_um], seeds=[seed], porosity=porosity, texture=texture,
                           calibration_slices=calibration_slices, calibration_px=calibration_px))


def make_packs(
    rock: str | Rock,
    boxes_um: Sequence[tuple[float, float, float]],
    *,
    seeds: Sequence[int | np.random.SeedSequence],
    porosity: float | None = None,
    texture: Texture | None = None,
    calibration_slices: int = 6,
    calibration_px: int = 256,
) -> Iterator[GrainPack]:
    """Packs of one rock in several boxes (blocks of one deep sample), calibrated together.

    Each box gets its own grains and clay from its own seed. One cementation
    factor is solved on ``calibration_slices`` slices shared out over all the
    boxes (at least one each), so that the boxes together have the target
    porosity while each keeps its own, natural, deviation from it. The grains
    of every box are placed first (the costly part); the packs are then
    yielded in order, each box's clay field built again from the saved state
    of its random stream, so that one clay field at a time is in memory. One
    box gives :func:`make_pack`'s pack.

    Parameters
    ----------
    rock : str or Rock
        Rock name (texture and default porosity come from it).
    boxes_um : sequence of (z, y, x) floats
        Extent of each box, micrometres (as for :func:`make_pack`).
    seeds : sequence of int or SeedSequence
        One per box.
    porosity, texture, calibration_slices, calibration_px
        As for :func:`make_pack`; ``calibration_slices`` counts all boxes.

    Yields
    ------
    GrainPack
        One per box, in order.
    """
    rock = get_rock(rock) if isinstance(rock, str) else rock
    texture = texture or TEXTURES[rock.name]
    target = rock.segmented_porosity if porosity is None else porosity
    if not 0.02 <= target <= 0.6:
        raise ValueError(f"porosity must lie in [0.02, 0.6], got {target}")
    if len(boxes_um) != len(seeds) or not len(seeds):
        raise ValueError(f"make_packs needs one seed per box and a box, got {len(seeds)} "
                         f"seeds for {len(boxes_um)} boxes")
    per_box = max(1, round(calibration_slices / len(seeds)))
    packs, states, ratios, not_clay = [], [], [], []
    for box, seed in zip(boxes_um, seeds, strict=True):
        pack = _pack(texture, box, np.random.default_rng(seed), S_MAX, states)
        size, depth = calibration_px, pack.box_um[0]
        pixel = min(pack.box_um[1:]) / size
        for z in np.linspace(0, depth, per_box + 2)[1:-1]:
            ratios.append(_grain_field(pack, z, size, pixel, S_MAX)[0].ravel())
            not_clay.append(~_clay_mask(pack, z, size, pixel).ravel())
        if len(seeds) > 1:  # keep the grains only; the clay field is built again when yielded
            pack = replace(pack, clay_field=np.empty((0, 0, 0), np.float32))
        packs.append(pack)
    # Cementation factor: the porosity is the fraction of non-clay points farther than s.
    ratio, free = np.concatenate(ratios), np.concatenate(not_clay)
    share = target / free.mean()
    if share >= 1:
        raise ValueError(
            f"{rock.name}: clay fills {1 - free.mean():.2f} of the volume, more than the target "
            f"porosity {target:.3f} allows"
        )
    s = float(np.quantile(ratio[free], 1 - share))
    if not np.isfinite(s) or s >= S_MAX:
        raise RuntimeError(f"{rock.name}: cementation factor {s} out of range; grains too sparse")
    log.info("%s: %d grains in %d pack(s), cementation factor %.3f", rock.name,
             sum(len(p.centers) for p in packs), len(packs), s)
    for pack, state in zip(packs, states, strict=True):
        if len(packs) > 1:
            rng = np.random.Generator(np.random.PCG64())
            rng.bit_generator.state = state
            pack = replace(pack, clay_field=_clay_field(
                np.asarray(pack.box_um), pack.clay_grid_um, texture.clay_um, rng))
        yield replace(pack, scale=s)


def margin_um(texture: Texture) -> float:
    """Depth around a box that its grains are placed in, micrometres.

    1.3 times the largest semi-axis a grain of ``texture`` can have, so the
    box's faces are not depleted of grains. Boxes farther apart than twice
    this share no grain.
    """
    r_bound = texture.d50_um / 2 * np.exp(2.5 * texture.sorting) / texture.elongation ** (2 / 3)
    return 1.3 * float(r_bound)


def _pack(
    texture: Texture, box_um: tuple[float, float, float], rng: np.random.Generator, scale: float,
    states: list | None = None,
) -> GrainPack:
    """Grains, minerals and clay in one box (and its margin), at cementation factor ``scale``.

    With ``states``, appends to it the stream's state where the clay field begins,
    from which :func:`make_packs` builds the same field again.
    """
    box = np.asarray(box_um, dtype=float)
    margin = margin_um(texture)
    centers, radii = _place_grains(texture, -margin, box + margin, rng)
    n = len(radii)
    # Ellipsoids of the sphere's volume: axes r * (a, a, a * e) with a^2 * a * e = 1.
    e = rng.uniform(texture.elongation, 1.0, n)
    axes = radii[:, None] * np.stack([np.ones(n), np.ones(n), e], 1) / e[:, None] ** (1 / 3)
    rot = _random_rotations(n, rng)
    shapes = np.einsum("nij,nj,nkj->nik", rot, 1 / axes**2, rot)
    inverse = np.einsum("nij,nj,nkj->nik", rot, axes**2, rot)
    half_widths = np.sqrt(np.einsum("nii->ni", inverse))
    minerals = np.where(rng.random(n) < texture.feldspar, FELDSPAR, QUARTZ).astype(np.uint8)
    grid = min(texture.clay_um / 2, 8.0)
    if states is not None:
        states.append(rng.bit_generator.state)
    clay = _clay_field(box, grid, texture.clay_um, rng)
    clay_threshold = float(np.quantile(clay, 1 - texture.clay))
    return GrainPack(centers, shapes, half_widths, minerals, scale, clay, grid, clay_threshold,
                     tuple(float(b) for b in box), texture.cement)


def rock_table(roles: dict[str, str] | None = None) -> str:
    """The eleven sandstones as a Markdown table: the portal's facts beside our textures.

    Columns: name, the portal's file prefix, the role (``roles``: name ->
    "train", "held out", "unseen"; omitted when None), laboratory and segmented
    porosity (%) from :mod:`dmtnn.rocks`, and the synthetic texture's d50, clay
    and feldspar fractions (:data:`TEXTURES`), in the order of the facts file.
    The book's data page includes it (``make stage`` writes it), so no page
    types these numbers by hand.
    """
    head = ["Rock", "File prefix", *(["Role here"] if roles else []), "Lab porosity (%)",
            "Segmented porosity (%)", "Synthetic d50 (µm)", "Clay (of pore space)",
            "Feldspar (of grains)"]
    align = ["---", "---", *(["---"] if roles else []), *["---:"] * 5]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for name, rock in ROCKS.items():
        t = TEXTURES[name]
        cells = [name, f"`{rock.prefix}`", *([roles.get(name, "-")] if roles else []),
                 f"{100 * rock.lab_porosity:.2f}", f"{100 * rock.segmented_porosity:.2f}",
                 f"{t.d50_um:g}", f"{t.clay:.2f}", f"{t.feldspar:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
