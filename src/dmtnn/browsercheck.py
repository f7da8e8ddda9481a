"""Check a built book in a real browser: ``python -m dmtnn.browsercheck _build/html``.

:mod:`dmtnn.bookcheck` proves that the pages exist; this proves that a reader
sees them whole. It serves the HTML folder on 127.0.0.1 (``http.server`` in a
thread), opens every page in headless Chromium, driven through ChromeDriver by
Selenium, with every host but 127.0.0.1 unresolvable (the book must work
offline: a script or font from a CDN fails here as it would on a machine
without a network), and fails a page on

- an error in the browser console (a script error, a file that does not load);
- an image that did not load (``naturalWidth`` 0);
- TeX left as text: ``\\(``, ``\\[``, ``$$`` or a TeX command outside code, a
  math element that MathJax did not typeset, or a MathJax error box;
- a text output wider than its column (``scrollWidth > clientWidth`` of a
  cell output's ``pre``), a table cut off by a container that does not
  scroll, or a page wider than the window.

It saves a screenshot of every page (the whole page, up to
:data:`MAX_SHOT_PX` high) to a folder for the reviewer. Chromium and
ChromeDriver are Debian's ``chromium`` and ``chromium-driver``
(``/usr/bin/chromium``, ``/usr/bin/chromedriver``); Selenium is in the
``dev`` extra.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

try:  # the dev extra; check_pages says how to install it when it is missing
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # pragma: no cover
    webdriver = Service = None

__all__ = [
    "CHROMIUM_FLAGS",
    "MAX_SHOT_PX",
    "PageReport",
    "find_browser",
    "serve",
    "book_pages",
    "raw_tex",
    "check_pages",
    "main",
]

#: Flags for a quiet, reproducible headless Chromium that talks to no one.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
    # offline: every host but the local server fails to resolve
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
#: Screenshots are cut at this height (px): Chromium cannot draw taller ones.
MAX_SHOT_PX = 16000
# Folders of a Sphinx build that hold no pages.
_SKIP = ("_static", "_sources", "_images", "_downloads", ".doctrees")
_REFRESH = re.compile(r"<meta\s+http-equiv=[\"']?refresh", re.IGNORECASE)

# TeX a reader must never see: MathJax delimiters, display dollars, a TeX command
# between dollars, or a common command with its brace.
_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$"
                  r"|\\(?:frac|sqrt|mathrm|mathbf|text|begin|end|left|right)\b")

# Runs in the page: waits for MathJax and the images, then measures.
_PROBE = r"""
const done = arguments[arguments.length - 1];
const timeout = (ms) => new Promise((r) => setTimeout(r, ms));
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
const loaded = Promise.all(images.map((img) => img.complete ? null :
    new Promise((r) => { img.addEventListener("load", r); img.addEventListener("error", r); })));
const mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
Promise.race([Promise.all([loaded, mj || null]), timeout(20000)]).then(() => {
 try {
  const root = document.querySelector("main") || document.body;
  const copy = root.cloneNode(true);
  copy.querySelectorAll("pre, code, script, style, textarea, mjx-container, .MathJax, "
      + ".highlight, .cell_input, .headerlink, mjx-assistive-mml").forEach((e) => e.remove());
  const wide = [];
  document.querySelectorAll(".cell_output pre, .output pre").forEach((pre) => {
    if (pre.scrollWidth > pre.clientWidth + 1) {
      const line = pre.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
      wide.push(`${pre.scrollWidth} > ${pre.clientWidth} px: ${line.trim().slice(0, 100)}`);
    }
  });
  const clipped = [];
  document.querySelectorAll("main table").forEach((t) => {
    for (let box = t.parentElement; box && box !== document.body; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === "auto" || overflow === "scroll") break;
      if (overflow === "hidden" || overflow === "clip") {
        if (t.getBoundingClientRect().right > box.getBoundingClientRect().right + 1) {
          const head = (t.querySelector("caption, th") || t).textContent.trim().slice(0, 60);
          clipped.push(`table cut off at ${Math.round(box.getBoundingClientRect().right)} px: ${head}`);
        }
        break;
      }
    }
  });
  const math = Array.from(document.querySelectorAll("main .math, main span.math, main div.math"));
  done({
    text: copy.innerText,
    images: images.length,
    broken: images.filter((i) => i.naturalWidth === 0).map((i) => i.getAttribute("src")),
    math: math.length,
    mathjax: !!window.MathJax,
    untypeset: math.filter((m) => !m.querySelector("mjx-container")).length,
    texErrors: Array.from(document.querySelectorAll("mjx-merror"))
        .map((e) => e.getAttribute("data-mjx-error") || e.textContent).slice(0, 5),
    wide: wide,
    clipped: clipped,
    pageWidth: document.documentElement.scrollWidth,
    viewWidth: document.documentElement.clientWidth,
    height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
  });
 } catch (err) { done({error: String(err && err.stack || err)}); }
});
"""


@dataclass
class PageReport:
    """What the browser found on one page.

    Attributes
    ----------
    page : str
        The page's path under the HTML folder, e.g. ``"book/intro.html"``.
    problems : list of str
        One line per defect; empty when the page passed.
    images : int
        Images on the page.
    math : int
        Math elements (inline and display) on the page.
    screenshot : Path or None
        The saved screenshot (PNG), if any.
    """

    page: str
    problems: list[str] = field(default_factory=list)
    images: int = 0
    math: int = 0
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        """True when the page has no problem."""
        return not self.problems


def find_browser() -> tuple[str, str]:
    """The paths of a Chromium and its ChromeDriver on ``PATH``.

    Returns
    -------
    (browser, driver) : tuple of str

    Raises
    ------
    FileNotFoundError
        When either is missing, with the command that installs both.
    """
    browser = next((p for n in ("chromium", "chromium-browser", "google-chrome")
                    if (p := shutil.which(n))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise FileNotFoundError(
            "browser check: Chromium and ChromeDriver not found on PATH; install them with "
            "`apt-get install -y chromium chromium-driver` (Debian) and retry")
    return browser, driver


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) while the block runs.

    Yields
    ------
    str
        The base URL, e.g. ``"http://127.0.0.1:40123/"``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"browser check: no folder {folder}; build the book first")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _is_redirect(path: Path) -> bool:
    """A stub whose only content is a meta refresh (Jupyter Book's root ``index.html``)."""
    text = path.read_text(errors="replace")
    return len(text) < 1000 and _REFRESH.search(text) is not None


def book_pages(folder: str | Path) -> list[str]:
    """Every HTML page of a Sphinx build, as sorted paths relative to ``folder``.

    Skips the build's asset folders (``_static``, ``_sources``, ...) and redirect
    stubs (a meta refresh and nothing else): the browser leaves such a page while
    the probe measures it, and the page it points to is checked on its own.
    """
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.html")
                  if not any(part in _SKIP for part in p.relative_to(folder).parts)
                  and not _is_redirect(p))


def raw_tex(text: str) -> list[str]:
    """The TeX fragments in a page's visible text (code removed), at most five.

    Examples
    --------
    >>> raw_tex(r"porosity \\(\\phi\\) and $$x$$ but not 5 $ or a $2 bill")
    ['\\\\(', '\\\\)', '$$', '$$']
    """
    return [m.group(0) for m in _TEX.finditer(text)][:5]


def _driver(browser: str, chromedriver: str, profile: str, width: int, height: int):
    """A headless Chrome WebDriver with the console log switched on."""
    if webdriver is None:
        raise ImportError("browser check: selenium is not installed; install the dev extra "
                          "(`pip install -e '.[dev]'`, or `make venv`) and retry")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


def _check_page(driver, base: str, page: str, shots: Path | None, width: int) -> PageReport:
    report = PageReport(page)
    driver.get_log("browser")  # drop what an earlier page left
    driver.get(base + page)
    probe = driver.execute_async_script(_PROBE)
    if "error" in probe:
        raise RuntimeError(f"browser check: the page probe failed on {page}: {probe['error']}")
    report.images, report.math = probe["images"], probe["math"]
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            report.problems.append(f"console error: {entry.get('message', '')[:200]}")
    report.problems += [f"image not loaded: {src}" for src in probe["broken"]]
    tex = raw_tex(probe["text"])
    if tex:
        report.problems.append(f"raw TeX in the text: {', '.join(tex)}")
    if probe["untypeset"]:
        why = "" if probe["mathjax"] else " (MathJax did not load)"
        report.problems.append(f"{probe['untypeset']} of {probe['math']} math elements not "
                               f"typeset{why}")
    report.problems += [f"TeX error: {e}" for e in probe["texErrors"]]
    report.problems += [f"text output wider than its column, {w}" for w in probe["wide"]]
    report.problems += probe["clipped"]
    if probe["pageWidth"] > probe["viewWidth"] + 1:
        report.problems.append(f"page wider than the window: {probe['pageWidth']} > "
                               f"{probe['viewWidth']} px")
    if shots is not None:
        report.screenshot = shots / (page.replace("/", "__").removesuffix(".html") + ".png")
        report.screenshot.write_bytes(_full_page_png(driver, width, probe["height"]))
    return report


def _full_page_png(driver, width: int, height: int) -> bytes:
    """The whole page as a PNG: the window made as tall as the page, then drawn.

    (Capturing beyond the viewport instead drew some pages shifted sideways.)
    """
    h = int(min(max(height, 1), MAX_SHOT_PX))
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": h, "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame("
                                    "arguments[arguments.length - 1]))")
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return base64.b64decode(shot["data"])


def check_pages(folder: str | Path, pages: Sequence[str] | None = None, *,
                screenshots: str | Path | None = None, width: int = 1280,
                height: int = 900) -> list[PageReport]:
    """Open pages of a built book in headless Chromium and report what a reader would see.

    Parameters
    ----------
    folder : str or Path
        The HTML folder (``_build/html``).
    pages : sequence of str, optional
        Paths under ``folder``; default every page (:func:`book_pages`).
    screenshots : str or Path, optional
        A folder for one PNG per page (created); none when omitted.
    width, height : int
        The window's size in CSS px; screenshots are ``width`` wide.

    Returns
    -------
    list of PageReport
        One per page, in order.
    """
    browser, chromedriver = find_browser()
    pages = book_pages(folder) if pages is None else list(pages)
    shots = None
    if screenshots is not None:
        shots = Path(screenshots)
        shots.mkdir(parents=True, exist_ok=True)
    with serve(folder) as base, tempfile.TemporaryDirectory(prefix="dmtnn-chromium-") as profile:
        driver = _driver(browser, chromedriver, profile, width, height)
        try:
            return [_check_page(driver, base, p, shots, width) for p in pages]
        finally:
            driver.quit()


def main(argv: list[str] | None = None) -> int:
    """Command line: check every page; exit 1 when any page has a problem."""
    parser = argparse.ArgumentParser(prog="python -m dmtnn.browsercheck", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("html", nargs="?", default="_build/html", help="the built book")
    parser.add_argument("--screenshots", default=None,
                        help="folder for one PNG per page (default: HTML/../screenshots)")
    parser.add_argument("--width", type=int, default=1280, help="window width, CSS px")
    parser.add_argument("pages", nargs="*", help="pages to check (default: all)")
    args = parser.parse_args(argv)
    html = Path(args.html)
    shots = Path(args.screenshots) if args.screenshots else html.parent / "screenshots"
    try:
        reports = check_pages(html, args.pages or None, screenshots=shots, width=args.width)
    except (FileNotFoundError, ImportError) as err:
        print(err, file=sys.stderr)
        return 1
    for r in reports:
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.page} ({r.images} images, {r.math} math)")
        for problem in r.problems:
            print(f"     {problem}")
    failed = sum(not r.ok for r in reports)
    print(f"browser check: {len(reports)} pages, {failed} with problems; screenshots in {shots}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
