"""Run the book's notebooks in order with papermill.

::

    python -m dmtnn.pipeline --profile quick            # all notebooks
    python -m dmtnn.pipeline --profile quick --from 02  # resume at 02
    python -m dmtnn.pipeline --profile ci --only 01     # just one
    python -m dmtnn.pipeline --profile ci --reference tests/notebooks

Source notebooks (``notebooks/NN_*.ipynb``) are kept without outputs. Each
run writes executed copies to ``artifacts/<profile>/notebooks/``; they never
overwrite the sources, nor the published record in ``published/`` (the
executed notebooks of the GPU ``book`` run, committed). ``make book`` stages
one of the two into ``book/notebooks/`` for Jupyter Book.

Every executed copy gets a stamp after its title: profile, device, date, git
commit and run time. The pipeline stops at the first failing notebook, names
it and the failing cell, and keeps the partial copy for inspection.

``--reference DIR`` runs nothing: it copies a profile's executed notebooks to
``DIR`` keeping only the outputs that nbval checks (cells marked
``# NBVAL_CHECK_OUTPUT``), the references ``make test`` compares a new run with.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from dmtnn import models
from dmtnn.artifacts import artifacts_root, atomic_write, repo_root
from dmtnn.config import PROFILES, load_profile
from dmtnn.multitask import build_network

__all__ = ["notebooks", "run", "device_name", "stamp_text", "parse_stamp", "run_summary",
           "write_references", "main"]

log = logging.getLogger(__name__)

NOTEBOOK_DIR = "notebooks"

#: The nbval marker of a cell whose output must not change silently.
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The numbered source notebooks ``NN_name.ipynb`` in order."""
    folder = Path(folder) if folder else _root() / NOTEBOOK_DIR
    found = sorted(p for p in folder.glob("*.ipynb") if re.match(r"\d\d_", p.name))
    if not found:
        raise FileNotFoundError(f"no numbered notebooks (NN_*.ipynb) in {folder}")
    return found


def _root() -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError("run the pipeline inside the dmtnn checkout (no _toc.yml found)")
    return root


def device_name() -> str:
    """The accelerator the kernels will use, in words.

    On a CPU, the cores, and the threads torch computes on where they are
    fewer (``OMP_NUM_THREADS``): a run's times depend on them (its numbers do not:
    :mod:`dmtnn.parallel`).
    """
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    used = (f"{threads} thread{'s' if threads > 1 else ''} of {cores} cores" if threads < cores
            else f"{cores} cores")
    return f"CPU ({used}, {platform.processor() or platform.machine()})"


def _commit(root: Path) -> str:
    """``git describe`` of the checkout, else ``$DMTNN_COMMIT`` (a copy without .git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=10"],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("DMTNN_COMMIT", "unknown")


def stamp_text(profile: str, device: str, commit: str, seconds: float, when: datetime) -> str:
    """Markdown of the run stamp inserted into each executed notebook."""
    minutes, secs = divmod(round(seconds), 60)
    return (
        "```{admonition} Run stamp\n"
        f"profile `{profile}` · {device} · {when:%Y-%m-%d %H:%M} UTC · "
        f"commit `{commit}` · run time {minutes} min {secs:02d} s\n"
        "```"
    )


_STAMP = re.compile(r"profile `(?P<profile>[^`]+)` · (?P<device>.+?) · (?P<when>\d{4}-\d\d-\d\d "
                    r"\d\d:\d\d) UTC · commit `(?P<commit>[^`]+)` · run time (?P<min>\d+) min "
                    r"(?P<sec>\d+) s")


def parse_stamp(text: str) -> dict | None:
    """The fields of a run stamp (:func:`stamp_text`) found in ``text``, or None.

    >>> s = stamp_text("ci", "CPU", "abc1234", 75, datetime(2026, 1, 2, 3, 4))
    >>> parse_stamp(s)["seconds"], parse_stamp(s)["profile"], parse_stamp("no stamp")
    (75, 'ci', None)
    """
    m = _STAMP.search(text)
    if m is None:
        return None
    return {"profile": m["profile"], "device": m["device"], "commit": m["commit"],
            "when": datetime.strptime(m["when"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC),
            "seconds": 60 * int(m["min"]) + int(m["sec"])}


def run_summary(folder: str | os.PathLike) -> str:
    """What the executed notebooks in ``folder`` are a run of, as Markdown for the book.

    From the notebooks' stamps: the profile, device, commit(s), dates and the
    notebooks' summed run time; from that profile's configuration: the seeds,
    the weighting strategies and the sizes of the networks it trains. Nothing
    in it is typed by hand. Raises ``ValueError`` when a notebook has no stamp
    or the notebooks come from several profiles.
    """
    import nbformat

    stamps = {}
    for path in notebooks(folder):
        nb = nbformat.read(path, as_version=4)
        found = [parse_stamp(c.source) for c in nb.cells if c.cell_type == "markdown"]
        found = [f for f in found if f]
        if not found:
            raise ValueError(f"{path} has no run stamp: was it executed by the pipeline?")
        stamps[path.stem] = found[0]
    profiles = {s["profile"] for s in stamps.values()}
    if len(profiles) != 1:
        raise ValueError(f"the notebooks in {folder} come from several profiles: "
                         f"{', '.join(sorted(profiles))}")
    profile = profiles.pop()
    cfg = load_profile(profile)
    devices = sorted({s["device"] for s in stamps.values()})
    commits = sorted({s["commit"] for s in stamps.values()})
    first = min(s["when"] for s in stamps.values())
    last = max(s["when"] for s in stamps.values())
    minutes = sum(s["seconds"] for s in stamps.values()) / 60
    seg = models.build("linknet", width=cfg.segmenter.width)
    sizes = {name: models.count_parameters(build_network(cfg, name, segmenter=seg if
                                                         models.network(name).segmenter
                                                         else None), trainable=True)
             for name in ("dmtnn", "cnn")}
    lc, mt, d = cfg.loss, cfg.multitask, cfg.data
    paper = load_profile("paper")
    return (
        f"The notebooks shown are one run of the `{profile}` profile on "
        f"{' and '.join(devices)}, commit{'s' if len(commits) > 1 else ''} "
        f"{', '.join(f'`{c}`' for c in commits)}, from {first:%Y-%m-%d %H:%M} to "
        f"{last:%Y-%m-%d %H:%M} UTC; the {len(stamps)} notebooks ran for {minutes:.0f} min "
        f"in all (the data step and the set-up come on top). It trained DMTNN and the CNN "
        f"over {cfg.seeds('headline')} seeds each, {len(lc.strategies)} weighting strategies "
        f"({', '.join(lc.strategies)}) over {cfg.seeds('strategies')}, each Appendix A "
        f"network over {cfg.seeds('appendix')}, on "
        f"{d.image_size} px images, for {mt.epochs} epochs: DMTNN with "
        f"{sizes['dmtnn']:,} trainable parameters (trunk width {mt.width:g}, head width "
        f"{mt.head_width:g}) on a frozen LinkNet of width {cfg.segmenter.width:g}, the CNN "
        f"with {sizes['cnn']:,}.\n\n"
        f"A GPU run of the `paper` profile would add the paper's scale: "
        f"{paper.data.image_size} px images of the whole 2.25 mm field, "
        f"{paper.data.slices_per_rock} slices per rock, networks of width "
        f"{paper.multitask.width:g} and {paper.multitask.epochs} epochs, and the FEM "
        f"labels of the true geometry beside the threshold labels.\n"
    )


def _add_stamp(path: Path, text: str) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:  # the stamp says which profile ran; hide papermill's copy of it
        tags = c.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            c.metadata["tags"] = [*tags, "remove-cell"]
    cell = nbformat.v4.new_markdown_cell(text)
    cell.id = "run-stamp"  # a fixed id: reruns differ in the stamp's text only
    cell.metadata["tags"] = ["run-stamp"]
    nb.cells.insert(1, cell)  # after the title cell, so the title stays first
    nbformat.validator.normalize(nb)
    atomic_write(path, lambda tmp: nbformat.write(nb, tmp))


def _source_cell(executed: Path, index: int) -> int:
    """1-based number, in the source notebook, of cell ``index`` of the executed copy."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    injected = [i for i, c in enumerate(nb.cells)
                if "injected-parameters" in c.metadata.get("tags", [])]
    return index + 1 - sum(1 for i in injected if i < index)


def run(
    profile: str,
    *,
    start: str | None = None,
    only: str | None = None,
    output_dir: str | os.PathLike | None = None,
    notebook_dir: str | os.PathLike | None = None,
    kernel: str = "python3",
) -> list[Path]:
    """Execute the notebooks for ``profile``; return the executed copies.

    Parameters
    ----------
    profile : str
        One of :data:`dmtnn.config.PROFILES`.
    start : str, optional
        Number (``"02"``) of the first notebook to run.
    only : str, optional
        Number of the single notebook to run.
    output_dir : path, optional
        Where executed copies go; default ``artifacts/<profile>/notebooks``.
    notebook_dir : path, optional
        Source notebooks; default ``notebooks/`` of the checkout.
    kernel : str
        Jupyter kernel name.

    Raises
    ------
    RuntimeError
        When a notebook fails; the message names the notebook and the cell.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    root = repo_root() or Path.cwd()
    todo = notebooks(notebook_dir or _root() / NOTEBOOK_DIR)
    numbers = [p.name[:2] for p in todo]
    for flag, value in (("--from", start), ("--only", only)):
        if value is not None and value.zfill(2) not in numbers:
            raise ValueError(f"{flag} {value}: no notebook with that number ({', '.join(numbers)})")
    if only is not None:
        todo = [p for p in todo if p.name[:2] == only.zfill(2)]
    elif start is not None:
        todo = [p for p in todo if p.name[:2] >= start.zfill(2)]
    out_dir = Path(output_dir) if output_dir else artifacts_root() / profile / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {"DMTNN_ARTIFACTS": str(artifacts_root()), "DMTNN_PROGRESS": "0",
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    os.environ.update(env)  # the kernel inherits the environment
    device, commit = device_name(), _commit(root)
    done = []
    t_all = time.perf_counter()
    for k, source in enumerate(todo, 1):
        target = out_dir / source.name
        print(f"[{k}/{len(todo)}] {source.name} ({profile}) ...", flush=True)
        t0 = time.perf_counter()
        partial = target.with_name(f".{target.stem}.partial.ipynb")
        try:
            papermill.execute_notebook(
                str(source), str(partial), parameters={"profile": profile},
                kernel_name=kernel, cwd=str(source.parent), progress_bar=False,
            )
        except PapermillExecutionError as err:
            line = next((x for x in err.source.splitlines() if x.strip()), "")
            raise RuntimeError(
                f"{source.name} failed in cell {_source_cell(partial, err.cell_index)} "
                f"(counting from 1; execution count {err.exec_count}; starts {line!r}): "
                f"{err.ename}: {err.evalue}\n"
                f"partial output: {partial}\n"
                f"fix it, then resume with: python -m dmtnn.pipeline --profile {profile} "
                f"--from {source.name[:2]}"
            ) from None
        seconds = time.perf_counter() - t0
        _add_stamp(partial, stamp_text(profile, device, commit, seconds,
                                       datetime.now(UTC)))
        os.replace(partial, target)
        done.append(target)
        print(f"      done in {seconds:.0f} s (total {time.perf_counter() - t_all:.0f} s)",
              flush=True)
    return done


def write_references(executed: str | os.PathLike, folder: str | os.PathLike) -> list[Path]:
    """Copy executed notebooks to ``folder`` with only the checked cells' outputs.

    nbval (``--nbval-lax``) compares just the cells marked :data:`CHECK_MARKER`;
    the other outputs (figures, tables) are dropped so that the references stay
    small and their diffs readable. Returns the files written.
    """
    import nbformat

    written = []
    for path in notebooks(executed):
        nb = nbformat.read(path, as_version=4)
        for c in nb.cells:
            if c.cell_type == "code" and CHECK_MARKER not in c.source:
                c.outputs, c.execution_count = [], None
            c.metadata.pop("papermill", None)
            c.metadata.pop("execution", None)
        nb.metadata.pop("papermill", None)
        target = Path(folder) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(atomic_write(target, lambda tmp, nb=nb: nbformat.write(nb, tmp)))
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line of the pipeline (``python -m dmtnn.pipeline --help``)."""
    parser = argparse.ArgumentParser(prog="python -m dmtnn.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=list(PROFILES))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--from", dest="start", metavar="NN", help="first notebook to run")
    group.add_argument("--only", metavar="NN", help="run just this notebook")
    parser.add_argument("--output-dir", help="folder for executed notebooks")
    parser.add_argument("--reference", metavar="DIR",
                        help="run nothing; copy the executed notebooks to DIR as nbval references")
    parser.add_argument("--summary", nargs=2, metavar=("FOLDER", "FILE"),
                        help="run nothing; write what the executed notebooks in FOLDER are a "
                             "run of (run_summary) to FILE, Markdown")
    args = parser.parse_args(argv)
    if args.summary:
        folder, out = args.summary
        try:
            text = run_summary(folder)
        except (ValueError, FileNotFoundError) as err:
            print(f"no run summary: {err}", file=sys.stderr)
            return 1
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(out), lambda tmp: Path(tmp).write_text(text))
        return 0
    if not args.profile:
        parser.error("give --profile (or --summary FOLDER FILE)")
    needs = ("nbformat",) if args.reference else ("papermill", "nbformat", "ipykernel")
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        print(f"the notebook pipeline needs {', '.join(missing)} (the book extra): install "
              f"with pip install -e .[book]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        if args.reference:
            executed = args.output_dir or artifacts_root() / args.profile / NOTEBOOK_DIR
            for path in write_references(executed, args.reference):
                print(f"reference {path}")
            return 0
        run(args.profile, start=args.start, only=args.only, output_dir=args.output_dir)
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        print(f"pipeline stopped: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
