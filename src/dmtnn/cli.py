"""The ``dmtnn`` command: apply the trained networks, manage their weights, run the book.

::

    dmtnn predict scan.tif --out result/            # pixel size from the TIFF's metadata
    dmtnn predict scan.raw --shape 100,1000,1000 --dtype uint16 --pixel-um 2.25 --out result/
    dmtnn predict slice.npy --pixel-um 8.79 --fem --out result/
    dmtnn weights list                              # the shipped weights folders, checked
    dmtnn weights verify weights/dmtnn
    dmtnn weights export --profile quick --out weights/
    dmtnn example berea.tif                         # a stack to try (real Berea as CT)
    dmtnn pipeline --profile quick                  # the book's notebooks (needs .[book])
    dmtnn --version

Exit status: 0 done, 2 refused input or arguments (the message says what to
do), 1 a failing notebook (``pipeline``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from dmtnn import __version__, pipeline
from dmtnn.checkpoints import CheckpointMismatch
from dmtnn.config import PROFILES, load_profile
from dmtnn.images import ImageError, ImageWarning, read_image
from dmtnn.predict import SMALL, example_stack, predict_stack, write_prediction
from dmtnn.weights import (
    ENV_VAR,
    EXPORTABLE,
    WeightsError,
    export_weights,
    list_weights,
    load_network,
    weights_markdown,
    weights_root,
)

__all__ = ["main", "build_parser", "choose_pixel_size"]

#: Errors that are the user's to fix: reported in one line, exit status 2.
USER_ERRORS = (ImageError, WeightsError, CheckpointMismatch, FileNotFoundError, FileExistsError,
               ValueError)

#: A pixel size from --pixel-um that differs from the file's by more than this is noted.
PIXEL_TOLERANCE = 0.01


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: give sides as N,H,W or H,W "
                                         f"(e.g. 100,1000,1000)") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"--shape {text!r}: give 2 or 3 positive sides "
                                         f"(H,W or N,H,W)")
    return shape


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a pixel size must be positive (um)")
    return value


def _count(least: int):
    """An argparse type: a whole number of at least ``least``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= {least}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dmtnn`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="dmtnn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"dmtnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("predict", help="masks, porosity and moduli of your grayscale images",
                       description="Apply a trained network to a 2D image or 3D stack. Writes "
                                   "mask.tif, windows.csv, slices.csv and result.json (with a "
                                   "'method' block of every rule applied) to --out.")
    p.add_argument("input", type=Path, help="TIFF (.tif/.tiff), NumPy (.npy), or headerless "
                                            "raw (any other name; needs --shape and --dtype)")
    p.add_argument("--out", "-o", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--pixel-um", type=_positive, help="pixel size in micrometres; required "
                   "unless the TIFF's metadata gives it (ImageJ unit or resolution tags)")
    p.add_argument("--weights", type=Path, help=f"weights folder (default: dmtnn under "
                   f"${ENV_VAR}, else weights/ of the checkout)")
    p.add_argument("--shape", type=_shape, help="raw files: N,H,W or H,W (C order)")
    p.add_argument("--dtype", help="raw files: uint8, uint16, <u2 / >u2 (byte order), float32...")
    p.add_argument("--fem", action="store_true",
                   help="also compute mu and kappa of the predicted masks by FEM (slower)")
    p.add_argument("--small", choices=SMALL, default="pad",
                   help="slices smaller than the network's window: pad by reflection "
                        "(default) or refuse")
    p.add_argument("--invert", action="store_true", help="use 255 - gray (bright pores)")
    p.add_argument("--mask-grid", choices=("network", "input"), default="network",
                   help="write the mask at the network's pixel size (default) or mapped "
                        "back to the input's pixels")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda...")
    p.add_argument("--precision", choices=("auto", "bf16", "float32"), default="auto",
                   help="arithmetic: auto = bf16 where the device computes it natively")
    p.add_argument("--batch-size", type=_count(1), default=16, help="windows per forward pass")
    p.add_argument("--threads", type=_count(0), default=1,
                   help="torch threads of each forward pass on a CPU; the others compute "
                        "other passes at once, so the numbers do not depend on the machine's "
                        "thread count (default 1; 0: every pass on all threads, can be faster "
                        "on many cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    w = sub.add_parser("weights", help="list, verify or export network weights")
    wsub = w.add_subparsers(dest="action", metavar="ACTION", required=True)
    wl = wsub.add_parser("list", help="the weights folders and their checksums")
    wl.add_argument("--dir", type=Path, help="folder holding weights folders")
    wl.add_argument("--markdown", action="store_true",
                    help="a Markdown table, for the book (make stage writes it)")
    wv = wsub.add_parser("verify", help="check and load weights folders")
    wv.add_argument("folders", type=Path, nargs="*", help="default: every folder of `list`")
    we = wsub.add_parser("export", help="weights folders from a profile's trained runs "
                                        "(artifacts/<profile>/models, notebooks 04 and 05)")
    we.add_argument("--profile", required=True, choices=list(PROFILES))
    we.add_argument("--out", type=Path, required=True, help="e.g. weights/")
    we.add_argument("--networks", default=",".join(EXPORTABLE),
                    help=f"comma-separated, among {', '.join(EXPORTABLE)}")
    we.add_argument("--strategy", help="DMTNN's loss weighting (default: the profile's)")
    we.add_argument("--half", action="store_true",
                    help="store float16 (half the size; float16 rounding of the weights)")
    we.add_argument("--int8", action="store_true",
                    help="as --half, with the large matrices (DMTNN's fully connected layers) "
                         "as int8, one scale per row (DMTNN: about 4 MB instead of 6.7)")
    we.add_argument("--overwrite", action="store_true", help="replace existing folders")
    we.add_argument("--commit", help="the commit that trained the runs (default: this "
                                     "checkout's; give the notebooks' run stamp's when the "
                                     "artifacts come from another checkout)")

    e = sub.add_parser("example", help="write a grayscale stack to try `dmtnn predict` on")
    e.add_argument("out", type=Path, help="TIFF file to write (ImageJ metadata: pixel size)")
    e.add_argument("--source", choices=("real", "synthetic"), default="real",
                   help="real Berea geometry imaged by the CT model (needs the real volumes, "
                        "see dmtnn.data.real), or a synthetic rock")
    e.add_argument("--slices", type=int, default=4)
    e.add_argument("--seed", type=int, default=2022)

    sub.add_parser("pipeline", add_help=False,
                   help="run the book's notebooks (python -m dmtnn.pipeline; needs .[book])")
    return parser


def choose_pixel_size(given: float | None, found: tuple[float, float] | None, source: str,
                      name: str) -> tuple[tuple[float, float], str, list[str]]:
    """The pixel size (y, x) um to use, where it came from, and notes.

    ``--pixel-um`` wins over the file's metadata (noted when they differ by more
    than 1 %); without either the input is refused with what to pass.
    """
    notes = []
    if given is not None:
        if found is not None and abs(found[1] / given - 1) > PIXEL_TOLERANCE:
            notes.append(f"{name}: using --pixel-um {given:g}; the file's metadata says "
                         f"{found[1]:.6g} um ({source})")
        return (given, given), "--pixel-um", notes
    if found is None:
        raise ImageError(f"{name}: no pixel size given and none usable in the file ({source}): "
                         f"pass --pixel-um (the scan's pixel size in micrometres; the networks "
                         f"were trained at 8.79 um)")
    return found, source, notes


def _predict(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--out {out} exists: choose another folder or pass --overwrite")
    folder = args.weights
    if folder is None:
        root = weights_root()
        if root is None or not (root / "dmtnn").is_dir():
            where = "no weights/ folder" if root is None else f"no {root / 'dmtnn'}"
            raise WeightsError(f"no shipped weights found ({where}): pass --weights FOLDER "
                               f"(written by `dmtnn weights export`) or set ${ENV_VAR} to the "
                               f"folder holding dmtnn/")
        folder = root / "dmtnn"
    network = load_network(folder)
    image = read_image(args.input, shape=args.shape, dtype=args.dtype)
    name = args.input.name
    pixel, source, notes = choose_pixel_size(args.pixel_um, image.pixel_um, image.pixel_source,
                                             name)
    print(f"{name}: {image.array.shape} {image.array.dtype}, pixel {pixel[0]:.6g} x "
          f"{pixel[1]:.6g} um ({source}); network {network.name} from {network.folder} "
          f"({network.image_size} px windows at {network.pixel_um:.4g} um)")
    info = {"file": str(args.input), "format": image.kind, "pixel_um_source": source,
            "slice_spacing_um": image.spacing_um}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageWarning)  # printed below, once each
        pred = predict_stack(image.array, pixel, network, fem=args.fem, small=args.small,
                             invert=args.invert, mask_grid=args.mask_grid,
                             batch_size=args.batch_size, device=args.device,
                             precision=args.precision, threads=args.threads,
                             progress=False if args.quiet else None, name=name, source=info)
    pred.warnings[:0] = notes
    for m in pred.warnings:
        print(f"warning: {m}", file=sys.stderr)
    files = write_prediction(pred, out, overwrite=args.overwrite)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in pred.summary().items())
    w = pred.method["windows"]
    print(f"{len(pred.slices)} slice(s), {w['per_slice']} window(s) of {w['size_px']} px each; "
          f"mean per slice: {summary}")
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


def _weights(args: argparse.Namespace) -> int:
    if args.action == "export":
        networks = [n.strip() for n in args.networks.split(",") if n.strip()]
        cfg = load_profile(args.profile)
        for folder in export_weights(cfg, args.out, networks=networks, strategy=args.strategy,
                                     half=args.half, int8=args.int8,
                                     overwrite=args.overwrite,
                                     commit=args.commit):
            size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
            print(f"exported {folder} ({size:.2f} MB)")
        return 0
    if args.action == "list":
        root = args.dir or weights_root()
        rows = list_weights(root)
        if args.markdown:
            print(weights_markdown(rows), end="")
            return 0
        if not rows:
            print(f"no weights folders in {root or f'${ENV_VAR} or weights/ of the checkout'}")
            return 0
        for r in rows:
            what = (f"{r['network']}, {r['image_size']} px at {r['pixel_um']:.4g} um, profile "
                    f"{r['profile']}, commit {r['commit']}" if r["status"] == "ok"
                    else r["status"])
            print(f"{r['name']:<12} {r['MB']:6.2f} MB  {what}")
        return 0
    root = weights_root()
    folders = args.folders or ([root / r["name"] for r in list_weights(root)] if root else [])
    if not folders:
        raise WeightsError(f"no weights folders to verify: name them, or set ${ENV_VAR}")
    for folder in folders:
        net = load_network(folder)
        print(f"ok {folder}: {net.name}, outputs {', '.join(net.outputs)}, sha256 "
              f"{net.sha256[:12]}...")
    return 0


def _example(args: argparse.Namespace) -> int:
    gray, pixel, _ = example_stack(args.source, args.slices, seed=args.seed)
    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"{out}: the example is written as TIFF; name it .tif")
    out.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out, gray, imagej=True, resolution=(1 / pixel, 1 / pixel),
                     metadata={"unit": "um", "axes": "ZYX"})
    print(f"wrote {out}: {gray.shape} uint8, {pixel:g} um pixels ({args.source}); try: "
          f"dmtnn predict {out} --out {out.with_suffix('')}-result")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dmtnn`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["pipeline"]:
        return pipeline.main(argv[1:])
    args = build_parser().parse_args(argv)
    run = {"predict": _predict, "weights": _weights, "example": _example}[args.command]
    try:
        return run(args)
    except USER_ERRORS as err:
        print(f"dmtnn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
