"""Package-wide settings: the ``DMTNN_*`` environment variables and the device rule.

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
=====================  ==============================================================
"""

from __future__ import annotations

import os

import torch

__all__ = ["ENVIRONMENT", "show_progress", "resolve_device"]

#: Every environment variable the package reads, with its meaning (see the table above).
ENVIRONMENT = {
    "DMTNN_ARTIFACTS": "folder of everything a run computes (default <repo>/artifacts)",
    "DMTNN_DATA_ROOT": "folder of the Digital Rocks Portal .raw files",
    "DMTNN_REAL_DATA": "folder of the small real Berea volumes (default ../shared/data/real)",
    "DMTNN_PROGRESS": "0/false/no/off hides progress bars",
    "DMTNN_COMMIT": "commit stamped into executed notebooks of a checkout without .git",
}


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
