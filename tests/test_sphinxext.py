"""The book's Sphinx extension: a local MathJax, each page script once."""

from pathlib import Path

import pytest
import yaml
from sphinx.builders.html._assets import _JavaScript
from sphinx.errors import ExtensionError

from dmtnn import sphinxext


def test_mathjax_source_is_mathjax_3_with_its_fonts():
    es5 = sphinxext.mathjax_source()
    entry = (es5 / sphinxext.MATHJAX_ENTRY).read_text(encoding="utf-8")
    assert '"3.2.2"' in entry or "'3.2.2'" in entry  # the version the book was checked with
    assert any((es5 / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def test_mathjax_source_names_the_package_when_missing(monkeypatch):
    monkeypatch.setattr(sphinxext.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ExtensionError, match="django-static-mathjax"):
        sphinxext.mathjax_source()


def test_copy_mathjax_takes_the_entry_and_what_it_loads(tmp_path):
    src = tmp_path / "es5"
    for rel in ("tex-mml-chtml.js", "tex-svg-full.js", "node-main.js", "input/tex/extensions/ams.js",
                "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff", "ui/menu.js",
                "a11y/explorer.js", "sre/mathmaps/en.json"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    entry = sphinxext.copy_mathjax(tmp_path / "out", src)
    assert entry == tmp_path / "out" / "tex-mml-chtml.js"
    copied = sorted(p.relative_to(tmp_path / "out").as_posix()
                    for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert copied == ["a11y/explorer.js", "input/tex/extensions/ams.js",
                      "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                      "sre/mathmaps/en.json", "tex-mml-chtml.js", "ui/menu.js"]
    sphinxext.copy_mathjax(tmp_path / "out", src)  # again, over the first copy


def test_unique_scripts_drops_the_second_copy_of_an_inline_script():
    thebe = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("", body=thebe), _JavaScript("_static/a.js"),
               _JavaScript(None, body=thebe), _JavaScript("_static/a.js"),
               _JavaScript("_static/a.js", **{"async": "async"}), _JavaScript("", body="let y")]
    context = {"script_files": scripts}
    sphinxext._unique_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] is scripts  # edited in place: Sphinx renders this list
    assert [(str(s.filename or ""), s.attributes) for s in scripts] == [
        ("", {"body": thebe}), ("_static/a.js", {}), ("_static/a.js", {"async": "async"}),
        ("", {"body": "let y"})]


def test_the_book_config_loads_the_extension_and_the_local_mathjax():
    config = yaml.safe_load((Path(__file__).parents[1] / "_config.yml").read_text())
    assert "dmtnn.sphinxext" in config["sphinx"]["extra_extensions"]
    assert config["sphinx"]["config"]["mathjax_path"] == "mathjax/" + sphinxext.MATHJAX_ENTRY
