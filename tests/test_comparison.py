"""The paper-comparison registry: differences, glue format, the page's table."""

import math
import re

import nbformat
import numpy as np
import pytest
from myst_nb.core.variables import format_plain_text
from myst_nb.ext.glue import extract_glue_data_cell
from nbformat.v4 import new_code_cell, new_output

from dmtnn import comparison
from dmtnn.comparison import CLAIMS, Claim, claim, difference, glue_bundle, record
from dmtnn.pipeline import notebooks


def test_difference_absolute_relative_and_reading():
    r2 = Claim("x", "Fig. 0", "R²", 0.92, "0.92", "05_dmtnn", "why")
    assert difference(r2, 0.70) == "-0.22"
    assert difference(r2, np.float32(0.95)) == "+0.03"
    count = Claim("y", "Sec.", "parameters", 2.2e7, "2.2e7", "05_dmtnn", "why", relative=True)
    assert difference(count, 22_606_324) == "+2.76%"
    assert difference(count, np.int64(11_000_000)) == "-50.00%"
    reading = Claim("z", "App.", "reading", None, "deeper overfits", "08", "why")
    assert difference(reading, 0.5) == "–"
    assert difference(r2, math.nan) == "–"


def test_glue_bundle_is_what_myst_nb_reads_back():
    data, metadata = glue_bundle("fig11-dmtnn-phi", "0.700")
    cell = new_code_cell("record(...)", outputs=[
        new_output("display_data", data=data, metadata=metadata)])
    (key, output), = extract_glue_data_cell(cell)
    assert key == "fig11-dmtnn-phi"
    assert format_plain_text(output["data"]["text/plain"], "") == "0.700"
    assert cell.outputs == []  # stored, not displayed


def test_claims_are_unique_and_point_at_notebooks():
    keys = [c.key for c in CLAIMS]
    assert len(keys) == len(set(keys))
    assert all(re.fullmatch(r"[a-zA-Z0-9-]+", k) for k in keys)
    names = {p.stem for p in notebooks()}
    assert {c.notebook for c in CLAIMS} <= names
    # the paper's headline numbers are there
    assert claim("fig11-dmtnn-mu").paper == 0.74 and claim("fig10-cnn-phi").paper == 0.47


def test_unknown_key_and_reading_without_verdict_are_refused():
    with pytest.raises(KeyError, match="no paper claim 'nope'"):
        record("nope", 1.0)
    with pytest.raises(ValueError, match="reading"):
        record("a1-depth", "0.1 -> 0.3")
    record("a1-depth", "0.1 -> 0.3", verdict="not shown")  # no IPython: nothing stored


def test_table_has_one_row_per_claim_pasted_from_its_notebook():
    table = comparison.table_markdown().splitlines()
    assert table[0].startswith("All our values:") and "02_rev.ipynb::run:s" in table[0]
    rows = [line for line in table if line.startswith("| ") and "::" in line]
    assert len(rows) == len(CLAIMS)
    notes = {line[1] for line in table if line[:1] == "(" and line[2:4] == ") "}
    assert notes == {row.rsplit("(", 1)[1][0] for row in rows}  # every note used and defined
    for c, row in zip(CLAIMS, rows, strict=True):
        assert f"notebooks/{c.notebook}.ipynb::{c.key}:s`" in row
        assert f"notebooks/{c.notebook}.ipynb::{c.key}-diff:s`" in row
        assert row.count(" | ") == 4  # five cells: no unescaped | inside one


def test_every_claim_is_recorded_by_its_notebook():
    """Each key (or an f-string that makes it) is recorded by its notebook."""
    recorded = {}
    for path in notebooks():
        source = "\n".join(c.source for c in nbformat.read(path, 4).cells)
        recorded[path.stem] = re.findall(r'record\(f?"([^"]+)"', source)
    for c in CLAIMS:
        assert any(_matches(t, c.key) for t in recorded[c.notebook]), \
            f"{c.notebook} does not record {c.key}"


def _matches(template: str, key: str) -> bool:
    """Does the (f-string) ``template``, e.g. 'fig10-cnn-{k}', produce ``key``?"""
    pattern = re.sub(r"\\\{[^}]*\\\}", "[a-zA-Z0-9-]+", re.escape(template))
    return re.fullmatch(pattern, key) is not None
