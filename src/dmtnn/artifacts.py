"""Artifacts: atomic files under ``artifacts/<profile>/`` with a manifest.

Every result a notebook hands to a later one goes through :class:`Store`. Each
entry of ``manifest.json`` records the key of the configuration that made the
file (so a changed config never reuses a stale file), the config itself, the
package version and a SHA-256 checksum (so a damaged file is caught, named
and never silently used). Files are written to a temporary name in the same
folder and renamed into place, so a kill never leaves a partial file under
the real name. A run's store is ``artifacts/<profile>/`` (:func:`store_for`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dmtnn import __version__

if TYPE_CHECKING:  # for the annotation only: artifacts stays below config (and torch)
    from dmtnn.config import Config

__all__ = [
    "CorruptArtifactError",
    "Store",
    "atomic_write",
    "artifacts_root",
    "repo_root",
    "sha256sum",
    "store_for",
]

log = logging.getLogger(__name__)


class CorruptArtifactError(RuntimeError):
    """An artifact file does not match its manifest entry, or cannot be read."""


def repo_root(start: Path | None = None) -> Path | None:
    """The project checkout containing ``start`` (default: cwd), if any."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "src" / "dmtnn").is_dir():
            return folder
    return None


def artifacts_root() -> Path:
    """Where artifacts live: ``$DMTNN_ARTIFACTS``, else ``<repo>/artifacts``, else ``./artifacts``."""
    env = os.environ.get("DMTNN_ARTIFACTS")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    return (root if root is not None else Path.cwd()) / "artifacts"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The rename is atomic on POSIX file systems: readers see the old file or
    the complete new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes the file 0600; give it the usual mode
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Store:
    """A folder of artifacts with a manifest, e.g. ``artifacts/quick``.

    Parameters
    ----------
    folder : path
        The profile's artifact folder; created on first write.

    Notes
    -----
    Arrays are stored as ``.npz`` files (NumPy's documented zip format), JSON
    results as ``.json``. One process writes a store at a time; the
    pipeline runs notebooks one after another.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.manifest_path = self.folder / "manifest.json"

    # -- manifest -----------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {}
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise CorruptArtifactError(
                f"{self.manifest_path} is not valid JSON ({err}); delete it and the files "
                f"beside it to rebuild them"
            ) from err

    def _record(self, name: str, entry: dict[str, Any]) -> None:
        manifest = self.manifest()
        manifest[name] = entry
        text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
        atomic_write(self.manifest_path, lambda p: p.write_text(text))

    def path(self, name: str) -> Path:
        return self.folder / name

    # -- queries ------------------------------------------------------------
    def status(self, name: str, key: str) -> str:
        """``"missing"``, ``"stale"`` (made under another config) or ``"ok"``."""
        entry = self.manifest().get(name)
        if entry is None or not self.path(name).exists():
            return "missing"
        return "ok" if entry["key"] == key else "stale"

    def _verify(self, name: str) -> dict[str, Any]:
        entry = self.manifest()[name]
        found = sha256sum(self.path(name))
        if found != entry["sha256"]:
            raise CorruptArtifactError(
                f"{self.path(name)} is damaged: its SHA-256 is {found[:12]}..., the manifest "
                f"{self.manifest_path} recorded {entry['sha256'][:12]}...; delete the file to "
                f"rebuild it"
            )
        return entry

    def delete(self, name: str) -> None:
        """Remove an artifact and its manifest entry (no error if absent)."""
        manifest = self.manifest()
        if manifest.pop(name, None) is not None:
            text = json.dumps(manifest, indent=1, sort_keys=True, default=str)
            atomic_write(self.manifest_path, lambda p: p.write_text(text))
        self.path(name).unlink(missing_ok=True)

    # -- arrays -------------------------------------------------------------
    def save_arrays(
        self,
        name: str,
        arrays: Mapping[str, np.ndarray],
        *,
        key: str,
        config: Any = None,
        compress: bool = True,
    ) -> Path:
        """Write ``arrays`` to ``name`` (an ``.npz`` path relative to the store)."""
        saver = np.savez_compressed if compress else np.savez

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                saver(f, **arrays)

        path = atomic_write(self.path(name), write)
        self._record(name, self._entry(path, key, config))
        return path

    def load_arrays(self, name: str, *, key: str | None = None) -> dict[str, np.ndarray]:
        """Read an ``.npz`` artifact, checking its checksum (and key, if given)."""
        if key is not None and self.status(name, key) != "ok":
            raise KeyError(f"{self.path(name)} is {self.status(name, key)} for key {key}")
        self._verify(name)
        try:
            with np.load(self.path(name), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise CorruptArtifactError(f"{self.path(name)} cannot be read: {err}") from err

    # -- JSON ---------------------------------------------------------------
    def save_json(self, name: str, obj: Any, *, key: str, config: Any = None) -> Path:
        text = json.dumps(obj, indent=1, sort_keys=True, default=_jsonable)
        path = atomic_write(self.path(name), lambda p: p.write_text(text))
        self._record(name, self._entry(path, key, config))
        return path

    def load_json(self, name: str, *, key: str | None = None) -> Any:
        if key is not None and self.status(name, key) != "ok":
            raise KeyError(f"{self.path(name)} is {self.status(name, key)} for key {key}")
        self._verify(name)
        return json.loads(self.path(name).read_text())

    def _entry(self, path: Path, key: str, config: Any) -> dict[str, Any]:
        return {
            "key": key,
            "sha256": sha256sum(path),
            "bytes": path.stat().st_size,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "version": __version__,
            "config": config,
        }


def store_for(cfg: Config) -> Store:
    """The artifact store of a run: ``artifacts/<profile>``."""
    return Store(artifacts_root() / cfg.profile)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
