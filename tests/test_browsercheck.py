"""The browser check (dmtnn.browsercheck) finds each defect a reader would see.

The page tests open a small hand-written site in headless Chromium; they are
skipped where Chromium, ChromeDriver or Selenium is missing (.ci/run installs
them, so CI runs them).
"""

import shutil
import urllib.request

import pytest

from dmtnn import browsercheck

GOOD = """<!doctype html><html><head><link rel="icon" href="data:,"></head><body><main>
<p>Porosity 0.21 and a price of $5 or $6.</p>
<div class="cell_output"><pre>short line</pre></div>
<img src="tiny.svg"><pre><code>print(r"$\\phi$ and \\(x\\)")</code></pre>
</main></body></html>"""

PAGES = {
    "good.html": GOOD,
    "img.html": GOOD.replace("tiny.svg", "missing.png"),
    "tex.html": GOOD.replace("<p>Porosity", '<p><span class="math">\\(\\phi\\)</span> Porosity'),
    "wide.html": GOOD.replace("short line", "x" * 400).replace(
        "<main>", '<main style="width: 400px"><style>pre{overflow-x:auto}</style>'),
    "console.html": GOOD.replace("</main>", "</main><script>undefinedFunction()</script>"),
    "clipped.html": GOOD.replace(
        "</main>", '<div style="width: 200px; overflow: hidden"><table><tr>'
        '<td style="white-space: nowrap">a very long cell that cannot fit in 200 px</td>'
        "</tr></table></div></main>"),
    "sub/nested.html": GOOD.replace("tiny.svg", "../tiny.svg"),
}
TINY_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4">'
            '<rect width="4" height="4"/></svg>')


@pytest.fixture
def site(tmp_path):
    for name, text in PAGES.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "tiny.svg").write_text(TINY_SVG)
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=good.html" />')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "asset.html").write_text("not a page")
    return tmp_path


def test_raw_tex_finds_delimiters_and_commands_not_dollars():
    assert browsercheck.raw_tex(r"the porosity \(\phi\) is") == [r"\(", r"\)"]
    assert browsercheck.raw_tex(r"$$x^2$$ and \[y\]") == ["$$", "$$", r"\[", r"\]"]
    assert browsercheck.raw_tex(r"a fraction $\frac{1}{2}$ here") == [r"$\frac{1}{2}$"]
    assert browsercheck.raw_tex(r"\begin{align} x \end{align}") == [r"\begin", r"\end"]
    assert browsercheck.raw_tex("costs $5 or $6; R² = 0.7 (φ, μ)") == []


def test_book_pages_skips_asset_folders_and_redirect_stubs(site):
    assert browsercheck.book_pages(site) == sorted(
        ["clipped.html", "console.html", "good.html", "img.html", "sub/nested.html",
         "tex.html", "wide.html"])


def test_serve_answers_on_localhost_only_while_open(site):
    with browsercheck.serve(site) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "tiny.svg", timeout=10) as reply:
            assert reply.read().decode() == TINY_SVG
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "tiny.svg", timeout=2)
    with pytest.raises(FileNotFoundError, match="build the book first"):
        with browsercheck.serve(site / "nowhere"):
            pass


def _browser_available() -> bool:
    try:
        browsercheck.find_browser()
    except FileNotFoundError:
        return False
    return browsercheck.webdriver is not None


@pytest.mark.slow
@pytest.mark.skipif(not _browser_available(),
                    reason="needs chromium, chromedriver and selenium (apt-get install "
                           "chromium chromium-driver; the dev extra)")
def test_check_pages_reports_each_defect(site, tmp_path_factory):
    shots = tmp_path_factory.mktemp("shots")
    reports = {r.page: r for r in browsercheck.check_pages(site, screenshots=shots,
                                                           width=800, height=600)}
    assert reports["good.html"].problems == []
    assert reports["sub/nested.html"].problems == []
    assert reports["good.html"].images == 1
    img = reports["img.html"].problems
    assert "image not loaded: missing.png" in img
    assert any(p.startswith("console error:") and "missing.png" in p and "404" in p for p in img)
    tex = reports["tex.html"].problems
    assert tex[0] == r"raw TeX in the text: \(, \)"
    assert tex[1] == "1 of 1 math elements not typeset (MathJax did not load)"
    wide = reports["wide.html"].problems
    assert len(wide) == 1 and wide[0].startswith("text output wider than its column")
    assert "x" * 50 in wide[0]
    console = reports["console.html"].problems
    assert len(console) == 1 and "undefinedFunction is not defined" in console[0]
    clipped = reports["clipped.html"].problems
    assert len(clipped) == 1 and clipped[0].startswith("table cut off at")
    for r in reports.values():
        assert r.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in shots.iterdir())[0] == "clipped.png"


@pytest.mark.skipif(bool(shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="only where Chromium is missing")
def test_missing_browser_names_the_install_command(site, capsys):
    assert browsercheck.main([str(site)]) == 1
    assert "apt-get install -y chromium chromium-driver" in capsys.readouterr().err
