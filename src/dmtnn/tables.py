"""Tables and sentences of the book: one precision rule per quantity, units, captions.

Tables go through :func:`styled` / :func:`with_intervals` (numbers
right-aligned, one precision rule per quantity, a caption), long ones through
:func:`folded`; sentences (verdicts) through :func:`prose`, as Markdown that
wraps to the page instead of a printed line that runs out of its box.
Figures are in :mod:`dmtnn.plots`.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from dmtnn.comparison import GLUE_PREFIX

__all__ = [
    "PARAMETER_UNITS",
    "PARAMETER_NAMES",
    "decimals",
    "styled",
    "with_intervals",
    "with_units",
    "folded",
    "DIFFERENCE_COLUMNS",
    "differences",
    "prose",
]


#: Units of the three regressed parameters: porosity is a fraction (of the image area).
PARAMETER_UNITS = {"phi": "fraction", "mu": "GPa", "kappa": "GPa"}
#: A parameter's name with its unit, for table rows and headers.
PARAMETER_NAMES = {"phi": "φ (fraction)", "mu": "μ (GPa)", "kappa": "κ (GPa)"}

# A formatted cell that reads as a number: "0.700", "-1,234", "1.2e-05", "0.70 [0.61, 0.78]", "–".
_NUMBER = re.compile(r"^(?:[-+−]?[\d,]*\.?\d+(?:e[-+]?\d+)?%?(?: \[.*\])?|–|nan)$")


def decimals(value: float, digits: int = 3) -> int:
    """Decimal places that write ``value`` to ``digits`` significant digits (0 to 8).

    Examples
    --------
    >>> decimals(0.00812), decimals(1.682), decimals(961.0), decimals(0.0)
    (5, 2, 0, 2)
    """
    if not np.isfinite(value) or value == 0:
        return digits - 1
    return int(min(8, max(0, digits - 1 - np.floor(np.log10(abs(value))))))


def _numeric_columns(table: pd.DataFrame) -> list:
    """Columns whose every cell is a number (or reads as one once formatted)."""
    out = []
    for c in table.columns:
        col = table[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            out.append(c)
        elif (col.dtype == object or pd.api.types.is_string_dtype(col)) and len(col) and all(
                isinstance(v, str) and _NUMBER.match(v.strip()) for v in col.dropna()):
            out.append(c)
    return out


def styled(table: pd.DataFrame, precision: int = 3, formats: dict | None = None, *,
           caption: str | None = None, significant: bool | Sequence[str] = False,
           units: bool = True):
    """A table for the book: numbers formatted and right-aligned, no index, an optional caption.

    Parameters
    ----------
    table : DataFrame
        The rows to show (the index is hidden: ``reset_index()`` first to keep it).
    precision : int
        Float columns to ``precision`` decimals, or to ``precision`` significant
        digits for the columns named by ``significant``.
    formats : dict, optional
        ``{column: format string or callable}``, overriding the above.
    caption : str, optional
        The table's caption (HTML ``<caption>``, above the table): say what the
        rows are and the units of columns whose header cannot.
    significant : bool or sequence of str
        Columns (``True``: all float columns) whose values span orders of
        magnitude, e.g. a MAE of porosity (0.008) beside one of a modulus
        (1.7 GPa): each value is written to ``precision`` significant digits.
    units : bool
        Write a ``"parameter"`` column's keys with their units (:func:`with_units`:
        ``mu`` -> "μ (GPa)"), so that the errors in its rows say their unit.

    Returns
    -------
    pandas.io.formats.style.Styler
        Its HTML id comes from the table's content, not a random uuid, so that
        the same results give the same notebook output (nbval compares them);
        the alignment lives in the ``<style>`` block.
    """
    if units and "parameter" in table.columns and set(table["parameter"]) & set(PARAMETER_NAMES):
        table = with_units(table)
    floats = list(table.select_dtypes("float").columns)
    sig = [c for c in floats if significant is True or c in (significant or ())]
    fmt = {c: f"{{:.{precision}f}}" for c in floats if c not in sig}
    fmt.update({c: functools.partial(_significant, digits=precision) for c in sig})
    fmt.update(formats or {})
    uuid = hashlib.sha1(table.to_csv().encode()).hexdigest()[:10]
    numeric = set(_numeric_columns(table))
    cols = [i for i, c in enumerate(table.columns) if c in numeric]
    right = [{"selector": ", ".join(f"{cell}.col{i}" for i in cols for cell in ("td", "th")),
              "props": [("text-align", "right")]},
             {"selector": ", ".join(f"td.col{i}" for i in cols),
              "props": [("white-space", "nowrap")]}] if cols else []
    out = table.style.set_uuid(uuid).format(fmt, na_rep="–").hide(axis="index")
    if right:
        out = out.set_table_styles(right, overwrite=False)
    if caption:
        out = out.set_caption(caption)
    return out


def _significant(value: float, digits: int = 3) -> str:
    return "–" if not np.isfinite(value) else f"{value:.{decimals(value, digits)}f}"


def with_intervals(table: pd.DataFrame, precision: int = 3, formats: dict | None = None, *,
                   caption: str | None = None, significant: bool | Sequence[str] = False):
    """:func:`styled`, with each ``<c> low`` / ``<c> high`` pair folded into ``<c>``.

    A score and its interval read as one cell, "0.700 [0.612, 0.781]": the
    bounds are written to the decimals of their value ("–" where there is no
    value, the value alone where there is no interval), so that wide tables of
    bootstrap intervals fit the page. ``precision`` and ``significant`` are
    :func:`styled`'s: for columns named by ``significant`` (``True``: all) each
    value takes ``precision`` significant digits, "0.00812 [0.00701, 0.00934]"
    beside "1.68 [1.41, 1.95]", so that one column can hold a porosity error
    and a modulus error.
    """
    out = table.copy()
    for c in list(table.columns):
        low, high = f"{c} low", f"{c} high"
        if low in table.columns and high in table.columns:
            sig = significant is True or c in (significant or ())
            cells = []
            for v, lo, hi in zip(table[c], table[low], table[high], strict=True):
                d = decimals(v, precision) if sig else precision
                cells.append("–" if not np.isfinite(v) else f"{v:.{d}f}" + (
                    f" [{lo:.{d}f}, {hi:.{d}f}]" if np.isfinite(lo) and np.isfinite(hi) else ""))
            out[c] = cells
            out = out.drop(columns=[low, high])
    return styled(out, precision, formats, caption=caption, significant=significant)


def with_units(table: pd.DataFrame, column: str = "parameter") -> pd.DataFrame:
    """A copy of ``table`` with the parameter keys of ``column`` (or of the index level
    ``column``) written with their units: ``phi`` -> "φ (fraction)", ``mu`` -> "μ (GPa)".

    For tables whose rows are parameters and whose columns (MAE, MSE) therefore
    change unit from row to row.
    """
    out = table.copy()
    if column in out.columns:
        out[column] = [PARAMETER_NAMES.get(v, v) for v in out[column]]
    elif column in (out.index.names or []):
        out = out.rename(index=PARAMETER_NAMES, level=column)
    else:
        raise KeyError(f"with_units: no column or index level {column!r} in the table "
                       f"(columns: {list(out.columns)}); pass column=<the parameter column>")
    return out


def folded(full, summary=None, *, label: str = "The full table"):
    """A long table folded away: ``summary`` shown, ``full`` in an HTML ``<details>`` block.

    Parameters
    ----------
    full : Styler or DataFrame
        The complete table (e.g. every rock x method row of a bootstrap table).
    summary : Styler, DataFrame or str, optional
        Shown above the fold: a short table, or a sentence.
    label : str
        The fold's title; the row count is added.

    Returns
    -------
    IPython.display.HTML
        One HTML output: the summary, then the folded table (opened by a click).
    """
    from IPython.display import HTML  # optional: notebooks only

    rows = len(full.data if hasattr(full, "data") else full)
    if summary is None:
        head = ""
    elif isinstance(summary, str):
        head = f"<p>{html.escape(summary)}</p>"
    else:
        head = _html(summary)
    return HTML(f"{head}<details class=\"dmtnn-fold\"><summary>{html.escape(label)} "
                f"({rows} rows)</summary>\n{_html(full)}\n</details>")


#: Columns of a paired-difference table shown above the fold by :func:`differences`.
DIFFERENCE_COLUMNS = ("group", "a", "b", "parameter", "a mean", "b mean", "difference",
                      "difference low", "difference high", "difference per seed",
                      "over seeds", "over seeds low", "over seeds high", "verdict",
                      "train R2 a", "train R2 b", "clusters")


def differences(table: pd.DataFrame, score: str = "R2", *, caption: str | None = None,
                label: str = "Every score, with the interval's method and notes"):
    """Paired differences for the book: one score's rows shown, every row folded below.

    Parameters
    ----------
    table : DataFrame
        From :func:`dmtnn.reports.difference_table` (indexed by ``[group,] a,
        b, parameter, score``).
    score : str
        The score shown above the fold (e.g. ``"R2"``); its rows keep the
        columns of :data:`DIFFERENCE_COLUMNS` that the table has, each
        difference written with its interval, "+0.12 [0.05, 0.20]", and, where
        the table has it, the same difference with its seed interval ("over
        seeds": Student's t over the per-seed differences), which the verdict
        also needs on one side of 0.
    caption : str, optional
        Of the shown table; default: says what the difference and its interval are.
    label : str
        The fold's title (:func:`folded`); the fold holds every score and column.

    Returns
    -------
    IPython.display.HTML
    """
    full = table.reset_index()
    if "score" not in full.columns:
        raise KeyError("differences: the table has no 'score' column or index level; pass "
                       "a dmtnn.reports.difference_table")
    rows = full.loc[full["score"] == score]
    if rows.empty:
        raise ValueError(f"differences: no rows of score {score!r}; the table has "
                         f"{sorted(set(full['score']))}")
    if "difference seed low" in rows.columns:  # the seed interval, written as the slabs' is
        rows = rows.assign(**{"over seeds": rows["difference"],
                              "over seeds low": rows["difference seed low"],
                              "over seeds high": rows["difference seed high"]})
    shown = rows[[c for c in DIFFERENCE_COLUMNS if c in rows.columns]]
    caption = caption or (f"Paired difference of {score} on the same images, a − b: mean over "
                          f"seeds [bootstrap interval over clusters].")
    return folded(with_intervals(full, significant=True),
                  with_intervals(shown, caption=caption, significant=score != "R2"),
                  label=label)


def _html(table) -> str:
    return table.to_html() if hasattr(table, "data") else styled(table).to_html()


def prose(*lines: str, bullets: bool | None = None, glue: str | None = None):
    """Sentences (a verdict, a reading of a table) as Markdown, which wraps to the page.

    A ``print`` of a long line runs out of its output box; this is rendered as
    text. One line gives a paragraph, several a bulleted list (or paragraphs
    with ``bullets=False``). Markdown and ``$...$`` math work inside.

    Parameters
    ----------
    *lines : str
    bullets : bool, optional
        Several lines as a list (default) or as paragraphs.
    glue : str, optional
        Also store the text as a hidden MyST-NB glue of this name: as Markdown,
        for the notebook's own ``{glue:md}`` roles, and as plain text (emphasis
        marks dropped, lines joined), for another page's
        ``{glue:text}`notebooks/NN_name.ipynb::NAME:s``` (MyST-NB pastes only
        plain text, HTML and images across documents).

    Returns
    -------
    IPython.display.Markdown
        The cell's output when it is the cell's last expression; else ``display`` it.
    """
    from IPython import get_ipython  # optional: notebooks only
    from IPython.display import Markdown, display

    if not lines:
        raise ValueError("prose: give at least one line of text")
    as_list = len(lines) > 1 if bullets is None else bullets
    text = "\n".join(f"- {t}" for t in lines) if as_list else "\n\n".join(lines)
    if glue and get_ipython() is not None:
        plain = " ".join(re.sub(r"\*\*|`", "", t) for t in lines)
        display({GLUE_PREFIX + "text/markdown": text, GLUE_PREFIX + "text/plain": repr(plain)},
                raw=True, metadata={"scrapbook": {"name": glue, "mime_prefix": GLUE_PREFIX}})
    return Markdown(text)
