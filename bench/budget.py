"""Where a profile's pipeline spends its compute: training FLOPs per notebook.

For each notebook that trains, counts the training runs the profile asks for,
the images per epoch, the epochs and the model FLOPs per image (forward plus
backward for training, forward for the validation pass, as counted by
``torch.utils.flop_counter`` at the profile's image size and width), and
prints the total and the time it takes at a few sustained throughputs. The
sustained throughput of a device is measured by ``bench/train.py`` (its
achieved TFLOP/s); the FEM labelling time comes from ``bench/fem.py``'s
images per minute.

This is an estimate, not a measurement: data generation, the FEM, the
notebooks' own predictions and the book build are not in it.

Usage::

    python bench/budget.py --profile book
    python bench/budget.py --profile quick --tflops 0.2 0.4
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pandas as pd
from train import flops_per_image

from dmtnn import models
from dmtnn.config import load_profile
from dmtnn.data.dataset import rock_layout


@dataclass
class Runs:
    notebook: str
    model: str
    runs: int
    train_images: int
    val_images: int
    epochs: int
    flops_train: float  # per image, forward + backward
    flops_val: float  # per image, forward

    @property
    def total(self) -> float:
        per_epoch = self.train_images * self.flops_train + self.val_images * self.flops_val
        return self.runs * self.epochs * per_epoch


def _flops(cfg, arch: str, **kwargs) -> tuple[float, float]:
    """Forward and training FLOPs per image of ``arch`` as this profile builds it."""
    size = cfg.data.image_size
    spec = models.network(arch)
    if spec.kind == "segmentation":
        model = spec.build(width=cfg.segmenter.width)
    else:
        if spec.segmenter:  # DMTNN: on a frozen LinkNet of the segmenter's width
            segmenter = models.build("linknet", width=cfg.segmenter.width)
            kwargs["segmenter"] = segmenter.requires_grad_(False)
        widths = spec.width_kwargs(cfg.multitask.width, cfg.multitask.head_width)
        model = spec.build(image_size=size, **widths, **kwargs)
    return flops_per_image(model, size)


def budget(profile: str) -> list[Runs]:
    cfg = load_profile(profile)
    d = cfg.data
    per_rock = rock_layout(d, d.train_rocks[0]).counts()
    n_train, n_val = (len(d.train_rocks) * per_rock[s] for s in ("train", "val"))
    sc, tc, lc = cfg.segmenter, cfg.multitask, cfg.loss
    at = cfg.appendix.train_config(tc)
    rows = []
    for arch in ("linknet", "unet"):
        fwd, train = _flops(cfg, arch)
        # LinkNet twice: ours, and the paper's input handling for the scanner comparison
        rows.append(Runs("04_segmenter", arch, 2 if arch == "linknet" else 1, n_train, n_val,
                         sc.epochs, train, fwd))
    fwd, train = _flops(cfg, "dmtnn")
    cnn_fwd, cnn_train = _flops(cfg, "cnn")
    heads = cfg.seeds("headline")  # 05: DMTNN and the CNN over these seeds, same weights
    rows.append(Runs("05_dmtnn", "dmtnn", heads, n_train, n_val, tc.epochs, train, fwd))
    rows.append(Runs("05_dmtnn", "cnn", heads, n_train, n_val, tc.epochs, cnn_train, cnn_fwd))
    # 05: DMTNN with the other porosity treatment (raw or standardised)
    rows.append(Runs("05_dmtnn", "dmtnn (other phi)", cfg.seeds("treatment"), n_train,
                     n_val, tc.epochs, train, fwd))
    per = cfg.seeds("strategies")
    others = len(lc.strategies) * per - min(per, heads)  # 05 trained dynamic's
    rows.append(Runs("06_weights", "dmtnn", others, n_train, n_val, tc.epochs, train, fwd))
    one = (per_rock["train"], per_rock["val"])
    n = cfg.seeds("appendix")  # 08: every network (default: the strategies' seeds)
    rows.append(Runs("08_appendix_a", "dmtnn (MTNN)", n, *one, at.epochs, train, fwd))
    ws_fwd, ws_train = _flops(cfg, "mtnn_ws")
    rows.append(Runs("08_appendix_a", "mtnn_ws", n, *one, at.epochs, ws_train, ws_fwd))
    for depth in cfg.appendix.depths:
        if depth != 2:  # depth 2 is the MTNN above
            f, t = _flops(cfg, "dmtnn", depth=depth)
            rows.append(Runs("08_appendix_a", f"dmtnn depth {depth}", n, *one, at.epochs, t, f))
    for task in ("phi", "mu", "kappa"):
        f, t = _flops(cfg, "dmtnn", tasks=(task,))
        rows.append(Runs("08_appendix_a", f"dmtnn {task} only", n, *one, at.epochs, t, f))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book")
    parser.add_argument("--tflops", type=float, nargs="+", default=[100.0, 200.0, 400.0],
                        help="sustained training throughputs to price the FLOPs at")
    args = parser.parse_args(argv)
    rows = budget(args.profile)
    table = pd.DataFrame([{
        "notebook": r.notebook, "model": r.model, "runs": r.runs, "images/epoch": r.train_images,
        "epochs": r.epochs, "GFLOP/img (train)": r.flops_train / 1e9, "PFLOP": r.total / 1e15,
        **{f"min @ {t:g} TFLOP/s": r.total / (t * 1e12) / 60 for t in args.tflops}}
        for r in rows])
    print(f"profile {args.profile}: training FLOPs (estimate; see the module docstring)")
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.2f}"))
    total = table.groupby("notebook", sort=False)[[c for c in table if c.startswith("min")]].sum()
    print("\nminutes per notebook:")
    print(total.to_string(float_format=lambda x: f"{x:,.1f}"))
    print("\nall training: " + ", ".join(f"{total[c].sum():.1f} {c}" for c in total))


if __name__ == "__main__":
    main()
