"""Shipped network weights: a folder format that needs no dataset and no ``artifacts/``.

A *weights folder* ``weights/<name>/`` holds three files:

``model.pt``
    The network's ``state_dict`` (CPU tensors only, read with
    ``torch.load(weights_only=True)``: no code is unpickled).
``config.json``
    What rebuilds the network and reads its outputs: ``format`` /
    ``format_version``, the registry ``network`` name and ``kind``, the
    builder's ``kwargs`` (width, image_size, depth, tasks... for
    :func:`dmtnn.models.build`), the ``outputs`` and their ``units``, the
    training ``data`` (``pixel_um``, ``image_size``, ``native_pixel_um``,
    source and rocks), the input/target ``scales`` (mean, std) of training,
    the FEM constants of the labels, and ``training`` provenance (profile,
    commit, run folder, best epoch and its validation scores).
``SHA256SUMS``
    ``sha256sum`` lines for the two files (check by hand with
    ``sha256sum -c SHA256SUMS``). A folder without it, a checksum that does not
    match, a ``config.json`` of another format or a ``model.pt`` that is not a
    state of the network it names is refused (:class:`WeightsError`).

DMTNN sits on its frozen LinkNet segmenter. Its folder is self-contained: the
segmenter's weights are inside DMTNN's ``model.pt`` (keys ``segmenter.*``)
and ``config.json`` names the segmenter's network and kwargs under
``segmenter``; no other folder is needed. A ``linknet`` folder is exported
beside it for segmentation alone (images of any size, multiples of 32).

:func:`export_weights` (``dmtnn weights export``) takes a profile's trained
runs from ``artifacts/<profile>/models/`` (notebooks 04 and 05);
:func:`load_network` reads a folder back; :func:`weights_root` is where the
shipped folders are looked for (``$DMTNN_WEIGHTS``, else ``weights/`` of the
checkout).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dmtnn import __version__, models, pipeline
from dmtnn.artifacts import atomic_write, repo_root, sha256sum
from dmtnn.checkpoints import load_checkpoint, read, read_history, run_folder
from dmtnn.config import Config
from dmtnn.multitask import REGRESSION, build_network
from dmtnn.segmentation import load_segmenter, segmenter_kwargs

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FILES",
    "ENV_VAR",
    "EXPORTABLE",
    "WeightsError",
    "LoadedNetwork",
    "weights_root",
    "staged_folder",
    "verify",
    "save_network",
    "load_network",
    "list_weights",
    "weights_markdown",
    "export_weights",
]

#: ``config.json["format"]`` of a weights folder.
FORMAT = "dmtnn-weights"
#: Version of the folder layout that this code writes and reads.
FORMAT_VERSION = 1
#: The checksummed files of a weights folder.
FILES = ("model.pt", "config.json")
#: Environment variable: the folder that holds the weights folders.
ENV_VAR = "DMTNN_WEIGHTS"
#: Networks :func:`export_weights` knows how to take from a profile's runs.
EXPORTABLE = ("linknet", "dmtnn", "cnn")

_UNITS = {"mask": "1 = grain, 0 = pore", "phi": "pore fraction", "mu": "GPa", "kappa": "GPa"}


class WeightsError(ValueError):
    """A weights folder that is missing, damaged or not of this format."""


@dataclass
class LoadedNetwork:
    """A network read from a weights folder, ready for :func:`dmtnn.train.predict`.

    Attributes
    ----------
    model : nn.Module
        In evaluation mode, on the CPU.
    name, kind : str
        Registry name (``"dmtnn"``, ``"linknet"``...) and kind.
    outputs : tuple of str
        What it predicts: ``"mask"`` (a segmenter, or DMTNN's own segmenter)
        and the regression tasks (``"phi"``, ``"mu"``, ``"kappa"``).
    scales : dict
        Training (mean, std) of the input (gray / 255) and of standardised targets.
    image_size : int
        Side (px) of the training images: the window the network is applied to.
    pixel_um : float
        Pixel size of the training images (um).
    native_pixel_um : float or None
        Voxel size of the scans the training images were reduced from (um).
    multiple : int
        Image sides must be multiples of this.
    config : dict
        The folder's ``config.json``.
    folder : Path
    sha256 : str
        Checksum of ``model.pt``.
    """

    model: nn.Module
    name: str
    kind: str
    outputs: tuple[str, ...]
    scales: dict[str, tuple[float, float]]
    image_size: int
    pixel_um: float
    native_pixel_um: float | None
    multiple: int
    config: dict = field(repr=False)
    folder: Path = Path()
    sha256: str = ""


def weights_root() -> Path | None:
    """Where shipped weights folders live: ``$DMTNN_WEIGHTS``, else ``weights/`` of the checkout.

    The checkout is the one holding the working directory, else the one this
    package is installed from (an editable install); ``None`` when neither
    has a ``weights/`` folder.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    for root in (repo_root(), repo_root(Path(__file__).parent)):
        if root is not None and (root / "weights").is_dir():
            return root / "weights"
    return None


@contextmanager
def staged_folder(final: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a folder's files into a temporary folder beside ``final``; move it in at the end.

    On success the temporary folder replaces ``final`` (an existing one only
    with ``overwrite``); on an error it is deleted, so no partial output is
    ever left under ``final``. Also used by :mod:`dmtnn.predict` for its outputs.

    Raises
    ------
    FileExistsError
        If ``final`` exists, is not empty, and ``overwrite`` is false.
    """
    final = Path(final)
    if final.exists() and not overwrite and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"{final} exists: choose another output folder or pass "
                              f"--overwrite")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    try:
        yield tmp
        mask = os.umask(0)
        os.umask(mask)
        tmp.chmod(0o777 & ~mask)  # mkdtemp makes it 0700
        if final.exists():
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# -- the format --------------------------------------------------------------------


def _sums_text(folder: Path) -> str:
    return "".join(f"{sha256sum(folder / name)}  {name}\n" for name in FILES)


def verify(folder: str | os.PathLike) -> dict[str, str]:
    """Check a weights folder's files against its ``SHA256SUMS``; return name -> SHA-256.

    Raises
    ------
    WeightsError
        Naming the folder and what is missing or damaged.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"no weights folder {folder}: pass the folder written by `dmtnn "
                           f"weights export` (or set ${ENV_VAR} to the folder holding it)")
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise WeightsError(f"{folder} has no SHA256SUMS: not a dmtnn weights folder (those "
                           f"are written by `dmtnn weights export` or "
                           f"dmtnn.weights.save_network)")
    recorded = {}
    for line in sums.read_text(errors="replace").splitlines():
        digest, _, name = line.strip().partition("  ")
        if name:
            recorded[name.lstrip("*")] = digest
    found = {}
    for name in FILES:
        if name not in recorded:
            raise WeightsError(f"{sums} lists no checksum for {name}: not a dmtnn weights "
                               f"folder, or a damaged one")
        if not (folder / name).is_file():
            raise WeightsError(f"{folder} lacks {name}: copy the whole folder")
        found[name] = sha256sum(folder / name)
        if found[name] != recorded[name]:
            raise WeightsError(f"{folder / name} is damaged or was changed: its SHA-256 is "
                               f"{found[name][:12]}..., SHA256SUMS records "
                               f"{recorded[name][:12]}...; copy or export it again")
    return found


def _read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WeightsError(f"{folder / 'config.json'} is not valid JSON ({err})") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise WeightsError(f"{folder / 'config.json'} is not a {FORMAT} file (format "
                           f"{config.get('format') if isinstance(config, dict) else None!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise WeightsError(f"{folder} has format version {config['format_version']}, newer "
                           f"than this dmtnn ({__version__}) reads ({FORMAT_VERSION}): "
                           f"upgrade dmtnn")
    return config


def save_network(
    folder: str | os.PathLike,
    model: nn.Module,
    *,
    network: str,
    kwargs: Mapping[str, Any],
    scales: Mapping[str, Sequence[float]],
    data: Mapping[str, Any],
    segmenter: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    fem: Mapping[str, Any] | None = None,
    half: bool = False,
    int8: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a weights folder for ``model``: ``model.pt``, ``config.json``, ``SHA256SUMS``.

    Parameters
    ----------
    folder : path
        The weights folder (created; written in a temporary folder and moved
        into place, so a failure leaves nothing).
    model : nn.Module
        Built by ``models.build(network, **kwargs)`` (DMTNN: with a segmenter
        built from ``segmenter``).
    network : str
        Its registry name.
    kwargs : mapping
        The builder's keyword arguments (JSON values; without ``segmenter``).
    scales : mapping
        ``"input"`` and standardised targets: (mean, std) of training.
    data : mapping
        At least ``pixel_um`` and ``image_size`` of the training images.
    segmenter : mapping, optional
        DMTNN: ``{"network": "linknet", "kwargs": {...}}`` of its segmenter,
        whose weights are part of ``model``'s state.
    training, fem : mapping, optional
        Provenance and the FEM constants of the labels, recorded as given.
    half : bool
        Store floating-point tensors as float16 (half the size; loaded back
        into float32, the weights differ from the trained ones by float16
        rounding, about 5e-4 relative). ``config.json`` records it.
    int8 : bool
        As ``half``, with the large matrices (2-D, at least
        :data:`INT8_MIN_VALUES` values: DMTNN's fully connected layers, most of
        its size) stored as int8 with one float32 scale per output row (an
        error of at most half a step, 1/254 of the row's largest weight).
    overwrite : bool
        Replace an existing folder.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ValueError
        If ``network``, ``kwargs`` and ``segmenter`` do not rebuild ``model``
        (state names and shapes), so the folder could not be read back.
    """
    spec = models.network(network)
    if spec.segmenter and segmenter is None:
        raise ValueError(f"{network} sits on a segmenter: pass segmenter={{'network': "
                         f"'linknet', 'kwargs': {{...}}}}")
    for key in ("pixel_um", "image_size"):
        if key not in data:
            raise ValueError(f"data must give the training images' {key}")
    tasks = list(kwargs.get("tasks", [t.name for t in REGRESSION]))
    outputs = (["mask"] if spec.kind == "segmentation" or spec.segmenter else [])
    outputs += tasks if spec.kind == "regression" else []
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dmtnn_version": __version__,
        "network": network,
        "kind": spec.kind,
        "kwargs": dict(kwargs),
        "segmenter": dict(segmenter) if segmenter else None,
        "outputs": outputs,
        "units": {k: _UNITS[k] for k in outputs},
        "data": dict(data),
        "scales": {k: [float(v) for v in s] for k, s in scales.items()},
        "fem": dict(fem) if fem else None,
        "training": dict(training or {}),
        "stored_dtype": INT8_DTYPE if int8 else "float16" if half else "float32",
    }
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if half or int8:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    if int8:
        state = _int8_rows(state)
    try:  # what config.json records must rebuild this very network
        _build(network, config["kwargs"], config["segmenter"]).load_state_dict(
            _dequantized(state))
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"kwargs {dict(kwargs)} (segmenter {segmenter}) do not rebuild the "
                         f"given {network} model: {str(err)[:300]}") from err
    text = json.dumps(config, indent=1, default=str)
    with staged_folder(folder, overwrite=overwrite) as tmp:
        atomic_write(tmp / "model.pt", lambda p: torch.save(state, p))
        atomic_write(tmp / "config.json", lambda p: p.write_text(text))
        sums = _sums_text(tmp)
        atomic_write(tmp / "SHA256SUMS", lambda p: p.write_text(sums))
    return Path(folder)


#: ``save_network(int8=True)``: matrices of at least this many values are stored as int8.
INT8_MIN_VALUES = 2**16
#: ``config.json``'s ``stored_dtype`` of such a folder.
INT8_DTYPE = "float16, int8 matrices"
_SCALE = ".int8_row_scale"  # suffix of a quantised matrix's per-row scales in model.pt


def _int8_rows(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its large float matrices as int8 rows and their float32 scales."""
    out = {}
    for k, v in state.items():
        if v.is_floating_point() and v.dim() == 2 and v.numel() >= INT8_MIN_VALUES:
            scale = v.float().abs().amax(dim=1).clamp_min(1e-12) / 127
            out[k] = torch.round(v.float() / scale[:, None]).to(torch.int8)
            out[k + _SCALE] = scale
        else:
            out[k] = v
    return out


def _dequantized(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`_int8_rows` (a state without int8 matrices is returned as is)."""
    out = {k: v for k, v in state.items() if not k.endswith(_SCALE)}
    for k, scale in state.items():
        if k.endswith(_SCALE):
            name = k[: -len(_SCALE)]
            out[name] = out[name].float() * scale[:, None]
    return out


def _build(network: str, kwargs: Mapping[str, Any], segmenter: Mapping | None) -> nn.Module:
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    if segmenter:
        seg_kw = dict(segmenter.get("kwargs", {}))
        kw["segmenter"] = models.build(segmenter["network"], kind="segmentation", **seg_kw)
    return models.build(network, **kw)


def load_network(path: str | os.PathLike) -> LoadedNetwork:
    """A network from a weights folder (or its ``config.json``), checked, on the CPU.

    Needs no dataset, no ``artifacts/`` and no configuration profile.

    Raises
    ------
    WeightsError
        If the folder is missing, a checksum does not match, ``config.json`` is
        not of this format, or ``model.pt`` is not a state of the network it names.
    """
    folder = Path(path)
    if folder.name == "config.json":
        folder = folder.parent
    sums = verify(folder)
    config = _read_config(folder)
    try:
        model = _build(config["network"], config.get("kwargs", {}), config.get("segmenter"))
    except (KeyError, TypeError, ValueError) as err:
        raise WeightsError(f"{folder / 'config.json'} does not describe a network this dmtnn "
                           f"can build ({type(err).__name__}: {err})") from err
    try:
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise WeightsError(f"{folder / 'model.pt'} is not a PyTorch state_dict "
                           f"({type(err).__name__}: {err})") from err
    if not isinstance(state, Mapping):
        raise WeightsError(f"{folder / 'model.pt'} holds a {type(state).__name__}, not a "
                           f"state_dict")
    try:
        model.load_state_dict(_dequantized(state))
    except (RuntimeError, KeyError) as err:
        first = str(err).splitlines()[:3]
        raise WeightsError(f"{folder / 'model.pt'} does not fit the {config['network']} of "
                           f"config.json: {' '.join(first)}") from err
    spec = models.network(config["network"])
    data = config["data"]
    return LoadedNetwork(
        model=model.eval(), name=config["network"], kind=spec.kind,
        outputs=tuple(config["outputs"]),
        scales={k: (float(v[0]), float(v[1])) for k, v in config["scales"].items()},
        image_size=int(data["image_size"]), pixel_um=float(data["pixel_um"]),
        native_pixel_um=data.get("native_pixel_um"), multiple=spec.multiple,
        config=config, folder=folder, sha256=sums["model.pt"],
    )


def list_weights(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per weights folder under ``root`` (default :func:`weights_root`).

    Each row: ``name``, ``status`` (``"ok"`` or the error), ``network``,
    ``image_size``, ``pixel_um``, ``profile``, ``commit`` and ``MB`` (size of
    the folder). Checksums are verified; the networks are not built.
    """
    root = Path(root) if root is not None else weights_root()
    if root is None or not root.is_dir():
        return []
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        row: dict[str, Any] = {"name": folder.name,
                               "MB": sum(f.stat().st_size for f in folder.iterdir()) / 1e6}
        try:
            verify(folder)
            config = _read_config(folder)
            row.update(status="ok", network=config["network"],
                       image_size=config["data"]["image_size"],
                       pixel_um=config["data"]["pixel_um"],
                       profile=config["training"].get("profile"),
                       commit=config["training"].get("commit"))
        except WeightsError as err:
            row["status"] = str(err)
        rows.append(row)
    return rows


def weights_markdown(rows: list[dict[str, Any]]) -> str:
    """Rows of :func:`list_weights` as a Markdown table: which run each shipped network is from.

    >>> print(weights_markdown([]), end="")
    No weights folders are shipped with this checkout.
    """
    if not rows:
        return "No weights folders are shipped with this checkout.\n"
    lines = ["| folder | network | trained on | run (profile, commit) | size (MB) |",
             "|---|---|---|---|---:|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| `{r['name']}` | refused: {r['status']} | | | {r['MB']:.1f} |")
            continue
        lines.append(f"| `{r['name']}` | {r['network']} | {r['image_size']} px at "
                     f"{r['pixel_um']:.2f} µm | `{r['profile']}`, `{r['commit']}` | "
                     f"{r['MB']:.1f} |")
    return "\n".join(lines) + "\n"


# -- export from a profile's runs ---------------------------------------------------


def _training(cfg: Config, tc, folder: Path, state: dict, commit: str) -> dict[str, Any]:
    """Provenance of a run: profile, commit, run folder, best epoch and its validation scores."""
    epoch = int(state.get("epoch", 0))
    scores = {}
    try:
        history = read_history(folder)
        best = history[history["epoch"] == epoch]
        if len(best):
            scores = {c: float(best[c].iloc[0]) for c in history.columns
                      if c.startswith("val ") and not c.endswith(" loss")}
    except FileNotFoundError:
        pass
    return {"profile": cfg.profile, "commit": commit, "run": f"{cfg.profile}/models/"
            f"{folder.name}", "best_epoch": epoch, "validation": scores, "train": asdict(tc)}


def _data(cfg: Config) -> dict[str, Any]:
    d = cfg.data
    return {"pixel_um": d.pixel_um, "image_size": d.image_size,
            "native_pixel_um": d.native_pixel_um, "source": d.source,
            "train_rocks": list(d.train_rocks)}


def export_weights(cfg: Config, out: str | os.PathLike, *,
                   networks: Sequence[str] = EXPORTABLE, strategy: str | None = None,
                   half: bool = False, int8: bool = False, overwrite: bool = False,
                   commit: str | None = None) -> list[Path]:
    """Weights folders ``out/<network>/`` from a profile's trained runs.

    ``linknet`` is notebook 04's segmenter (``models/segmenter-linknet``);
    ``dmtnn`` is notebook 05's DMTNN with weighting ``strategy`` (default
    ``cfg.loss.strategy``; ``models/dmtnn-<strategy>-seed0``), its segmenter
    inside; ``cnn`` is notebook 05's CNN of the same strategy and seed (no
    mask: porosity and moduli from the gray image). Each checkpoint is checked against ``cfg`` (same architecture and
    training settings) before anything is written. ``half`` stores float16,
    ``int8`` the large matrices as int8 as well (:func:`save_network`). ``commit`` is the commit that trained the runs,
    recorded in each ``config.json`` (default: this checkout's, right when
    the runs were made here; give the run stamp's when exporting another
    checkout's artifacts).

    Raises
    ------
    FileNotFoundError
        If a run is missing (the message says which notebook trains it).
    dmtnn.checkpoints.CheckpointMismatch
        If a run was trained under other settings than ``cfg``.
    """
    unknown = set(networks) - set(EXPORTABLE)
    if unknown:
        raise ValueError(f"cannot export {sorted(unknown)}; choose among {EXPORTABLE}")
    out = Path(out)
    for name in networks:  # refuse before reading anything: nothing is written then
        if (out / name).exists() and not overwrite:
            raise FileExistsError(f"{out / name} exists: pass --overwrite to replace it")
    commit = commit or pipeline._commit(repo_root() or Path.cwd())
    seg, _ = load_segmenter(cfg, "linknet")  # raises FileNotFoundError naming notebook 04
    seg_spec = {"network": "linknet", "kwargs": segmenter_kwargs(cfg)}
    todo = {}  # every checkpoint is read and checked before any folder is written
    if "linknet" in networks:
        folder = run_folder(cfg, "segmenter-linknet")
        state = read(folder / "best.pt")
        todo["linknet"] = dict(
            model=seg, network="linknet", kwargs=seg_spec["kwargs"], scales=state["scales"],
            training=_training(cfg, cfg.segmenter, folder, state, commit))
    strategy = strategy or cfg.loss.strategy
    if "dmtnn" in networks:
        # the run name of dmtnn.multitask.train_network for seed 0, depth 2, all tasks
        folder = run_folder(cfg, f"dmtnn-{strategy.replace(':', '-')}-seed0")
        if not (folder / "best.pt").exists():
            raise FileNotFoundError(f"no trained DMTNN at {folder / 'best.pt'}: run notebook "
                                    f"05_dmtnn for profile {cfg.profile!r}")
        net = build_network(cfg, "dmtnn", segmenter=seg)
        state = load_checkpoint(folder / "best.pt", net, expect={"train": asdict(cfg.multitask)})
        mt = cfg.multitask
        kwargs = {"image_size": cfg.data.image_size, "depth": 2,
                  "tasks": [t.name for t in REGRESSION],
                  **models.network("dmtnn").width_kwargs(mt.width, mt.head_width)}
        todo["dmtnn"] = dict(
            model=net, network="dmtnn", kwargs=kwargs, scales=state["scales"],
            segmenter=seg_spec, training=_training(cfg, cfg.multitask, folder, state, commit),
            fem={"K": cfg.fem.K, "G": cfg.fem.G, "plane": cfg.fem.plane})
    if "cnn" in networks:
        folder = run_folder(cfg, f"cnn-{strategy.replace(':', '-')}-seed0")
        if not (folder / "best.pt").exists():
            raise FileNotFoundError(f"no trained CNN at {folder / 'best.pt'}: run notebook "
                                    f"05_dmtnn for profile {cfg.profile!r}")
        net = build_network(cfg, "cnn")
        state = load_checkpoint(folder / "best.pt", net, expect={"train": asdict(cfg.multitask)})
        mt = cfg.multitask
        kwargs = {"image_size": cfg.data.image_size,
                  **models.network("cnn").width_kwargs(mt.width, mt.head_width)}
        todo["cnn"] = dict(
            model=net, network="cnn", kwargs=kwargs, scales=state["scales"],
            training=_training(cfg, cfg.multitask, folder, state, commit),
            fem={"K": cfg.fem.K, "G": cfg.fem.G, "plane": cfg.fem.plane})
    return [save_network(out / name, item.pop("model"), data=_data(cfg), half=half,
                         int8=int8, overwrite=overwrite, **item) for name, item in todo.items()]
