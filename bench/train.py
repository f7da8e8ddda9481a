"""Training and inference throughput of the networks, with model FLOPs utilisation.

Models: the segmenters (LinkNet, U-Net; trained on a mask) and the regression
networks (DMTNN on a frozen LinkNet, MTNN_WS, the CNN, hard and soft sharing;
trained on porosity and the two moduli with the paper's dynamic weights).

For each model and device, prints: parameters, FLOPs per image (forward, and
forward + backward as counted by ``torch.utils.flop_counter``), the batch used,
training and inference throughput in images/s, achieved TFLOP/s and the model
FLOPs utilisation (MFU = achieved FLOP/s over the device's dense bf16 peak).

Training is timed through the training loop itself (``dmtnn.train.train_epoch``:
bf16 autocast and channels_last where the device multiplies bf16, Adam, loss
and KPI bookkeeping, the per-batch NaN check), on random images held on the
device, after one warm-up epoch. Inference is a no-grad forward pass in the
same precision.

On CUDA the batch is the largest power of two up to ``--max-batch`` whose
training step fits in memory; on the CPU it is ``--cpu-batch``. The peak is
looked up from the device name (H100/H200 SXM: 989 TFLOP/s dense bf16; H100
PCIe: 756) or given with ``--peak-tflops``; the CPU has no MFU.

Goals: MFU >= 40 % in training on one H100 for the segmenter and for DMTNN
(whose sharing network runs 256-channel 3x3 convolutions at full resolution,
about 135 GFLOP per 256 x 256 image forward: compute-bound).

``--compare OLD``: the CPU training speed of this checkout against another
(``OLD``, e.g. ``git worktree add /tmp/old 6e57328``, the code before bf16 on
the CPU and DMTNN's segmenter cache), on the quick profile's networks and
settings: DMTNN (its sharing and extraction width, on a LinkNet of the
segmenter's width) and LinkNet, 128 px, the profile's batch, one warm-up
epoch then the rest of the profile's epochs (augmented where the code
augments, so that the segmenter cache fills as in a real run). Each timing
runs in its own process (``bench/compare_worker.py``, with ``OLD/src`` or
this checkout's ``src`` on ``PYTHONPATH``), old and new interleaved,
``--repeats`` times; the table gives the medians and the bests (others' load
only slows a run down), the median of the paired speed-ups and the ratio of
the bests. Goals on 2 CPU cores: DMTNN >= 2.5x, LinkNet >= 2x.

Usage::

    python bench/train.py                        # CPU, LinkNet and U-Net at 256 x 256
    python bench/train.py --device cuda --compile
    python bench/train.py --models linknet --size 512
    python bench/train.py --models dmtnn cnn
    python bench/train.py --compare /tmp/old --repeats 5
    python bench/train.py --side-by-side --repeats 3   # train_networks' processes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dmtnn import models
from dmtnn import train as dmtnn_train
from dmtnn.config import load_profile
from dmtnn.multitask import REGRESSION
from dmtnn.samples import SEGMENTATION, Samples, compute_scales, to_device
from dmtnn.settings import fast_precision, resolve_device
from dmtnn.train import train_epoch
from dmtnn.weighting import DynamicWeights

SEGMENTERS = models.names("segmentation")

PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_TFLOPS.items():  # "H100 PCIe" before "H100"
        if all(part in name for part in key.split()):
            return peak
    return None


def _total(out) -> torch.Tensor:
    if isinstance(out, dict):
        return sum(v.float().mean() for k, v in out.items() if k != "mask" or len(out) == 1)
    return out.float().mean()


def flops_per_image(model: torch.nn.Module, size: int) -> tuple[float, float]:
    """Forward and forward + backward FLOPs of one image (counted on the meta device).

    A frozen part (DMTNN's segmenter) counts in the forward pass only. The
    count runs on meta tensors (shapes only), so it costs no arithmetic; the
    model is left on the meta device.
    """
    model = model.to("meta").train()
    x = torch.randn(2, 1, size, size, device="meta")
    with FlopCounterMode(display=False) as fwd:
        y = model(x)
    with FlopCounterMode(display=False) as both:
        _total(model(x)).backward()
    del y
    return fwd.get_total_flops() / 2, both.get_total_flops() / 2


def random_samples(n: int, size: int, seed: int = 0) -> Samples:
    """Random images with a mask and per-image porosity and moduli."""
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    mask = (gray > 90).astype(np.uint8)
    phi = 1 - mask.mean(axis=(1, 2))
    return Samples(gray, {"mask": mask, "phi": phi, "mu": 40 * (1 - phi) ** 2,
                          "kappa": 50 * (1 - phi) ** 2})


def tasks_of(arch: str):
    return SEGMENTATION if arch in SEGMENTERS else REGRESSION


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device``, in channels_last where the loop runs it in bf16 (as ``fit``)."""
    model = model.to(device)
    if fast_precision(device) is not None:
        model = model.to(memory_format=torch.channels_last)
    return model


def time_training(model, samples, batch, device, tasks, epochs: int = 2,
                  augment: bool = False, intensity: bool = False) -> float:
    """Images/s of the training loop's epoch (after one warm-up epoch).

    With ``augment``, batches are turned by random symmetries of the square
    (seeded), as in training: a frozen segmenter's cache then fills as in a
    real run. With ``intensity``, images are rendered anew as the segmenters'
    training does (``TrainConfig.intensity``).
    """
    data = to_device(samples, tasks, compute_scales(samples, tasks), device)
    params = [p for p in model.parameters() if p.requires_grad]
    make = getattr(dmtnn_train, "make_optimizer", None)  # an older checkout has none
    opt = make(params, 1e-3, device) if make else torch.optim.Adam(params, lr=1e-3)
    weighting = DynamicWeights([t.name for t in tasks])
    gen = torch.Generator().manual_seed(0)

    def epoch():
        train_epoch(model, tasks, data, weighting, opt, batch, generator=gen, augment=augment,
                    **({"intensity": True} if intensity else {}))

    epoch()  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        epoch()
    sync(device)
    return epochs * len(samples) / (time.perf_counter() - t0)


@torch.no_grad()
def time_inference(model, size, batch, device, repeats: int = 3) -> float:
    model.eval()
    x = torch.randn(batch, 1, size, size, device=device)
    dtype = fast_precision(device)
    if dtype is not None:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        model(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
        sync(device)
    return repeats * batch / (time.perf_counter() - t0)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def largest_batch(build, size, device, max_batch, tasks) -> int:
    """Largest power of two whose training step fits on the GPU."""
    best, batch = 0, 8
    while batch <= max_batch:
        try:
            model = prepare_model(build(), device)
            s = random_samples(batch, size)
            time_training(model, s, batch, device, tasks, epochs=1)
            best = batch
            batch *= 2
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    if best == 0:
        raise RuntimeError(f"not even a batch of 8 images of {size} px fits on {device}")
    return best


def quick_settings() -> dict[str, dict]:
    """The quick profile's networks and training settings, per model compared."""
    cfg = load_profile("quick")
    seg, mt = cfg.segmenter, cfg.multitask
    common = {"size": cfg.data.image_size, "seg_width": seg.width}
    return {
        "dmtnn": {**common, "width": mt.width, "batch": mt.batch_size, "epochs": mt.epochs},
        "linknet": {**common, "width": seg.width, "batch": seg.batch_size, "epochs": seg.epochs},
    }


def compare(old_root: Path, arches, repeats: int, images: int, batches=None,
            threads: int | None = None, same_work: bool = False) -> None:
    """Print training images/s of the old and this checkout's code, interleaved, medians.

    With ``same_work``, this checkout's LinkNet does only what the old code's did
    (no per-image normalisation, symmetries or scanner rendering).
    """
    new_root = Path(__file__).resolve().parents[1]
    worker = new_root / "bench" / "compare_worker.py"
    if not (old_root / "src" / "dmtnn").is_dir():
        raise SystemExit(f"--compare {old_root}: no src/dmtnn there; make one with "
                         f"git worktree add {old_root} <commit>")
    settings = quick_settings()
    runs = [(arch, b) for arch in arches for b in (batches or [settings[arch]["batch"]])]
    speed = {(arch, b, code): [] for arch, b in runs for code in ("old", "new")}
    threads = threads or torch.get_num_threads()
    print(f"# CPU ({threads} threads), quick profile: {settings}, "
          f"{images} images, {repeats} repeats; old = {old_root}"
          f"{'; LinkNet: the same work as the old code' if same_work else ''}", flush=True)
    for r in range(repeats):
        for arch, batch in runs:
            s = settings[arch]
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            for code in order:
                root = old_root if code == "old" else new_root
                args = [sys.executable, str(worker), "--root", str(root), "--model", arch,
                        "--batch", str(batch), "--size", str(s["size"]), "--width",
                        str(s["width"]), "--seg-width", str(s["seg_width"]), "--images",
                        str(images), "--epochs", str(s["epochs"]), "--threads", str(threads)]
                if same_work and code == "new":
                    args.append("--same-work")
                env = {**os.environ, "PYTHONPATH": str(root / "src")}
                done = subprocess.run(args, env=env, capture_output=True, text=True,
                                      check=False)
                if done.returncode:
                    raise SystemExit(f"{code} {arch} failed:\n{done.stderr[-3000:]}")
                ips = json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"]
                speed[arch, batch, code].append(ips)
                print(f"  repeat {r + 1}: {arch} batch {batch} {code} {ips:.1f} img/s",
                      flush=True)
    # Others' load only slows a run down: the best of the repeats is the nearest to an idle CPU.
    print("model | batch | old img/s (median, best) | new img/s (median, best) | "
          "speed-up (median of pairs, of bests) | pairs")
    for arch, batch in runs:
        old, new = speed[arch, batch, "old"], speed[arch, batch, "new"]
        ratios = [n / o for o, n in zip(old, new, strict=True)]
        print(f"{arch} | {batch} | {statistics.median(old):.1f}, {max(old):.1f} | "
              f"{statistics.median(new):.1f}, {max(new):.1f} | "
              f"{statistics.median(ratios):.2f}x, {max(new) / max(old):.2f}x | "
              f"{', '.join(f'{q:.2f}' for q in ratios)}", flush=True)


def side_by_side(repeats: int, images: int, threads: int | None = None) -> None:
    """Print the quick profile's DMTNN training images/s: one process of all the threads,
    against one process per thread side by side (``dmtnn.multitask.train_networks``)."""
    worker = Path(__file__).resolve().parent / "compare_worker.py"
    root = worker.parents[1]
    s = quick_settings()["dmtnn"]
    threads = threads or torch.get_num_threads()

    def start(n: int) -> subprocess.Popen:
        args = [sys.executable, str(worker), "--root", str(root), "--model", "dmtnn",
                "--batch", str(s["batch"]), "--size", str(s["size"]), "--width",
                str(s["width"]), "--seg-width", str(s["seg_width"]), "--images", str(images),
                "--epochs", str(s["epochs"]), "--threads", str(n)]
        env = {**os.environ, "PYTHONPATH": str(root / "src"), "OMP_NUM_THREADS": str(n)}
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)

    def images_per_s(procs: list[subprocess.Popen]) -> float:
        outs = [p.communicate()[0] for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit("a timing process failed")
        return sum(json.loads(o.strip().splitlines()[-1])["images_per_s"] for o in outs)

    print(f"# CPU, quick profile's DMTNN: {s}, {images} images, {repeats} repeats")
    alone, apart = [], []
    for r in range(repeats):
        alone.append(images_per_s([start(threads)]))
        apart.append(images_per_s([start(1) for _ in range(threads)]))
        print(f"  repeat {r + 1}: one process of {threads} threads {alone[-1]:.1f} img/s; "
              f"{threads} processes of 1 thread {apart[-1]:.1f} img/s together", flush=True)
    print("processes x threads | img/s (median, best)")
    for label, v in ((f"1 x {threads}", alone), (f"{threads} x 1", apart)):
        print(f"{label} | {statistics.median(v):.1f}, {max(v):.1f}")
    print(f"side by side / one process: {statistics.median(apart) / statistics.median(alone):.2f}x")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["linknet", "unet", "dmtnn", "cnn"],
                   choices=sorted(models.names()))
    p.add_argument("--device", default="auto")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--cpu-batch", type=int, default=4)
    p.add_argument("--max-batch", type=int, default=512)
    p.add_argument("--batches", type=int, default=4, help="batches per timed epoch")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--peak-tflops", type=float, help="device peak, dense bf16 TFLOP/s")
    p.add_argument("--compare", type=Path, metavar="OLD",
                   help="a checkout of older code: CPU training speed, old against this one")
    p.add_argument("--repeats", type=int, default=3, help="--compare: interleaved repeats")
    p.add_argument("--images", type=int, default=64, help="--compare: images per epoch")
    p.add_argument("--batch", type=int, nargs="+",
                   help="--compare: batch sizes (default: the quick profile's)")
    p.add_argument("--threads", type=int,
                   help="--compare: torch threads (default torch's: one per core); on a CPU "
                        "that others load, 1 gives steadier numbers")
    p.add_argument("--same-work", action="store_true",
                   help="--compare: this checkout's LinkNet without the scanner augmentation "
                        "the old code lacks (the engine's speed-up alone)")
    p.add_argument("--side-by-side", action="store_true",
                   help="the quick profile's DMTNN: one process of all the threads against "
                        "one process per thread (train_networks), images/s")
    args = p.parse_args(argv)
    if args.side_by_side:
        side_by_side(args.repeats, args.images, args.threads)
        return
    if args.compare:
        arches = [a for a in args.models if a in ("dmtnn", "linknet")] or ["dmtnn", "linknet"]
        compare(args.compare, arches, args.repeats, args.images, args.batch, args.threads,
                args.same_work)
        return

    device = resolve_device(args.device)
    peak = peak_tflops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"# {name}, torch {torch.__version__}, {args.size} x {args.size} px, "
          f"width {args.width}, peak {peak or 'n/a'} TFLOP/s bf16"
          f"{', torch.compile' if args.compile else ''}")
    cols = ("model", "params", "GFLOP fwd", "GFLOP train", "batch", "train img/s",
            "infer img/s", "train TFLOP/s", "train MFU", "infer MFU")
    print(" | ".join(cols))
    for arch in args.models:
        tasks = tasks_of(arch)

        def make(arch=arch):
            torch.manual_seed(0)
            spec = models.network(arch)
            kwargs = {"width": args.width}
            if spec.sized:
                kwargs["image_size"] = args.size
            if spec.segmenter:
                kwargs["segmenter"] = models.build("linknet", width=args.width)
            return spec.build(**kwargs)

        def build(arch=arch):
            m = make(arch)
            return torch.compile(m) if args.compile else m

        n_params = models.count_parameters(make())
        f_fwd, f_train = flops_per_image(make(), args.size)
        batch = (largest_batch(build, args.size, device, args.max_batch, tasks)
                 if device.type == "cuda" else args.cpu_batch)
        model = prepare_model(build(), device)
        train_ips = time_training(model, random_samples(batch * args.batches, args.size),
                                  batch, device, tasks)
        infer_ips = time_inference(model, args.size, batch, device)
        tflops = train_ips * f_train / 1e12
        mfu = f"{tflops / peak:.1%}" if peak else "n/a"
        mfu_inf = f"{infer_ips * f_fwd / 1e12 / peak:.1%}" if peak else "n/a"
        print(f"{arch} | {n_params / 1e6:.2f}M | {f_fwd / 1e9:.1f} | {f_train / 1e9:.1f} | "
              f"{batch} | {train_ips:.1f} | {infer_ips:.1f} | {tflops:.3f} | {mfu} | {mfu_inf}",
              flush=True)


if __name__ == "__main__":
    main()
