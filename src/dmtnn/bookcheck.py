"""Check a built book: ``python -m dmtnn.bookcheck _build/html``.

Jupyter Book 2.x ignores ``_config.yml``/``_toc.yml`` and can exit 0 without
writing HTML, so the build's exit code alone proves nothing. This checks that
``index.html`` and the page of every file in ``_toc.yml`` exist, and that no page
loads a script or stylesheet from another host, or one missing from the build
(the book must work offline: MathJax is served from ``_static/mathjax/``). The
browser check (:mod:`dmtnn.browsercheck`) then opens the pages.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

__all__ = ["toc_files", "missing_pages", "asset_problems", "main"]

# <script src="..."> and <link rel="stylesheet" href="...">, in either attribute order
_ASSET = re.compile(r'<script\b[^>]*\bsrc="([^"]+)"|<link\b(?=[^>]*\brel="stylesheet")[^>]*'
                    r'\bhref="([^"]+)"')


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


def asset_problems(html: Path) -> list[str]:
    """``page: url`` for each script or stylesheet that a page loads from another host
    or that is missing from the build (query strings ignored), sorted."""
    found = set()
    for page in html.rglob("*.html"):
        if any(part.startswith("_") for part in page.relative_to(html).parts[:-1]):
            continue
        for m in _ASSET.finditer(page.read_text(encoding="utf-8", errors="replace")):
            url = m.group(1) or m.group(2)
            name = page.relative_to(html).as_posix()
            if re.match(r"^(https?:)?//", url):
                found.add(f"{name}: {url} (another host: fails offline)")
            elif not url.startswith("data:") and not (page.parent / url.split("?")[0]).is_file():
                found.add(f"{name}: {url} (missing)")
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    """Command line: exit 1 and name the pages missing from a built book (default ``_build/html``)."""
    argv = sys.argv[1:] if argv is None else argv
    html = Path(argv[0] if argv else "_build/html")
    missing = missing_pages(html, Path("_toc.yml"))
    if missing:
        print(f"book check failed: missing in {html}: {', '.join(missing)}", file=sys.stderr)
        return 1
    assets = asset_problems(html)
    if assets:
        print("book check failed: scripts or stylesheets that do not load offline:\n  "
              + "\n  ".join(assets), file=sys.stderr)
        return 1
    print(f"book check: index.html and {len(list(html.rglob('*.html')))} pages present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
