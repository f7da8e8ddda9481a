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
