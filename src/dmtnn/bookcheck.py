"""Check a built book: ``python -m dmtnn.bookcheck _build/html``.

Jupyter Book 2.x ignores ``_config.yml``/``_toc.yml`` and can exit 0 without
writing HTML, so the build's exit code alone proves nothing. This checks that
``index.html`` and the page of every file in ``_toc.yml`` exist.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

__all__ = ["toc_files", "missing_pages", "main"]


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` entry (and the root) of a Jupyter Book table of contents."""
    found = [toc["root"]] if "root" in toc else []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return found


def missing_pages(html: Path, toc_path: Path) -> list[str]:
    """Pages of the table of contents (and ``index``) with no HTML file under ``html``."""
    toc = yaml.safe_load(toc_path.read_text())
    pages = ["index"] + [str(Path(f).with_suffix("")) for f in toc_files(toc)]
    return [p for p in pages if not (html / f"{p}.html").is_file()]


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 1 and name the pages missing from a built book (default ``_build/html``)."""
    argv = sys.argv[1:] if argv is None else argv
    html = Path(argv[0] if argv else "_build/html")
    missing = missing_pages(html, Path("_toc.yml"))
    if missing:
        print(f"book check failed: missing in {html}: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"book check: index.html and {len(list(html.rglob('*.html')))} pages present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
