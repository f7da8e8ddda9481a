"""Tables, sentences and figures of the book (dmtnn.plots)."""

import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from dmtnn import plots, tables  # noqa: E402 (after the backend)

STYLE = re.compile(r'<style type="text/css">[\s\S]*?</style>')  # as tests/notebooks/sanitize.cfg


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


# --------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------

def test_with_intervals_writes_bounds_to_the_decimals_of_their_value():
    table = pd.DataFrame({"network": ["a", "b", "c"], "test": [0.7, 0.5, np.nan],
                          "test low": [0.61, np.nan, np.nan], "test high": [0.78, np.nan, np.nan],
                          "images": [20.0, 8.0, 3.0]})
    out = tables.with_intervals(table, formats={"images": "{:.0f}"})
    assert list(out.data.columns) == ["network", "test", "images"]
    assert out.data["test"].tolist() == ["0.700 [0.610, 0.780]", "0.500", "–"]
    html = out.to_html()
    assert "0.700 [0.610, 0.780]" in html and ">20<" in html
    assert tables.styled(table).to_html() == tables.styled(table).to_html()  # stable ids


def test_significant_digits_give_one_rule_for_errors_of_different_sizes():
    # a porosity MAE (0.008) and modulus MAEs (GPa) in one column: 3 significant digits each
    table = pd.DataFrame({"parameter": ["phi", "mu", "kappa"],
                          "test": [0.00812, 1.682, 961.0],
                          "test low": [0.00701, 1.411, 900.2],
                          "test high": [0.00934, 1.953, 1000.7]})
    out = tables.with_intervals(tables.with_units(table), significant=True)
    assert out.data["test"].tolist() == ["0.00812 [0.00701, 0.00934]", "1.68 [1.41, 1.95]",
                                         "961 [900, 1001]"]
    assert out.data["parameter"].tolist() == ["φ (fraction)", "μ (GPa)", "κ (GPa)"]
    plain = tables.styled(table[["parameter", "test"]], significant=["test"])
    assert plain.data["test"].tolist() == [0.00812, 1.682, 961.0]  # formatting only
    assert ">0.00812<" in plain.to_html() and ">1.68<" in plain.to_html()


def test_decimals_for_significant_digits():
    assert [tables.decimals(v) for v in (0.00812, 0.0812, 1.682, 16.8, 961.0, -2.18)] == \
        [5, 4, 2, 1, 0, 2]
    assert tables.decimals(0.0) == 2 and tables.decimals(np.nan) == 2
    assert tables.decimals(1e-12) == 8  # capped


def test_styled_right_aligns_numeric_columns_and_adds_a_caption():
    table = pd.DataFrame({"rock": ["Berea", "Kirby"], "role": ["train", "unseen"],
                          "slices": [96, 32], "φ": [0.217, 0.215],
                          "R2": ["0.700 [0.610, 0.780]", "–"]})
    out = tables.styled(table, caption="Two rocks (φ: fraction of the image)")
    html = out.to_html()
    assert "<caption>Two rocks (φ: fraction of the image)</caption>" in html
    css = STYLE.search(html).group(0)
    right = re.search(r"([^{}]*)\{\s*text-align: right;", css)
    assert right is not None
    aligned = set(re.findall(r"col(\d+)", css))
    assert aligned == {"2", "3", "4"}  # slices, φ and the interval column; not rock, role


def test_styled_changes_only_the_style_block_of_a_plain_styler():
    # nbval compares checked table outputs with the style block sanitised away
    # (tests/notebooks/sanitize.cfg): the table itself must stay as pandas writes it
    table = pd.DataFrame({"model": ["LinkNet", "U-Net"], "parameters": [11.5e6, 7.7e6],
                          "share": [0.25, 0.5]})
    formats = {"parameters": "{:,.0f}"}
    ours = tables.styled(table, formats=formats).to_html()
    uuid = re.search(r'<table id="T_(\w+)"', ours).group(1)
    plain = (table.style.set_uuid(uuid).format({"share": "{:.3f}", **formats}, na_rep="–")
             .hide(axis="index").to_html())
    assert ours != plain
    assert STYLE.sub("<style/>", ours) == STYLE.sub("<style/>", plain)


def test_with_units_names_parameters_in_columns_and_index():
    table = pd.DataFrame({"parameter": ["phi", "mu", "other"], "MAE": [0.01, 1.0, 2.0]})
    assert tables.with_units(table)["parameter"].tolist() == ["φ (fraction)", "μ (GPa)", "other"]
    indexed = tables.with_units(table.set_index("parameter"))
    assert indexed.index.tolist() == ["φ (fraction)", "μ (GPa)", "other"]
    with pytest.raises(KeyError, match="no column or index level 'quantity'"):
        tables.with_units(table, "quantity")


def test_folded_shows_the_summary_and_folds_the_full_table():
    full = pd.DataFrame({"rock": [f"r{i}" for i in range(60)], "R2": np.linspace(0, 1, 60)})
    out = tables.folded(tables.styled(full), "Mean R2 0.5 <over> 60 rocks", label="Every rock")
    html = out.data
    assert html.startswith("<p>Mean R2 0.5 &lt;over&gt; 60 rocks</p>")
    assert '<details class="dmtnn-fold"><summary>Every rock (60 rows)</summary>' in html
    assert html.count("<tr>") == 61 and html.rstrip().endswith("</details>")
    short = tables.folded(full, full.head(3))
    assert short.data.index("r2<") < short.data.index("<details")  # summary table first


def test_differences_show_one_score_with_intervals_and_fold_every_row():
    index = pd.MultiIndex.from_tuples(
        [("DMTNN", "CNN", p, s) for p in ("phi", "mu") for s in ("R2", "MAE")],
        names=["a", "b", "parameter", "score"])
    table = pd.DataFrame({"a mean": [0.9, 0.01, 0.8, 1.5], "b mean": [0.5, 0.02, 0.6, 2.0],
                          "difference": [0.4, -0.01, 0.2, -0.5],
                          "difference low": [0.3, -0.015, 0.1, -0.7],
                          "difference high": [0.5, -0.005, 0.3, -0.3],
                          "verdict": ["supported"] * 4, "interval": ["BCa"] * 4,
                          "note": [""] * 4}, index=index)
    html = tables.differences(table).data
    shown, fold = html.split("<details")
    assert "0.400 [0.300, 0.500]" in shown and "0.200 [0.100, 0.300]" in shown
    assert "MAE" not in shown and "BCa" not in shown  # one score, the key columns
    assert "μ (GPa)" in shown and "Paired difference of R2" in shown
    assert "(4 rows)" in fold and "-0.0100 [-0.0150, -0.0050]" in fold and "BCa" in fold
    assert "-0.500 [-0.700, -0.300]" in fold  # each bound to its value's decimals
    # the seed interval, where the table has one, beside the slabs'
    seeds = table.assign(**{"difference seed low": [-0.2, -0.03, 0.15, -0.9],
                            "difference seed high": [1.0, 0.01, 0.25, -0.1]})
    shown = tables.differences(seeds).data.split("<details")[0]
    assert "over seeds" in shown and "0.400 [-0.200, 1.000]" in shown
    with pytest.raises(ValueError, match="no rows of score 'RMSE'"):
        tables.differences(table, "RMSE")
    with pytest.raises(KeyError, match="no 'score'"):
        tables.differences(table.droplevel("score"))


def test_prose_is_markdown_paragraph_or_list():
    one = tables.prose("DMTNN's relative error is 22 % lower, paper: more than 10 %.")
    assert one.data == "DMTNN's relative error is 22 % lower, paper: more than 10 %."
    two = tables.prose("mu: lower", "kappa: higher")
    assert two.data == "- mu: lower\n- kappa: higher"
    assert tables.prose("a", "b", bullets=False).data == "a\n\nb"
    with pytest.raises(ValueError, match="at least one line"):
        tables.prose()


# --------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------

def test_nice_length():
    assert [plots.nice_length(v) for v in (1.0, 3.0, 7.5, 140.6, 562.5, 0.07)] == \
        [1.0, 2.0, 5.0, 100.0, 500.0, 0.05]
    with pytest.raises(ValueError, match="span must be positive"):
        plots.nice_length(0.0)


def test_scale_bar_has_the_length_of_its_label():
    fig, ax = matplotlib.pyplot.subplots()
    ax.imshow(np.zeros((64, 128)))
    bar = plots.scale_bar(ax, pixel_um=8.79)  # 128 px = 1125 µm; a quarter: 281 -> 200 µm
    assert bar.txt_label.get_text() == "200 µm"
    rect = bar.size_bar.get_children()[0]
    assert rect.get_width() == pytest.approx(200 / 8.79)
    bar2 = plots.scale_bar(ax, pixel_um=2.0, length_um=50)
    assert bar2.txt_label.get_text() == "50 µm"
    assert bar2.size_bar.get_children()[0].get_width() == pytest.approx(25.0)
    with pytest.raises(ValueError, match="pixel_um must be positive"):
        plots.scale_bar(ax, pixel_um=0)


def _labels(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_image_figures_carry_scale_bars_in_micrometres():
    img = np.random.default_rng(0).random((2, 32, 32))
    fig = plots.segmentation_examples(img, img > 0.5, {"LinkNet": img > 0.5}, pixel_um=10.0)
    assert _labels(fig).count("50 µm") == 2  # one per row, on the grayscale image
    fig = plots.slices_grid({r: {"gray": img[0], "label": img[1]} for r in "abcd"}, per_row=3,
                            pixel_um=10.0)
    assert _labels(fig).count("50 µm") == 2  # one per group of rows
    assert "50 µm" not in _labels(plots.slices_grid({"a": {"gray": img[0]}}))


def test_no_figure_writes_um_for_micrometres():
    sizes = np.array([16, 32, 64])
    curves = {r: pd.DataFrame({"size": sizes, "size_um": sizes * 8.79, "kappa_cv": 1 / sizes,
                               "mu_cv": 1 / sizes, "phi_cv": 1 / sizes}) for r in "ab"}
    fig = plots.moduli_rev(curves, cv_tol=0.05)
    assert "window side (µm)" in _labels(fig)
    assert not [t for t in _labels(fig) if re.search(r"\bum\b", t)]


def test_moduli_rev_gives_every_rock_its_own_look_and_plain_ticks():
    sizes = np.array([16, 32, 64, 128, 256])
    curves = {f"rock {i}": pd.DataFrame({"size": sizes, "size_um": sizes * 8.79,
                                         "kappa_cv": (i + 1) / sizes, "mu_cv": 1 / sizes,
                                         "phi_cv": 1 / sizes}) for i in range(11)}
    fig = plots.moduli_rev(curves, cv_tol=0.05)
    ax = fig.axes[0]
    looks = {(tuple(line.get_color()), line.get_marker(), line.get_linestyle())
             for line in ax.lines[:11]}
    assert len(looks) == 11
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["141", "281", "563", "1125", "2250"]


def _history(weight: float, epochs: int = 5) -> pd.DataFrame:
    ep = np.arange(1, epochs + 1)
    h = {"epoch": ep}
    for i, t in enumerate(("phi", "mu", "kappa")):
        for split in ("train", "val"):
            h[f"{split} {t} loss"] = (i + 1) / ep
        h[f"train {t} R2"] = 1 - 8.0 / ep ** 2
        h[f"weight {t}"] = np.full(epochs, weight)
    h["train loss"] = weight * (h["train phi loss"] + h["train mu loss"] + h["train kappa loss"])
    h["val loss"] = h["train loss"]
    h["val selection loss"] = h["train loss"]
    return pd.DataFrame(h)


def test_training_curves_plot_the_unweighted_sum_of_task_losses():
    dyn, cnn = _history(1e-2), _history(1.0)
    assert plots.task_loss_sum(dyn).tolist() == pytest.approx((6 / np.arange(1, 6)).tolist())
    fig = plots.training_curves({"DMTNN": dyn, "CNN": cnn})
    lines = fig.axes[0].lines
    np.testing.assert_allclose(lines[0].get_ydata(), lines[2].get_ydata())  # same scale
    np.testing.assert_allclose(lines[0].get_ydata(), 6 / np.arange(1, 6))
    assert fig.axes[0].get_ylabel() == "loss, unweighted sum over tasks"
    bare = pd.DataFrame({"epoch": [1, 2], "train loss": [3.0, 2.0], "val loss": [4.0, 3.0]})
    assert plots.task_loss_sum(bare, "val").tolist() == [4.0, 3.0]


def test_kpis_below_the_floor_are_marked_not_hidden():
    h = _history(1.0)  # R2 = 1 - 8 / epoch^2: -7, -1, 0.11, ...: only epoch 1 below -1
    fig = plots.kpis_and_weights({"1:1:1": h})
    ax = fig.axes[0]
    curve = ax.lines[0]
    assert min(curve.get_ydata()) == -1.0
    markers = [line for line in ax.lines if line.get_marker() == "v"]
    assert len(markers) == 3 and all(list(m.get_xdata()) == [1] for m in markers)
    assert any("below -1" in t for t in _labels(fig))
    fine = h.assign(**{f"train {t} R2": 0.5 for t in ("phi", "mu", "kappa")})
    assert not any("below -1" in t for t in _labels(plots.kpis_and_weights({"a": fine})))


def test_residual_axes_carry_units():
    rng = np.random.default_rng(1)
    data = {k: rng.random(20) for k in ("phi", "mu", "kappa")}
    fig = plots.parameter_predictions(data, data)
    labels = [fig.axes[i].get_xlabel() for i in range(3)]
    assert labels == ["residual φ, predicted − true", "residual μ, predicted − true (GPa)",
                      "residual κ, predicted − true (GPa)"]


def test_styled_writes_parameter_rows_with_their_units():
    table = pd.DataFrame({"network": ["CNN", "CNN"], "parameter": ["phi", "mu"],
                          "MAE": [0.0081, 1.68]})
    out = tables.styled(table, significant=["MAE"])
    assert out.data["parameter"].tolist() == ["φ (fraction)", "μ (GPa)"]
    assert ">0.00810<" in out.to_html() and ">1.68<" in out.to_html()
    assert tables.styled(table, units=False).data["parameter"].tolist() == ["phi", "mu"]
    assert table["parameter"].tolist() == ["phi", "mu"]  # the caller's table is left alone
