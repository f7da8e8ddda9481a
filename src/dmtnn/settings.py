"""Package-wide switches.

``progress``: show tqdm progress bars in long steps. Default on; off when the
environment variable ``DMTNN_PROGRESS=0`` is set (the pipeline sets it, so
executed notebooks carry no progress-bar debris).
"""

from __future__ import annotations

import os

__all__ = ["show_progress"]


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw a progress bar: ``progress`` if given, else the environment's choice."""
    if progress is not None:
        return progress
    return os.environ.get("DMTNN_PROGRESS", "1") not in ("0", "false", "no", "off")
