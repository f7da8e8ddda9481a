"""Result tables and verdicts (dmtnn.reports), and the paper's numbers kept in one place."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dmtnn
from dmtnn.comparison import PAPER_PA, PAPER_R2, PAPER_REV_UM, PAPER_WEIGHTS_R2
from dmtnn.config import RevConfig
from dmtnn.reports import (
    compare_intervals,
    lower_of,
    moduli_rev_table,
    paper_comparison,
    r2_summary,
    r2_table,
    rev_table,
    rock_table,
    segmentation_table,
    verdict,
)
from dmtnn.rev import RevCurves
from dmtnn.samples import Samples

SRC = Path(dmtnn.__file__).parent


def test_r2_table_scores_and_counts_left_out():
    y = {"phi": np.array([0.1, 0.2, 0.3]), "mu": np.array([10.0, 20.0, 30.0]),
         "kappa": np.array([5.0, 6.0, 7.0])}
    truth = Samples(np.zeros((3, 4, 4), np.uint8), dict(y))
    mean = {k: np.full(3, v.mean()) for k, v in y.items()}
    with_nan = {**y, "mu": np.array([10.0, np.nan, 30.0]), "kappa": np.full(3, np.nan)}
    t = r2_table({"exact": y, "mean": mean, "nan": with_nan}, truth)
    assert np.isnan(t.loc[("nan", "kappa"), "R2"]) and t.loc[("nan", "kappa"), "left out"] == 3
    assert t.loc[("exact", "mu"), "R2"] == 1.0
    assert t.loc[("mean", "kappa"), "R2"] == pytest.approx(0.0)
    assert t.loc[("mean", "phi"), "relative error"] == pytest.approx((1 + 0 + 1 / 3) / 3)  # |0.2 - y| / y
    assert t.loc[("nan", "mu"), "left out"] == 1 and t.loc[("nan", "mu"), "R2"] == 1.0
    s = r2_summary(t, paper={"exact": {"phi": 0.9}})
    assert list(s.index) == ["exact", "mean", "nan"]
    assert s.loc["exact", "paper phi"] == 0.9 and np.isnan(s.loc["mean", "paper phi"])
    # by default, the paper's R2 from dmtnn.comparison
    paper = r2_summary(t.rename(index={"exact": "DMTNN"}, level="method"))
    assert paper.loc["DMTNN", "paper mu"] == PAPER_R2["DMTNN"]["mu"]


def test_rock_table_intervals():
    rng = np.random.default_rng(0)
    y = {k: rng.normal(size=12) + 5 for k in ("phi", "mu", "kappa")}
    truth = Samples(np.zeros((12, 4, 4), np.uint8), dict(y))
    noisy = {k: v + rng.normal(scale=0.3, size=12) for k, v in y.items()}
    noisy["kappa"][0] = np.nan
    t = rock_table({"exact": y, "noisy": noisy}, truth, np.repeat([0, 1], 6),
                   ["A", "B"], n_boot=200)
    exact = t.loc[("A", "exact", "mu")]
    assert (exact["R2"], exact["R2 low"], exact["R2 high"]) == (1.0, 1.0, 1.0)
    assert t.loc[("A", "noisy", "kappa"), "images"] == 5  # the NaN prediction is left out
    row = t.loc[("B", "noisy", "mu")]
    assert row["MAE low"] <= row["MAE"] <= row["MAE high"]


def test_scores_by_split_one_prediction_per_set_and_lower_of(monkeypatch):
    """R2 and MAE from one prediction of each set; a single-task net has NaN elsewhere."""
    import dmtnn.multitask as mt
    import dmtnn.reports as reports

    y = np.linspace(0.1, 0.3, 12)
    sets = {"a": Samples(np.zeros((12, 4, 4), np.uint8), {"phi": y, "mu": 2 * y, "kappa": 3 * y})}
    calls = []

    def predict(res, gray, cfg):
        calls.append(res)
        return {t: v + res["offset"] for t, v in sets["a"].targets.items() if t in res["tasks"]}

    monkeypatch.setattr(mt, "predict_parameters", predict)
    nets = {"good": {"offset": 0.001, "tasks": ("phi", "mu", "kappa")},
            "bad": {"offset": 0.05, "tasks": ("phi",)}}
    scored = reports.scores_by_split(nets, sets, cfg=None, n_boot=200)
    assert len(calls) == 2  # each network predicts each set once for both scores
    assert scored["MAE"].loc[("good", "mu"), "a"] == pytest.approx(0.001)
    assert scored["R2"].loc[("good", "phi"), "a"] > scored["R2"].loc[("bad", "phi"), "a"]
    assert np.isnan(scored["R2"].loc[("bad", "kappa"), "a"])
    assert lower_of(scored["MAE"], "good", "bad", "phi", "a") == "first"
    assert lower_of(scored["MAE"], "bad", "good", "phi", "a") == "second"


def test_lower_of_neither_when_the_intervals_overlap_or_are_missing():
    table = pd.DataFrame({"network": ["x", "y", "z"], "parameter": ["phi"] * 3,
                          "s low": [0.1, 0.15, np.nan], "s high": [0.2, 0.3, np.nan]}
                         ).set_index(["network", "parameter"])
    assert lower_of(table, "x", "y", "phi", "s") == "neither"
    assert lower_of(table, "x", "z", "phi", "s") == "neither"
    assert compare_intervals((0.1, np.nan), (0.5, 0.6)) == "not separable"  # no interval
    assert compare_intervals((0.1, 0.2), (0.5, 0.6)) == "second higher"


def test_verdict_counts_and_refuses_impossible_counts():
    assert verdict(3, 0, 3) == "supported for 3 of 3"
    assert verdict(0, 1, 1) == "contradicted"
    assert verdict(0, 0, 1) == "not separable"
    with pytest.raises(ValueError, match="cases out of 3"):
        verdict(2, 2, 3)


def test_segmentation_table_per_rock_with_the_all_grain_floor():
    label = np.ones((4, 2, 2), np.uint8)
    label[0, 0, 0] = label[1, 0, 0] = label[2, 0, 0] = label[2, 1, 1] = 0
    test = {"label": label, "rock": np.array([0, 0, 1, 1]), "names": np.array(["A", "B"])}
    t = segmentation_table(test, {"perfect": label.copy()})
    assert t.loc[("A", "perfect"), "PA"] == 1.0
    # rock A: 2 pores in 8 pixels; rock B: 2 in 8; pooled: 4 in 16
    assert t.loc[("A", "all grain"), "PA"] == pytest.approx(6 / 8)
    assert t.loc[("all", "all grain"), "PA"] == pytest.approx(12 / 16)
    assert t.loc[("all", "all grain"), "porosity error"] == pytest.approx(-4 / 16)
    with pytest.raises(KeyError, match="truth"):
        segmentation_table(test, {}, "truth")
    cmp = paper_comparison(t, {"perfect": "LinkNet"})
    assert cmp.loc["perfect", "PA (ours)"] == 1.0
    assert "0.97" in cmp.loc["perfect", "PA (paper)"]
    assert cmp.loc["perfect", "PA (paper)"] == PAPER_PA["LinkNet"]


def test_rev_tables_in_micrometres_beside_the_paper():
    sizes = np.array([10, 20, 40, 80])
    random = pd.DataFrame({"size": sizes, "mean": [0.2, 0.21, 0.2, 0.2],
                           "cv": [0.5, 0.2, 0.04, 0.01]})
    growing = pd.DataFrame({"size": sizes, "mean": [0.3, 0.22, 0.2, 0.2],
                            "dev": [0.1, 0.05, 0.01, 0.005]})
    rev = RevConfig()
    t = rev_table({"rock": RevCurves(random, growing, voxel_um=2.0)}, rev)
    assert list(t.columns) == ["sample", "φ", "field (µm)", "REV, spread (µm)",
                               "REV, growing (µm)", "paper (µm)"]
    assert t.loc[0, "field (µm)"] == 160.0 and t.loc[0, "paper (µm)"] == PAPER_REV_UM == 450.0
    assert t.loc[0, "REV, spread (µm)"] == 80.0 and t.loc[0, "REV, growing (µm)"] == 80.0
    moduli = pd.DataFrame({"size": [16, 32, 64], "size_um": [16 * 8.0, 32 * 8.0, 64 * 8.0],
                           "kappa_cv": [0.3, 0.05, 0.02], "mu_cv": [0.4, 0.3, 0.05],
                           "phi_cv": [0.1, 0.01, 0.01]})
    m = moduli_rev_table({"rock": moduli}, cv_tol=0.1).set_index("rock")
    assert m.loc["rock", "REV κ (µm)"] == 32 * 8.0 and m.loc["rock", "REV μ (µm)"] == 64 * 8.0
    assert m.loc["rock", "REV φ (µm)"] == 16 * 8.0  # cv <= cv_tol counts


def _dmtnn_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return {n for n in names if n.split(".")[0] == "dmtnn"}


def test_comparison_is_a_leaf():
    """Every module may import the paper's numbers: comparison imports only artifacts."""
    assert _dmtnn_imports(SRC / "comparison.py") <= {"dmtnn.artifacts"}


def test_the_papers_numbers_are_defined_only_in_comparison():
    defined = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for t in targets:
                if isinstance(t, ast.Name) and t.id.startswith("PAPER_"):
                    defined[t.id] = path.relative_to(SRC).as_posix()
    moved = ("PAPER_R2", "PAPER_WEIGHTS_R2", "PAPER_PA", "PAPER_PARAMS", "PAPER_REV_PX",
             "PAPER_REV_UM", "PAPER_REL_ERROR_GAIN")
    assert {k: defined.get(k) for k in moved} == dict.fromkeys(moved, "comparison.py")
    assert set(PAPER_WEIGHTS_R2) == {"1:10:3", "dynamic"}
