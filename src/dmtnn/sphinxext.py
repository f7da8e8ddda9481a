"""The book's Sphinx extension: math that renders offline, and each page script once.

``_config.yml`` lists it under ``sphinx: extra_extensions``. It

- copies MathJax 3 into the built book's ``_static/mathjax/`` (the ``mathjax``
  files of the PyPI package ``django-static-mathjax``, MathJax 3.2.2 with no
  Django code, in the ``book`` extra), so that ``mathjax_path:
  mathjax/tex-mml-chtml.js`` loads it from the book itself and the formulas
  render without a network. The build fails, naming the package, when it is
  missing;
- drops the page scripts registered twice: in a Jupyter Book 1.0.4 build every
  page carried sphinx-thebe's inline ``const THEBE_JS_URL = ...`` twice, and
  the second copy is a ``SyntaxError`` in the browser's console.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

__all__ = ["MATHJAX_ENTRY", "MATHJAX_PARTS", "mathjax_source", "copy_mathjax", "setup"]

#: The MathJax component the book loads (``mathjax_path``, under ``_static/mathjax/``):
#: TeX and MathML input, HTML-CSS output, as Sphinx's default CDN address.
MATHJAX_ENTRY = "tex-mml-chtml.js"
#: What that component loads on demand: its fonts (output/), TeX extensions (input/),
#: the context menu (ui/) and the accessibility tools (a11y/, sre/).
MATHJAX_PARTS = ("input", "output", "ui", "a11y", "sre", "adaptors")


def mathjax_source() -> Path:
    """The folder of MathJax 3's browser files (``es5/``) installed with ``django-static-mathjax``.

    Raises
    ------
    ExtensionError
        When the package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec("mathjax")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        es5 = Path(root) / "static" / "mathjax" / "es5"
        if (es5 / MATHJAX_ENTRY).is_file():
            return es5
    raise ExtensionError(
        "dmtnn.sphinxext: MathJax 3 not found (package django-static-mathjax); install the "
        "book's dependencies with `pip install -e '.[book]'` (or `make venv`) and rebuild")


def copy_mathjax(target: str | Path, source: str | Path | None = None) -> Path:
    """Copy MathJax's entry script and the parts it loads into ``target`` (created).

    Parameters
    ----------
    target : str or Path
        The folder, e.g. ``_build/html/_static/mathjax``.
    source : str or Path, optional
        MathJax's ``es5/`` folder; default :func:`mathjax_source`.

    Returns
    -------
    Path
        The entry script's path under ``target``.
    """
    source = Path(source) if source is not None else mathjax_source()
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_ENTRY, target / MATHJAX_ENTRY)
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
    return target / MATHJAX_ENTRY


def _check_mathjax(app: Sphinx) -> None:
    if app.builder.format == "html":
        mathjax_source()  # fail early, before reading anything


def _install_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir) / "_static" / "mathjax")


def _unique_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                    doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        # an inline script's filename is None or "" depending on when it was added
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx (called by Sphinx)."""
    app.connect("builder-inited", _check_mathjax)
    app.connect("build-finished", _install_mathjax)
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
