"""One timing of ``bench/train.py --compare``: training images/s of one network, one code.

Run with a checkout's ``src`` on ``PYTHONPATH`` (``bench/train.py --compare``
sets it): the ``dmtnn`` imported is that checkout's, and so is the
``bench/train.py`` that times it (``--root``), whose ``random_samples``,
``tasks_of`` and ``time_training`` speak that checkout's API. Newer code
puts the model in its training layout (``prepare_model``: channels_last
where it trains in bf16) and augments batches (``time_training(augment=)``,
which fills DMTNN's segmenter cache as training does) and, where it has
them, trains LinkNet as its segmenters train: each image standardised by
itself and rendered anew (``time_training(intensity=)``); older code has
none of these, and its speed does not depend on augmentation. ``--same-work``
times the newer code's LinkNet doing only the older code's work (the input
normalised globally, no augmentation, no rendering), so that a speed-up is
the engine's alone.

Prints one JSON line: ``{"images_per_s": ...}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
from pathlib import Path

import torch

from dmtnn import models


def load_bench(root: Path):
    """The ``bench/train.py`` of the checkout at ``root``, as a module."""
    spec = importlib.util.spec_from_file_location("bench_train", root / "bench" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--root", type=Path, required=True, help="the checkout whose code runs")
    p.add_argument("--model", choices=("dmtnn", "linknet"), required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--width", type=float, required=True)
    p.add_argument("--seg-width", type=float, required=True, help="DMTNN's LinkNet")
    p.add_argument("--images", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True, help="warm-up included")
    p.add_argument("--threads", type=int, required=True, help="torch threads")
    p.add_argument("--same-work", action="store_true",
                   help="LinkNet: the older code's work only (no scanner augmentation)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not models.__file__.startswith(str(args.root.resolve())):
        raise SystemExit(f"dmtnn comes from {models.__file__}, not {args.root}: put "
                         f"{args.root / 'src'} on PYTHONPATH")
    bench = load_bench(args.root)
    device = torch.device("cpu")
    torch.manual_seed(0)
    if args.model == "dmtnn":
        seg = models.build("linknet", width=args.seg_width)
        model = models.build("dmtnn", segmenter=seg, image_size=args.size, width=args.width)
    else:  # the segmenter as the checkout trains it: scanner-robust where it has that
        params = inspect.signature(bench.time_training).parameters
        robust = ({"input_norm": "image"} if "intensity" in params and not args.same_work
                  else {})
        model = models.build("linknet", width=args.width, **robust)
    prepare = getattr(bench, "prepare_model", None)
    model = prepare(model, device) if prepare else model.to(device)
    params = inspect.signature(bench.time_training).parameters
    plain = args.model == "linknet" and args.same_work
    kw = {"augment": True} if "augment" in params and not plain else {}
    if args.model == "linknet" and "intensity" in params and not plain:
        kw["intensity"] = True
    samples = bench.random_samples(args.images, args.size)
    ips = bench.time_training(model, samples, args.batch, device, bench.tasks_of(args.model),
                              epochs=args.epochs - 1, **kw)
    print(json.dumps({"images_per_s": ips}))


if __name__ == "__main__":
    main()
