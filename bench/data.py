"""Benchmark: how fast the synthetic rocks are built and rendered.

    .venv/bin/python bench/data.py [--profile quick] [--rocks Berea Bentheimer]

Prints, per rock, the time to the first block's grain pack (the grains of every
block are placed first, to solve the shared cementation factor:
:func:`dmtnn.data.dataset.rock_packs`), that pack's number of grains, and the
time to render one native slice (phases), simulate its CT image, denoise and
threshold it and reduce it to the network's size. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dmtnn.config import PROFILES, load_profile
from dmtnn.data import ct, synthetic
from dmtnn.data.dataset import rock_layout, rock_packs
from dmtnn.data.resample import reduce_binary, reduce_gray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", choices=list(PROFILES))
    parser.add_argument("--rocks", nargs="*", default=["Bandera Gray", "Berea", "Bentheimer"])
    parser.add_argument("--slices", type=int, default=10)
    args = parser.parse_args()
    d = load_profile(args.profile).data
    print(f"profile {args.profile}: native slices {d.native_size} px -> {d.image_size} px")
    print(f"{'rock':<18}{'grains':>8}{'pack s':>8}{'render ms':>11}{'CT ms':>8}"
          f"{'label ms':>10}{'reduce ms':>11}{'slices/s':>10}")
    for rock in args.rocks:
        lay = rock_layout(d, rock)
        pos = lay.pos[lay.block == 0]  # the first block's slices, rendered in turn
        t0 = time.perf_counter()
        pack = next(rock_packs(d, rock))
        t_pack = time.perf_counter() - t0
        times = np.zeros(4)
        for i in range(args.slices):
            z = (pos[i % len(pos)] - pos[0] + 0.5) * d.slice_spacing_um
            t = [time.perf_counter()]
            phases = synthetic.render_phases(pack, z, d.native_size, d.native_pixel_um)
            t.append(time.perf_counter())
            gray = ct.forward(phases, d.native_pixel_um, rng=np.random.default_rng(i))
            t.append(time.perf_counter())
            label = (ct.denoise(gray) > 105).astype(np.uint8)
            t.append(time.perf_counter())
            reduce_gray(gray, d.image_size), reduce_binary(label, d.image_size)
            t.append(time.perf_counter())
            times += np.diff(t)
        ms = 1000 * times / args.slices
        print(f"{rock:<18}{len(pack.centers):>8}{t_pack:>8.1f}{ms[0]:>11.1f}{ms[1]:>8.1f}"
              f"{ms[2]:>10.1f}{ms[3]:>11.1f}{1000 / ms.sum():>10.1f}")


if __name__ == "__main__":
    main()
