"""The build check of the book (dmtnn.bookcheck): pages present, assets that load offline."""

from dmtnn import bookcheck


def test_asset_problems_flags_other_hosts_and_missing_files(tmp_path):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-mml-chtml.js").write_text("")
    (tmp_path / "_static" / "book.css").write_text("")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "ok.html").write_text(
        '<link rel="stylesheet" type="text/css" href="../_static/book.css?v=1" />'
        '<script defer="defer" src="../_static/mathjax/tex-mml-chtml.js"></script>'
        '<script src="data:text/javascript,1"></script>'
        '<a href="https://doi.org/10.1/x">a link is fine</a>')
    (tmp_path / "book" / "cdn.html").write_text(
        '<script defer="defer" src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js">'
        '</script><link href="//fonts.example/f.css" rel="stylesheet">'
        '<script src="../_static/gone.js"></script>')
    (tmp_path / "_static" / "skipped.html").write_text('<script src="https://x/y.js"></script>')
    assert bookcheck.asset_problems(tmp_path) == [
        "book/cdn.html: ../_static/gone.js (missing)",
        "book/cdn.html: //fonts.example/f.css (another host: fails offline)",
        "book/cdn.html: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js "
        "(another host: fails offline)",
    ]
    (tmp_path / "book" / "cdn.html").unlink()
    assert bookcheck.asset_problems(tmp_path) == []


def test_stated_numbers_skip_code_math_roles_and_section_numbers():
    text = """Our R² was 0.54 and 1.15e7 parameters (11,526,945).

```python
x = 0.123
```

Inline `0.77`, math $0.66$ and $$1.25$$, a glue {glue:md}`notebooks/05.ipynb::0.91`,
Sec. 4.2.4, version 1.0.4.post1, a link [x](https://a.org/0.5) and a width 100%.
<!-- 0.42 -->
"""
    assert bookcheck.stated_numbers(text) == ["0.54", "1.15e7", "11,526,945"]


def test_unsourced_compares_at_the_stated_precision():
    sources = {0.9749, 0.1807, 11526945.0, 36.6}
    assert bookcheck.unsourced(["0.97", "18.07", "1.15e7", "11,526,945", "36.6"], sources) == []
    # a digit more than the source gives, a fraction off, a count off by 100
    assert bookcheck.unsourced(["0.9750", "0.98", "11,526,845", "36.7"], sources) == [
        "0.9750", "0.98", "11,526,845", "36.7"]


def test_book_pages_state_no_number_that_the_code_does_not_give():
    """Every decimal, power of ten or grouped count in a hand-written page comes from the
    code: the paper's numbers, the configuration, the rocks, the models. Results are glued
    from the notebooks, settings come from the generated tables; a stale count or a typed
    result fails here."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "book"
    sources = bookcheck.sourced_numbers()
    pages = [p for p in sorted(root.rglob("*.md"))
             if not {"notebooks", "figures", "_build"} & set(p.relative_to(root).parts)]
    assert len(pages) >= 7
    bad = {p.relative_to(root).as_posix(): found for p in pages
           if (found := bookcheck.unsourced(bookcheck.stated_numbers(p.read_text()), sources))}
    assert not bad, f"numbers no code gives (glue them or generate them): {bad}"
