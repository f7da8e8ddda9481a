"""Every number the paper reports, and ours beside it.

The paper's numbers live here, once: the ``PAPER_*`` constants (those the code
and the notebooks use) and the :data:`CLAIMS` (each with the paper's value and
words); everything else imports them from here. This module imports nothing
else of ``dmtnn`` but :mod:`dmtnn.artifacts`, so any module may import it.
The notebooks :func:`record` our value of each claim where they compute it:
the value is *glued* into the executed notebook (the MyST-NB glue format,
written without importing MyST-NB, which the GPU machine lacks), and the book's
comparison page pastes it from there with ``{glue:text}`` roles, so no number
on that page is typed by hand. :func:`table_markdown` writes that page's table.

A claim is numeric (the paper gives a number; the difference is computed) or a
reading (the paper states a finding, e.g. "deeper networks overfit"; the
notebook that tests it records our value and a verdict).

>>> claim("fig11-dmtnn-phi").paper
0.92
>>> difference(claim("fig11-dmtnn-phi"), 0.70)
'-0.22'
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmtnn.artifacts import atomic_write

__all__ = ["PAPER_PA", "PAPER_PARAMS", "PAPER_R2", "PAPER_REL_ERROR_GAIN", "PAPER_REV_PX",
           "PAPER_REV_UM", "PAPER_WEIGHTS_R2", "Claim", "CLAIMS", "claim", "difference",
           "glue_bundle", "record", "record_run", "table_markdown", "VERDICT_BOX",
           "verdict_box_markdown"]

# --------------------------------------------------------------------------------------
# The paper's numbers
# --------------------------------------------------------------------------------------

#: The paper's 2D porosity REV (section 3.2, Fig. 7): 200 px of its 2.25 um voxels.
PAPER_REV_PX = 200
PAPER_REV_UM = PAPER_REV_PX * 2.25

#: The paper's parameter counts (section 3.4) as it writes them, its rounding kept
#: ("1.10e7", not 1.1e7); LinkNet is DMTNN's frozen part.
PAPER_PARAMS = {
    "DMTNN": {"total": "2.2e7", "trainable": "1.10e7", "frozen": "1.15e7"},
    "CNN": {"total": "1.7e6", "trainable": "1.7e6", "frozen": "0"},
}

#: The paper's test pixel accuracies (section 4.1), in words where it gives no number.
PAPER_PA = {
    "LinkNet": "0.96-0.98 per image, mean > 0.97",
    "U-Net": "about 0.95 (cited)",
    "threshold": "slightly more accurate than the network (no number)",
}

#: The paper's test R2 (section 4.2, Figs. 10 and 11).
PAPER_R2 = {
    "CNN": {"phi": 0.47, "mu": 0.64, "kappa": 0.58},
    "DMTNN": {"phi": 0.92, "mu": 0.74, "kappa": 0.79},
}

#: The paper's Table 2 (Castle Gate): DMTNN's mean relative error of mu and kappa (the
#: paper's "K") is more than this fraction lower than the CNN's.
PAPER_REL_ERROR_GAIN = 0.10

#: The paper's R2 after 100 epochs per weighting strategy: training-set KPIs read off its
#: Fig. 13 ("~" values), not test scores.
PAPER_WEIGHTS_R2 = {
    "1:10:3": {"phi": 0.89, "mu": 0.82, "kappa": 0.86},
    "dynamic": {"phi": 0.94, "mu": 0.84, "kappa": 0.88},
}

# --------------------------------------------------------------------------------------
# The claims: each number or reading of the paper, and where the book computes ours
# --------------------------------------------------------------------------------------

#: MyST-NB's prefix for glued outputs that are stored but not displayed.
GLUE_PREFIX = "application/papermill.record/"


@dataclass(frozen=True)
class Claim:
    """One number or reading of the paper, and where the book computes ours.

    ``paper`` is the paper's number (None for a reading), ``paper_text`` how the
    paper states it, ``fmt`` the format of our value, ``relative`` whether the
    difference is given in per cent, and ``why`` the sentence on the difference.
    """

    key: str
    item: str
    quantity: str
    paper: float | None
    paper_text: str
    notebook: str
    why: str
    fmt: str = ".3f"
    relative: bool = False


_A2 = ("Per parameter, the paired difference of the MAE with its cluster bootstrap interval; "
       "the verdict shared by φ, μ and κ, or each verdict with its parameters.")
_TRAINING = ("Synthetic rocks; the CPU profiles train smaller networks for far fewer "
             "epochs than the paper's 100 on a GPU.")
_SEEDS = ("The mean over the profile's seeds (`loss.headline_seeds`), DMTNN and the CNN both "
          "trained with the paper's dynamic weights; notebook 05 shows every seed.")
_PAIRED = ("Paired difference of test R² on the same slices, averaged over seeds, with a 95 % "
           "cluster bootstrap interval over test slabs; the verdict says on which side of 0 "
           "the interval lies (and every seed, and the Student t interval over seeds, with it), "
           "or that a network under-fits its training data.")

CLAIMS: tuple[Claim, ...] = (
    Claim("rev-porosity", "Fig. 7", "2D porosity REV (µm)", PAPER_REV_UM,
          f"{PAPER_REV_PX} px = {PAPER_REV_UM:.0f} µm", "02_rev",
          "The paper read the window where the *mean* porosity settles; we require the spread "
          "of single windows to settle (median over the synthetic rocks).", fmt=".0f"),
    Claim("params-linknet", "Sec. 3.4", "LinkNet parameters",
          float(PAPER_PARAMS["DMTNN"]["frozen"]), f"about {PAPER_PARAMS['DMTNN']['frozen']}",
          "04_segmenter", "LinkNet-ResNet18 at width 1; the paper's count is rounded.",
          fmt=",.0f", relative=True),
    Claim("fig9-linknet-pa", "Fig. 9", "LinkNet test pixel accuracy", 0.97,
          "0.96-0.98, mean above 0.97", "04_segmenter",
          "Synthetic CT images and threshold labels; a narrower, shorter-trained LinkNet in the "
          "CPU profiles."),
    Claim("fig9-unet-pa", "Fig. 9", "U-Net test pixel accuracy", 0.95,
          "about 0.95 (cited from Cui 2020, other data)", "04_segmenter",
          "The paper cites U-Net on other data; ours is trained on the same images as LinkNet."),
    Claim("fig9-threshold", "Fig. 9", "threshold vs network accuracy", None,
          "threshold slightly more accurate", "04_segmenter",
          "Our labels are a threshold of the same images, so a per-image threshold is close to "
          "them by construction."),
    Claim("params-dmtnn-total", "Sec. 3.4", "DMTNN parameters, total",
          float(PAPER_PARAMS["DMTNN"]["total"]), f"about {PAPER_PARAMS['DMTNN']['total']}",
          "05_dmtnn", "Layer sizes the paper omits are ours, chosen to match its totals.",
          fmt=",.0f", relative=True),
    Claim("params-dmtnn-trainable", "Sec. 3.4", "DMTNN parameters, trainable",
          float(PAPER_PARAMS["DMTNN"]["trainable"]),
          f"about {PAPER_PARAMS['DMTNN']['trainable']}", "05_dmtnn",
          "Layer sizes the paper omits are ours, chosen to match its totals.",
          fmt=",.0f", relative=True),
    Claim("params-cnn", "Sec. 3.4", "CNN parameters", float(PAPER_PARAMS["CNN"]["total"]),
          f"about {PAPER_PARAMS['CNN']['total']}", "05_dmtnn",
          "The CNN's layers are ours (Fig. 8 gives no sizes), chosen to match its total.",
          fmt=",.0f", relative=True),
    *(Claim(f"fig10-cnn-{k}", "Fig. 10", f"CNN test R² of {name}", PAPER_R2["CNN"][k],
            f"{PAPER_R2['CNN'][k]:.2f}", "05_dmtnn", f"{_TRAINING} {_SEEDS}")
      for k, name in (("phi", "φ"), ("mu", "μ"), ("kappa", "κ"))),
    *(Claim(f"fig11-dmtnn-{k}", "Fig. 11", f"DMTNN test R² of {name}", PAPER_R2["DMTNN"][k],
            f"{PAPER_R2['DMTNN'][k]:.2f}", "05_dmtnn", f"{_TRAINING} {_SEEDS}")
      for k, name in (("phi", "φ"), ("mu", "μ"), ("kappa", "κ"))),
    *(Claim(f"headline-{k}", "Figs. 10, 11", f"DMTNN − CNN test R² of {name}",
            round(PAPER_R2["DMTNN"][k] - PAPER_R2["CNN"][k], 2),
            f"{PAPER_R2['DMTNN'][k] - PAPER_R2['CNN'][k]:+.2f} (DMTNN better)", "05_dmtnn",
            f"{_PAIRED} {_TRAINING}")
      for k, name in (("phi", "φ"), ("mu", "μ"), ("kappa", "κ"))),
    Claim("table1-time", "Table 1", "FEM labelling vs DMTNN training time", None,
          "FEM costs more than training", "05_dmtnn",
          "Our FEM is a preconditioned solver on the same machine as the training; the paper's "
          "ran on a multi-core CPU against a GPU for training. A side is taken only when one "
          "time is more than twice the other (dmtnn.statistics.TIME_MARGIN): nearer than "
          "that, the thread count or the load can reverse the order."),
    *(Claim(f"fig13-{s.replace(':', '-')}-{k}", "Fig. 13",
            f"{s} weights: training R² of {name}, last epoch", PAPER_WEIGHTS_R2[s][k],
            f"about {PAPER_WEIGHTS_R2[s][k]:.2f} after 100 epochs", "06_weights",
            f"Training-set KPIs, as in the paper's Fig. 13. {_TRAINING}")
      for s in PAPER_WEIGHTS_R2 for k, name in (("phi", "φ"), ("mu", "μ"), ("kappa", "κ"))),
    *(Claim(f"weights-dynamic-vs-{other.replace(':', '-')}", "Fig. 13",
            f"dynamic − {other} weights: test R² (φ, μ, κ)", None, text, "06_weights",
            f"{_PAIRED} {_TRAINING}")
      for other, text in (
          ("1:10:3", "dynamic higher, training R² " + " / ".join(
              f"{PAPER_WEIGHTS_R2['dynamic'][k]:.2f}" for k in ("phi", "mu", "kappa"))
           + " vs " + " / ".join(
              f"{PAPER_WEIGHTS_R2['1:10:3'][k]:.2f}" for k in ("phi", "mu", "kappa"))),
          ("1:1:1", "dynamic better (no number)"))),
    *(Claim(f"table2-{k}", "Table 2",
            f"DMTNN − CNN relative error of {name}, over the CNN's, Castle Gate",
            None, f"DMTNN more than {PAPER_REL_ERROR_GAIN * 100:.0f} % lower", "07_robustness",
            f"Twenty slices of a few slabs, over the seeds of notebook 05: supported only where "
            f"the whole 95 % cluster bootstrap interval of the paired difference, over the "
            f"CNN's mean, lies below −{PAPER_REL_ERROR_GAIN * 100:.0f} % and both networks fit "
            f"their training data.")
      for k, name in (("mu", "μ"), ("kappa", "κ"))),
    Claim("fig15-pa", "Fig. 15", "LinkNet pixel accuracy, 20 Castle Gate slices", 0.95,
          "about 0.95", "07_robustness",
          "Synthetic Castle Gate, held out of our training (the paper's training list "
          "included it)."),
    Claim("a-mtnn-ws", "App. A", "porosity: MTNN vs MTNN_WS (no segmenter)", None,
          "the segmentation input improves porosity a lot", "08_appendix_a",
          "Trained on one rock's training slabs, as the paper's appendix did; judged on the "
          "paired difference of the MAE over that rock's test slabs (R² on its few, similar "
          "slices is unstable)."),
    Claim("a1-depth", "Table A1", "test MAE, shallowest − deepest network", None,
          "deeper networks overfit", "08_appendix_a",
          "One rock's few test slabs: a verdict needs the cluster bootstrap interval of the "
          "paired difference to exclude 0 and both networks to fit their training data."),
    Claim("a2-single-test", "Table A2", "single- vs multi-task, test MAE (φ, μ, κ)", None,
          "single-task often more accurate", "08_appendix_a",
          _A2),
    Claim("a2-multi-unseen", "Table A2", "single- vs multi-task, unseen rocks MAE (φ, μ, κ)",
          None, "multi-task more robust", "08_appendix_a", _A2),
)

_BY_KEY = {c.key: c for c in CLAIMS}
if len(_BY_KEY) != len(CLAIMS):  # pragma: no cover - a programming error
    raise RuntimeError("duplicate claim keys in dmtnn.comparison.CLAIMS")


def claim(key: str) -> Claim:
    """The claim called ``key``; a clear error names the valid keys."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no paper claim {key!r}; known: {', '.join(_BY_KEY)}") from None


def difference(c: Claim, ours: Any) -> str:
    """Ours minus the paper's, absolute or in per cent (``c.relative``); '–' for readings."""
    if c.paper is None or not isinstance(ours, numbers.Real) or math.isnan(float(ours)):
        return "–"
    if c.relative:
        return f"{(ours - c.paper) / c.paper:+.2%}"
    return f"{ours - c.paper:+.{2 if abs(c.paper) < 10 else 0}f}"


def glue_bundle(name: str, text: str) -> tuple[dict[str, str], dict[str, Any]]:
    """The display data and metadata of a hidden MyST-NB glue of ``text`` as ``name``."""
    return ({GLUE_PREFIX + "text/plain": repr(text)},
            {"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}})


def _glue(name: str, text: str) -> None:
    from IPython import get_ipython
    from IPython.display import display

    if get_ipython() is None:  # a plain interpreter: nothing to store the glue in
        return
    data, metadata = glue_bundle(name, text)
    display(data, raw=True, metadata=metadata)


def record(key: str, ours: Any, verdict: str = "") -> None:
    """Glue our value of claim ``key`` (and its difference, or ``verdict``) for the book.

    ``ours`` is a number (formatted with the claim's format) or a short text;
    ``verdict`` says, for a reading, whether our data support it: one of
    :data:`dmtnn.statistics.VERDICTS` from a paired difference
    (:func:`dmtnn.statistics.verdict`), or several cases combined by
    :func:`dmtnn.reports.overall_verdict`.
    """
    c = claim(key)
    if isinstance(ours, numbers.Real):
        if math.isnan(float(ours)):
            text = "n/a"
        else:
            text = format(ours, c.fmt)
    else:
        text = str(ours)
    if c.paper is None and not verdict:
        raise ValueError(f"claim {key!r} is a reading: record it with a verdict")
    _glue(key, text)
    _glue(f"{key}-diff", verdict or difference(c, ours))


def record_run(cfg: Any) -> None:
    """Glue which data and profile the run used (pasted above the comparison table)."""
    _glue("run", f"{cfg.data.source}, {cfg.profile}")


def _paste(notebook: str, key: str) -> str:
    return f"{{glue:text}}`notebooks/{notebook}.ipynb::{key}:s`"  # :s, or the key is cut


def table_markdown() -> str:
    """The comparison page's table: every claim, the paper's value and ours (pasted).

    Ours is followed by the difference (numbers) or the verdict (readings) in
    brackets; which data and profile produced the values is pasted once above;
    the reasons for the differences are lettered notes below the table (one
    reason often serves many rows).
    """
    notes: dict[str, str] = {}
    lines = [f"All our values: {_paste('02_rev', 'run')} (data, profile).", "",
             "| item | quantity | paper | ours (difference or verdict) | why |",
             "|---|---|---|---|---|"]
    for c in CLAIMS:
        letter = notes.setdefault(c.why, "abcdefghijklmnopqrstuvwxyz"[len(notes)])
        ours = f"{_paste(c.notebook, c.key)} ({_paste(c.notebook, f'{c.key}-diff')})"
        cells = [c.item, c.quantity, c.paper_text, ours, f"({letter})"]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += ["", "Why they differ:", ""]
    lines += [f"({letter}) {why}  " for why, letter in notes.items()]
    return "\n".join(lines) + "\n"


#: The paper's claims in the verdict box, each with the claim keys that decide it.
VERDICT_BOX = (
    ("LinkNet segments as well as the paper says", ("fig9-linknet-pa", "fig9-threshold")),
    ("DMTNN predicts φ, μ, κ better than the CNN", ("headline-phi", "headline-mu",
                                                    "headline-kappa")),
    ("Dynamic weights beat fixed ones", ("weights-dynamic-vs-1-1-1",
                                         "weights-dynamic-vs-1-10-3")),
    ("DMTNN is more robust than the CNN on an unseen rock", ("table2-mu", "table2-kappa")),
    ("Appendix A: the segmenter, depth and multi-task learning help",
     ("a-mtnn-ws", "a1-depth", "a2-single-test", "a2-multi-unseen")),
)


def verdict_box_markdown() -> str:
    """The verdict box at the top of the intro and the comparison page.

    One row per claim of the paper (:data:`VERDICT_BOX`): each deciding
    quantity with our value and its verdict, pasted from the notebooks' glue,
    and a link to the notebook. Nothing in it is typed by hand.
    """
    lines = ["| the paper's claim | what decides it | ours (verdict) | notebook |",
             "|---|---|---|---|"]
    for text, keys in VERDICT_BOX:
        for i, key in enumerate(keys):
            c = claim(key)
            ours = f"{_paste(c.notebook, key)} ({_paste(c.notebook, f'{key}-diff')})"
            link = f"[{c.notebook[:2]}](notebooks/{c.notebook}.ipynb)"
            lines.append(f"| {text if i == 0 else ''} | {c.quantity} | {ours} | {link} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m dmtnn.comparison TABLE.md [--verdicts BOX.md]``: write the book's tables."""
    parser = argparse.ArgumentParser(description="Write the comparison page's table.")
    parser.add_argument("path", type=Path, help="the Markdown file to write")
    parser.add_argument("--verdicts", type=Path, help="also write the verdict box here")
    args = parser.parse_args(argv)
    text = table_markdown()
    atomic_write(args.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    if args.verdicts:
        box = verdict_box_markdown()
        atomic_write(args.verdicts, lambda tmp: tmp.write_text(box, encoding="utf-8"))


if __name__ == "__main__":
    main()
