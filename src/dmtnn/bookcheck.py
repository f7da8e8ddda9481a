"""Check a built book: ``python -m dmtnn.bookcheck _build/html``.

Jupyter Book 2.x ignores ``_config.yml``/``_toc.yml`` and can exit 0 without
writing HTML, so the build's exit code alone proves nothing. This checks that
``index.html`` and the page of every file in ``_toc.yml`` exist, and that no page
loads a script or stylesheet from another host, or one missing from the build
(the book must work offline: MathJax is served from ``_static/mathjax/``). The
browser check (:mod:`dmtnn.browsercheck`) then opens the pages.

The hand-written pages (``book/**/*.md``) must not state a number that no code
or run gives: :func:`stated_numbers` finds the decimals, grouped thousands and
powers of ten in a page's prose (code, math, directives and glued values
aside), and :func:`unsourced` names those that none of the sources of
:func:`sourced_numbers` gives (the paper's numbers, the
configuration, the rocks, the models' parameter counts, the CT and FEM
constants) at the precision stated. Results belong in glue, settings in the
generated tables.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import yaml

from dmtnn import augmentation, comparison, config, images, models, rocks, weighting
from dmtnn.data import scanners, synthetic

__all__ = ["toc_files", "missing_pages", "asset_problems", "stated_numbers", "unsourced",
           "sourced_numbers", "main"]

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


# fenced code and directive blocks, inline code, roles with their content (glue, cite,
# ref...), display and inline math, link targets and HTML comments: not prose
_NOT_PROSE = re.compile(
    r"(?ms)^(```|~~~|:::).*?^\1[ \t]*$"
    r"|\{[\w:-]+\}`[^`]*`|`[^`]*`"
    r"|\$\$.*?\$\$|\$[^$\n]+\$"
    r"|\]\([^)]*\)|<!--.*?-->"
)
# a decimal (1.15e7, 0.97, 3e-3) or a number with thousands separators (11,526,945); not
# a section number (4.2.4) or a part of a word or a version
_STATED = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+\.\d+(?:e[-−]?\d+)?|\d+e[-−]?\d+)"
                     r"(?![\w.,]?\d)")


def stated_numbers(markdown: str) -> list[str]:
    """The numbers a Markdown page states in its prose, as written.

    Decimals, powers of ten and grouped thousands count; plain integers (layer
    sizes, kernel sizes, years) and whatever lies in code, math, MyST roles
    (glued values among them), directives, link targets or comments do not.

    >>> stated_numbers("R² of 0.54 (`0.7`), $0.5$, {glue:md}`x`, Sec. 4.2.4, 11,526,945 and 3e-3.")
    ['0.54', '11,526,945', '3e-3']
    """
    return _STATED.findall(_NOT_PROSE.sub(" ", markdown))


def _value(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-"))


def _decimals(text: str) -> int | None:
    """Decimals a number is stated to (None for powers of ten: compared relatively)."""
    if "e" in text:
        return None
    return len(text.split(".")[1]) if "." in text else 0


def unsourced(stated: list[str], sources: set[float]) -> list[str]:
    """The numbers of ``stated`` that no value of ``sources`` gives at their precision.

    A decimal matches a source that rounds to it (``0.97`` is 0.9700 or 0.9749,
    or 97 %: a fraction is also compared in per cent); a power of ten matches
    within 5 % (``1.15e7``); grouped thousands match exactly.

    >>> unsourced(["0.97", "18.10", "1.15e7", "0.54"], {0.97, 0.181, 11526945.0})
    ['0.54']
    """
    out = []
    for text in stated:
        x, d = _value(text), _decimals(text)
        candidates = sources | {100 * v for v in sources}
        if d is None:
            ok = any(abs(v - x) <= 0.05 * abs(x) for v in candidates)
        else:
            ok = any(abs(v - x) <= 0.5 * 10.0**-d + 1e-12 for v in candidates)
        if not ok:
            out.append(text)
    return out


def _numbers(obj) -> set[float]:
    """Every number inside ``obj``: dataclasses, mappings, sequences, and numbers in strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _numbers(dataclasses.asdict(obj))
    if isinstance(obj, bool):
        return set()
    if isinstance(obj, (int, float)):
        return {float(obj)}
    if isinstance(obj, str):
        return {_value(m) for m in re.findall(r"\d+(?:\.\d+)?(?:e[-−]?\d+)?", obj)}
    if isinstance(obj, dict):
        return set().union(*map(_numbers, obj.values()), set())
    if isinstance(obj, (list, tuple, set)):
        return set().union(*map(_numbers, obj), set())
    return set()


def sourced_numbers() -> set[float]:
    """The numbers a hand-written page may state, each given by the code.

    The paper's numbers and claims (:mod:`dmtnn.comparison`, the one place that
    holds them), every setting of every profile (:mod:`dmtnn.config`), the
    rocks' facts and synthetic textures, the CT models of the scanners, the
    intensity augmentation's ranges, the quartz moduli (and the plane-strain bulk
    modulus of a pore-free slice), the percentiles of the input rescaling, the dynamic weight of
    the default settings at KPIs 0.1 to 0.9 (the weights page's worked example),
    and the parameter counts at width 1 and 256 px of every network of the
    registry (DMTNN's total, trainable and frozen).
    """
    found = _numbers([getattr(comparison, n) for n in dir(comparison) if n.startswith("PAPER_")])
    found |= _numbers(comparison.CLAIMS)
    for name in config.PROFILES:
        cfg = config.load_profile(name)
        found |= _numbers(cfg) | {cfg.data.pixel_um, cfg.data.native_size,
                                  cfg.data.image_size * cfg.data.pixel_um / 1000}
    # the quartz moduli, and the 2D plane-strain bulk modulus of a pore-free slice
    found |= _numbers(list(rocks.ROCKS.values())) | {rocks.QUARTZ_K, rocks.QUARTZ_G,
                                                     rocks.QUARTZ_K + rocks.QUARTZ_G / 3}
    found |= _numbers(images.RESCALE_PERCENTILES)
    found |= _numbers(synthetic.TEXTURES) | _numbers(scanners.SCANNERS)
    found |= _numbers(augmentation.INTENSITY_RANGES)
    found |= {float(weighting.dynamic_weight(k / 10)) for k in range(1, 10)}
    seg = models.build("linknet")
    for name in models.names():
        spec = models.network(name)
        kw = {"segmenter": seg} if spec.segmenter else {}
        net = models.build(name, **kw)
        found |= {float(models.count_parameters(net)),
                  float(sum(p.numel() for p in net.parameters() if p.requires_grad))}
    return found


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
