"""Benchmark of dmtnn.fem (batched FFT-preconditioned CG) against a scipy direct solve.

Prints one table row per (device, dtype, image size, porosity): images per minute,
PCG iterations (median, max over images), the largest relative error of kappa and
mu against a float64 reference, and the peak memory of the solve; plus the same
images through the float64 scipy.sparse direct solve (SuperLU) of the identical Q4
discretisation on the CPU (``fem.effective_stiffness_direct``), so that the speed
ratio is measured in the same run.

Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated`` above the start
of the call; on the CPU the increase of the process RSS during the call, sampled
every 5 ms (0 when memory freed by earlier rows is reused, so a lower bound).

Reference: the direct solve where it is run (``--direct-max-size``), otherwise a
float64 PCG solve at tol 1e-10.

Test images: slices of synthetic Berea from the data module
(``dmtnn.data.synthetic``, clay counted as solid) generated at the target
porosity, all of one 2.25 mm field, the portal's 1000 x 1000 slices at 2.25 um:
an N px image has 2250 / N um pixels (1000 px: the native scan; 256 px: the
paper's 8.79 um network input; 64 px: 35 um, grains about 3.5 px across).
Slices are spread through 1 mm of the pack.  ``--images FILE.npy`` loads a
(N, H, W) binary stack instead (1 = grain); rows are then grouped by size only.

Goals (not guaranteed, measured here): >= 10,000 images/min of 256 x 256 on one
H100 at <= 1e-3 relative error; on the CPU >= 50x faster per image than the direct
solve.

Usage::

    python bench/fem.py                      # default, a few minutes on 2 CPU cores
    python bench/fem.py --large              # adds 1000 px images
    python bench/fem.py --device cuda --n-gpu 256
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import threading
import time

import numpy as np
import torch

from dmtnn import fem
from dmtnn.data import synthetic

# --------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------
FIELD_UM = 2250.0  # the portal's 1000 px slices at 2.25 um
DEPTH_UM = 1000.0  # slices spread through this depth of the pack


@functools.lru_cache(maxsize=4)
def _pack(phi: float, seed: int) -> synthetic.GrainPack:
    return synthetic.make_pack("Berea", (DEPTH_UM, FIELD_UM, FIELD_UM), porosity=phi, seed=seed)


def rock_images(size: int, phi: float, n: int, seed: int) -> np.ndarray:
    """``n`` binary slices (1 = grain) of synthetic Berea at porosity ``phi``, ``size`` px."""
    pack = _pack(phi, seed)
    z = (np.arange(n) + 0.5) * DEPTH_UM / n
    phases = [synthetic.render_phases(pack, zk, size, FIELD_UM / size) for zk in z]
    return (np.stack(phases) != synthetic.PORE).astype(np.uint8)


# --------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------
class PeakRSS:
    """Peak resident set size (MiB) above the starting level, sampled every 5 ms."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        self.mib = self.peak - self.base


def solve_timed(imgs, device, dtype, tol):
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t = time.perf_counter()
        r = fem.elastic_moduli(imgs, device=device, dtype=dtype, tol=tol)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        mem = (torch.cuda.max_memory_allocated() - base) / 2**20
        return r, dt, mem
    with PeakRSS() as m:
        t = time.perf_counter()
        r = fem.elastic_moduli(imgs, device=device, dtype=dtype, tol=tol)
        dt = time.perf_counter() - t
    return r, dt, m.mib


# --------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--large", action="store_true", help="also 1000 px images")
    ap.add_argument("--porosities", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--n-cpu", type=int, default=None,
                    help="images per (size, porosity) on the CPU (default: by size)")
    ap.add_argument("--n-gpu", type=int, default=64, help="images per (size, porosity) on CUDA")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                    choices=["float32", "float64"])
    ap.add_argument("--tol", type=float, default=None,
                    help="solver tolerance (default: the library's, per dtype)")
    ap.add_argument("--direct-max-size", type=int, default=512,
                    help="run the scipy direct solve up to this image size")
    ap.add_argument("--images", default=None,
                    help=".npy file with a (N, H, W) binary stack instead of synthetic rocks")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    sizes = list(args.sizes) + ([1000] if args.large and 1000 not in args.sizes else [])
    per_size = {64: 8, 128: 4, 256: 2, 512: 1, 1000: 1}
    devices = []
    if args.device in ("cpu", "all"):
        devices.append("cpu")
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, devices {devices}"
          + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else ""))

    groups = []
    if args.images:
        stack = np.load(args.images)
        if stack.ndim == 2:
            stack = stack[None]
        phi = 1 - stack.reshape(len(stack), -1).mean(1)
        groups.append((stack.shape[-1], float(phi.mean()), stack))
    else:
        for s in sizes:
            for phi in args.porosities:
                groups.append((s, phi, None))

    head = (f"{'device':6} {'dtype':7} {'px':>5} {'phi':>5} {'n':>4} {'img/min':>9} "
            f"{'it_med':>6} {'it_max':>6} {'err_k':>8} {'err_mu':>8} {'mem_MiB':>8} "
            f"{'direct_s':>9} {'speedup':>8}")
    print(head)
    print("-" * len(head))
    for s, phi, stack in groups:
        for dev in devices:
            n_img = args.n_gpu if dev == "cuda" else (args.n_cpu or per_size.get(s, 1))
            imgs = stack if stack is not None else rock_images(s, phi, n_img, args.seed)
            # reference (float64): direct solve where cheap, else tight PCG
            n_ref = min(len(imgs), per_size.get(s, 1) if dev == "cuda" else len(imgs))
            direct_s = float("nan")
            if s <= args.direct_max_size:
                t = time.perf_counter()
                C_ref = fem.effective_stiffness_direct(imgs[:n_ref])
                direct_s = (time.perf_counter() - t) / n_ref
                kr, mr, _ = fem.isotropic_projection(C_ref)
                ref = np.stack([kr, mr], 1)
            else:
                rr = fem.elastic_moduli(imgs[:n_ref], tol=1e-10, dtype=torch.float64,
                                        device=dev, max_iter=50000)
                ref = np.stack([rr.kappa, rr.mu], 1)
            for dname in args.dtypes:
                dtype = getattr(torch, dname)
                fem.elastic_moduli(imgs[:1], device=dev, dtype=dtype, tol=args.tol)  # warm-up
                r, dt, mem = solve_timed(imgs, dev, dtype, args.tol)
                ek = np.max(np.abs(r.kappa[:n_ref] / ref[:, 0] - 1))
                em = np.max(np.abs(r.mu[:n_ref] / ref[:, 1] - 1))
                per_img = dt / len(imgs)
                speed = direct_s / per_img if np.isfinite(direct_s) else float("nan")
                flag = "" if r.converged.all() else "  NOT CONVERGED"
                print(f"{dev:6} {dname:7} {s:5d} {phi:5.2f} {len(imgs):4d} "
                      f"{60.0 / per_img:9.1f} {statistics.median(r.n_iter.tolist()):6.0f} "
                      f"{r.n_iter.max():6d} {ek:8.1e} {em:8.1e} {mem:8.1f} "
                      f"{direct_s:9.2f} {speed:8.1f}{flag}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
