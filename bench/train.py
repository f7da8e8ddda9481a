"""Training and inference throughput of the networks, with model FLOPs utilisation.

Models: the segmenters (LinkNet, U-Net; trained on a mask) and the regression
networks (DMTNN on a frozen LinkNet, MTNN_WS, the CNN, hard and soft sharing;
trained on porosity and the two moduli with the paper's dynamic weights).

For each model and device, prints: parameters, FLOPs per image (forward, and
forward + backward as counted by ``torch.utils.flop_counter``), the batch used,
training and inference throughput in images/s, achieved TFLOP/s and the model
FLOPs utilisation (MFU = achieved FLOP/s over the device's dense bf16 peak).

Training is timed through the training loop itself (``dmtnn.train.train_epoch``:
bf16 autocast and channels_last on CUDA, Adam, loss and KPI bookkeeping, the
per-batch NaN check), on random images held on the device, after one warm-up
epoch. Inference is a no-grad forward pass in the same
precision.

On CUDA the batch is the largest power of two up to ``--max-batch`` whose
training step fits in memory; on the CPU it is ``--cpu-batch``. The peak is
looked up from the device name (H100/H200 SXM: 989 TFLOP/s dense bf16; H100
PCIe: 756) or given with ``--peak-tflops``; the CPU has no MFU.

Goals: MFU >= 40 % in training on one H100 for the segmenter and for DMTNN
(whose sharing network runs 256-channel 3x3 convolutions at full resolution,
about 135 GFLOP per 256 x 256 image forward: compute-bound).

Usage::

    python bench/train.py                        # CPU, LinkNet and U-Net at 256 x 256
    python bench/train.py --device cuda --compile
    python bench/train.py --models linknet --size 512
    python bench/train.py --models dmtnn cnn
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dmtnn import models
from dmtnn.multitask import REGRESSION
from dmtnn.samples import SEGMENTATION, Samples, compute_scales, to_device
from dmtnn.settings import resolve_device
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


def time_training(model, samples, batch, device, tasks, epochs: int = 2) -> float:
    """Images/s of the training loop's epoch (after one warm-up epoch)."""
    data = to_device(samples, tasks, compute_scales(samples, tasks), device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    weighting = DynamicWeights([t.name for t in tasks])
    train_epoch(model, tasks, data, weighting, opt, batch)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(epochs):
        train_epoch(model, tasks, data, weighting, opt, batch)
    sync(device)
    return epochs * len(samples) / (time.perf_counter() - t0)


@torch.no_grad()
def time_inference(model, size, batch, device, repeats: int = 3) -> float:
    model.eval()
    x = torch.randn(batch, 1, size, size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        amp = torch.autocast("cpu", enabled=False)
    with amp:
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
            model = build().to(device).to(memory_format=torch.channels_last)
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
    args = p.parse_args(argv)

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
        model = build().to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
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
