"""Other scanners: the same synthetic rock rendered with other CT settings.

A segmenter trained on one rendering of CT (one scanner: its gray levels for
pore, clay and minerals, its blur, noise, drift and bit depth) must serve CT
from others. :data:`SCANNERS` holds such renderings as CT models
(:class:`dmtnn.data.ct.CTModel`); :func:`scanner_slices` renders slices of
one rock with each of them, from the same grain geometry, so that a
segmentation can be scored against the true geometry and against the default
rendering's (:func:`dmtnn.reports.scanner_table`).

The renderings differ from the default (:data:`dmtnn.data.ct.CT_MODEL`) in one
respect each, plus one 16-bit scanner whose files are uint16 on a wider gray
scale; a user's data may combine several.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np

from dmtnn.config import DataConfig
from dmtnn.data import ct, synthetic
from dmtnn.data.resample import reduce_binary, reduce_gray
from dmtnn.rocks import get_rock

__all__ = ["SCANNERS", "scanner_slices"]

_D = ct.CT_MODEL

#: CT renderings by name: the default and others, each different in one respect
#: (gray levels in 8-bit units; the 16-bit scanner scales them by 65535 / 255).
SCANNERS: dict[str, ct.CTModel] = {
    "default": _D,
    "low contrast": replace(_D, pore=85.0, clay=115.0, quartz=145.0, feldspar=165.0),
    "bright": replace(_D, pore=100.0, clay=150.0, quartz=200.0, feldspar=230.0),
    "dark": replace(_D, pore=20.0, clay=50.0, quartz=85.0, feldspar=105.0),
    "blurred (PSF x 1.8)": replace(_D, psf_um=4.5),
    "noisy (noise x 1.8)": replace(_D, noise=40.0),
    "drift and cupping x 4": replace(_D, drift=0.16, cupping=0.16),
    "16-bit": replace(_D, pore=40.0, clay=100.0, quartz=160.0, feldspar=200.0, bits=16),
}


def scanner_slices(
    cfg: DataConfig, rock: str, n: int, scanners: dict[str, ct.CTModel] | None = None
) -> dict[str, np.ndarray | dict[str, np.ndarray]]:
    """``n`` slices of a separate sample of synthetic ``rock``, rendered by every scanner.

    The slices are two median grain diameters apart (nearly independent) and
    of the networks' size and pixel size (``cfg.image_size``,
    ``cfg.pixel_um``): each native slice is rendered by a scanner's CT model,
    then area-averaged to the pixel size, as the dataset's slices are. Every
    scanner sees the same geometry and the same noise draws.

    Returns
    -------
    dict
        ``"gray"``: ``{scanner: (n, S, S)}`` in the scanner's dtype (uint8 or
        uint16); ``"truth"``: (n, S, S) uint8 true geometry, 1 = grain.
    """
    scanners = SCANNERS if scanners is None else scanners
    rock = get_rock(rock).name
    spacing = 2 * synthetic.TEXTURES[rock].d50_um
    size, s = cfg.native_size, cfg.image_size
    box = (n * spacing, size * cfg.native_pixel_um, size * cfg.native_pixel_um)
    seed = np.random.SeedSequence(cfg.seed, spawn_key=(zlib.crc32(rock.encode()), 7))
    pack = synthetic.make_pack(rock, box, seed=seed)
    gray = {name: [] for name in scanners}
    truth = []
    for i in range(n):
        phases = synthetic.render_phases(pack, (i + 0.5) * spacing, size, cfg.native_pixel_um)
        truth.append(reduce_binary((phases != synthetic.PORE).astype(np.uint8), s))
        for name, model in scanners.items():
            rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(i, 7)))
            raw = ct.forward(phases, cfg.native_pixel_um, depth=(i + 0.5) / n, model=model,
                             rng=rng)
            top = np.iinfo(raw.dtype).max
            gray[name].append(np.clip(np.rint(reduce_gray(raw, s)), 0, top).astype(raw.dtype))
    return {"gray": {k: np.stack(v) for k, v in gray.items()}, "truth": np.stack(truth)}
