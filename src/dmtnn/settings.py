"""Package-wide settings: the ``DMTNN_*`` environment variables, the device and precision rules.

Everything a run computes is set by :class:`dmtnn.config.Config`. The
environment variables below only say *where* things are and how a run shows
itself; none of them changes a number. They are listed here, once:

=====================  ==============================================================
variable               meaning
=====================  ==============================================================
``DMTNN_ARTIFACTS``    folder of everything a run computes (default ``<repo>/artifacts``,
                       else ``./artifacts``); read by :func:`dmtnn.artifacts.artifacts_root`
``DMTNN_DATA_ROOT``    folder of the Digital Rocks Portal ``.raw`` files, when
                       ``data.data_root`` is not set (:mod:`dmtnn.data.drp`)
``DMTNN_REAL_DATA``    folder of the small real Berea volumes (default
                       ``../shared/data/real`` beside the checkout; :mod:`dmtnn.data.real`)
``DMTNN_PROGRESS``     ``0`` / ``false`` / ``no`` / ``off`` hides tqdm progress bars
                       (the pipeline sets it for executed notebooks)
``DMTNN_COMMIT``       commit stamped into executed notebooks when the checkout has no
                       ``.git`` (a copied tree; :mod:`dmtnn.pipeline`)
``DMTNN_WEIGHTS``      folder holding the weights folders ``dmtnn predict`` uses (default
                       ``<repo>/weights``; :func:`dmtnn.weights.weights_root`)
=====================  ==============================================================
"""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["ENVIRONMENT", "PRECISIONS", "show_progress", "resolve_device", "fast_precision",
           "resolve_precision"]

#: Every environment variable the package reads, with its meaning (see the table above).
ENVIRONMENT = {
    "DMTNN_ARTIFACTS": "folder of everything a run computes (default <repo>/artifacts)",
    "DMTNN_DATA_ROOT": "folder of the Digital Rocks Portal .raw files",
    "DMTNN_REAL_DATA": "folder of the small real Berea volumes (default ../shared/data/real)",
    "DMTNN_PROGRESS": "0/false/no/off hides progress bars",
    "DMTNN_COMMIT": "commit stamped into executed notebooks of a checkout without .git",
    "DMTNN_WEIGHTS": "folder of the weights folders `dmtnn predict` uses (default <repo>/weights)",
}

#: The values of ``TrainConfig.precision`` (:func:`resolve_precision`).
PRECISIONS = ("auto", "bf16", "float32")


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw a progress bar: ``progress`` if given, else ``$DMTNN_PROGRESS``."""
    if progress is not None:
        return progress
    return os.environ.get("DMTNN_PROGRESS", "1") not in ("0", "false", "no", "off")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The one device rule of the package.

    ``"auto"`` or ``None``: the first CUDA device if there is one, else the CPU.
    Anything else is passed to :class:`torch.device`; a CUDA device on a machine
    without CUDA is refused.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} requested but CUDA is not available on this machine: "
            "use device='cpu' or 'auto'"
        )
    return dev


def fast_precision(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype that speeds networks up on ``device``: ``torch.bfloat16`` or None.

    bf16 on a CUDA device with native bf16 arithmetic (Ampere and later), and
    on a CPU whose instructions multiply bf16 (AVX-512 BF16 or AMX) when
    PyTorch has oneDNN; None (stay in float32) elsewhere: a CPU without
    them emulates bf16, slower than float32. Detected once per device type.

    >>> fast_precision("meta") is None
    True
    """
    return _fast_precision(torch.device(device).type)


@functools.cache
def _fast_precision(kind: str) -> torch.dtype | None:
    if kind == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported(
            including_emulation=False)
        return torch.bfloat16 if native else None
    if kind == "cpu" and torch.backends.mkldnn.is_available():
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private in torch.cpu
        if any(getattr(torch.cpu, name, lambda: False)() for name in probes):
            return torch.bfloat16
    return None


def resolve_precision(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of a training or inference run, None for float32.

    Parameters
    ----------
    precision : {"auto", "bf16", "float32"}
        ``TrainConfig.precision``: ``"auto"`` is :func:`fast_precision` of
        ``device``; ``"bf16"`` forces bf16 autocast (slow where the device
        lacks bf16 arithmetic); ``"float32"`` turns autocast off.
    device : str or torch.device
        Where the network runs.

    >>> resolve_precision("float32", "cpu") is None
    True
    >>> resolve_precision("bf16", "cpu")
    torch.bfloat16
    """
    if precision == "auto":
        return fast_precision(device)
    if precision == "bf16":
        return torch.bfloat16
    if precision == "float32":
        return None
    raise ValueError(f"precision (segmenter.precision or multitask.precision) must be one of "
                     f"{', '.join(PRECISIONS)}, got {precision!r}")
