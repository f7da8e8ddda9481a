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
    difference_table,
    difference_text,
    moduli_rev_table,
    overall_verdict,
    paper_comparison,
    r2_summary,
    r2_table,
    relative_difference,
    rev_table,
    rock_table,
    scores_by_split,
    seed_predictions,
    seed_table,
    segmentation_table,
    strategy_table,
)
from dmtnn.rev import RevCurves
from dmtnn.samples import Samples

SRC = Path(dmtnn.__file__).parent


def samples(**targets):
    n = len(next(iter(targets.values())))
    return Samples(np.zeros((n, 4, 4), np.uint8), {k: np.asarray(v, float) for k, v in targets.items()})


def test_r2_table_scores_and_counts_left_out():
    y = {"phi": np.array([0.1, 0.2, 0.3]), "mu": np.array([10.0, 20.0, 30.0]),
         "kappa": np.array([5.0, 6.0, 7.0])}
    truth = samples(**y)
    mean = {k: np.full(3, v.mean()) for k, v in y.items()}
    with_nan = {**y, "mu": np.array([10.0, np.nan, 30.0]), "kappa": np.full(3, np.nan)}
    t = r2_table({"exact": y, "mean": mean, "nan": with_nan, "phi only": {"phi": y["phi"]}},
                 truth)
    assert np.isnan(t.loc[("nan", "kappa"), "R2"]) and t.loc[("nan", "kappa"), "left out"] == 3
    assert t.loc[("exact", "mu"), "R2"] == 1.0 and t.loc[("exact", "mu"), "seeds"] == 1
    assert np.isnan(t.loc[("exact", "mu"), "R2 std"])  # one seed: no spread
    assert t.loc[("mean", "kappa"), "R2"] == pytest.approx(0.0)
    assert t.loc[("mean", "mu"), "RMSE"] == pytest.approx(np.sqrt(200 / 3))  # GPa
    assert t.loc[("mean", "mu"), "MAE"] == pytest.approx(20 / 3)
    assert t.loc[("mean", "phi"), "relative error"] == pytest.approx((1 + 0 + 1 / 3) / 3)  # |0.2 - y| / y
    assert t.loc[("nan", "mu"), "left out"] == 1 and t.loc[("nan", "mu"), "R2"] == 1.0
    assert t.loc[("phi only", "mu"), "seeds"] == 0 and t.loc[("phi only", "mu"), "left out"] == 3
    assert t.loc[("exact", "phi"), "unit"] == "fraction" and t.loc[("exact", "mu"), "unit"] == "GPa"
    s = r2_summary(t, paper={"exact": {"phi": 0.9}})
    assert list(s.index) == ["exact", "mean", "nan", "phi only"]
    assert s.loc["exact", "paper phi"] == 0.9 and np.isnan(s.loc["mean", "paper phi"])
    # by default, the paper's R2 from dmtnn.comparison
    paper = r2_summary(t.rename(index={"exact": "DMTNN"}, level="method"))
    assert paper.loc["DMTNN", "paper mu"] == PAPER_R2["DMTNN"]["mu"]


def test_scores_over_seeds_beside_the_training_scores():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    truth = samples(phi=y / 10, mu=y, kappa=y)
    # seed 0 exact; seed 1 off by +1 everywhere (MAE 1, R2 = 1 - 4 / 5 = 0.2)
    two = {k: np.stack([v, v + 1]) for k, v in truth.targets.items()}
    train_pred = {"net": {k: np.stack([v, v * 0 + v.mean()]) for k, v in truth.targets.items()}}
    long = seed_table({"net": two}, truth, train=(train_pred, truth))
    assert long.loc[("net", "mu", 1), "R2"] == pytest.approx(0.2)
    assert long.loc[("net", "mu", 1), "MAE"] == 1.0 and long.loc[("net", "mu", 1), "train R2"] == 0.0
    t = r2_table({"net": two, "fem": {"mu": y}}, truth, train=(train_pred, truth))
    row = t.loc[("net", "mu")]
    assert row["seeds"] == 2 and row["R2"] == pytest.approx(0.6)
    assert row["R2 std"] == pytest.approx(np.std([1.0, 0.2], ddof=1))
    assert (row["MAE"], row["MAE std"]) == (pytest.approx(0.5), pytest.approx(np.sqrt(0.5)))
    assert row["train R2"] == 0.5 and row["fit"] == "under-fit"  # mean of 1 and 0
    assert np.isnan(t.loc[("fem", "mu"), "train R2"]) and pd.isna(t.loc[("fem", "mu"), "fit"])
    s = r2_summary(t)
    assert s.loc["net", "R2 mu std"] == row["R2 std"] and s.loc["net", "train R2 mu"] == 0.5


def test_rock_table_per_rock_over_seeds():
    rng = np.random.default_rng(0)
    y = {k: rng.normal(size=12) + 5 for k in ("phi", "mu", "kappa")}
    truth = samples(**y)
    noisy = {k: np.stack([v + rng.normal(scale=0.3, size=12) for _ in range(3)])
             for k, v in y.items()}
    noisy["kappa"][1, 0] = np.nan
    t = rock_table({"exact": y, "noisy": noisy}, truth, np.repeat([0, 1], 6), ["A", "B"])
    assert t.loc[("A", "exact", "mu"), "R2"] == 1.0 and t.loc[("A", "exact", "mu"), "images"] == 6
    assert t.loc[("A", "noisy", "kappa"), "left out"] == 1  # a NaN in any seed
    row = t.loc[("B", "noisy", "mu")]
    by_hand = [np.abs(noisy["mu"][k, 6:] - y["mu"][6:]).mean() for k in range(3)]
    assert row["seeds"] == 3 and row["MAE"] == pytest.approx(np.mean(by_hand))
    assert row["MAE std"] == pytest.approx(np.std(by_hand, ddof=1))


def test_scores_by_split_over_seeds_and_clusters():
    y = np.linspace(0.1, 0.3, 12)
    sets = {"train": samples(phi=y, mu=2 * y, kappa=3 * y),
            "test": samples(phi=y, mu=2 * y, kappa=3 * y)}
    preds = {s: {"good": {k: np.stack([v + 0.001, v + 0.003]) for k, v in d.targets.items()},
                 "bad": {"phi": d.targets["phi"] + 0.05}} for s, d in sets.items()}
    scored = scores_by_split(preds, sets)
    mae_t = scored["MAE"]
    assert mae_t.loc[("good", "mu"), "test"] == pytest.approx(0.002)
    assert mae_t.loc[("good", "mu"), "test std"] == pytest.approx(np.sqrt(2e-6))
    assert scored["R2"].loc[("good", "phi"), "train"] > scored["R2"].loc[("bad", "phi"), "train"]
    assert np.isnan(scored["R2"].loc[("bad", "kappa"), "test"])
    slabs = {s: np.repeat(np.arange(4), 3) for s in sets}
    iv = scores_by_split(preds, sets, scores=("MAE",), clusters=slabs, n_resamples=200)["MAE"]
    assert iv.loc[("good", "mu"), "test"] == mae_t.loc[("good", "mu"), "test"]
    # constant errors: every resample gives the same MAE
    assert iv.loc[("bad", "phi"), "test low"] == pytest.approx(0.05)
    assert iv.loc[("bad", "phi"), "test high"] == pytest.approx(0.05)
    with pytest.raises(KeyError, match="no predictions of the sets"):
        scores_by_split({"test": preds["test"]}, sets)
    # a set without clusters (training images have no slab): its score, no interval
    part = scores_by_split(preds, sets, scores=("MAE",), clusters={"test": slabs["test"]},
                           n_resamples=200)["MAE"]
    assert part.loc[("bad", "phi"), "train"] == pytest.approx(0.05)
    assert np.isnan(part.loc[("bad", "phi"), "train low"])
    assert part.loc[("bad", "phi"), "test low"] == pytest.approx(0.05)


def test_seed_predictions_stack_the_runs(monkeypatch):
    import dmtnn.multitask as mt

    gray = np.zeros((3, 4, 4), np.uint8)
    monkeypatch.setattr(mt, "predict_parameters",
                        lambda res, g, cfg: {t: np.full(len(g), res) for t in ("phi", "mu")})
    out = seed_predictions({"one": 1.0, "seeds": [1.0, 2.0]}, gray, cfg=None)
    assert out["one"]["phi"].shape == (1, 3) and out["seeds"]["mu"].shape == (2, 3)
    np.testing.assert_array_equal(out["seeds"]["mu"][:, 0], [1.0, 2.0])


def test_strategy_table_mean_and_spread_over_seeds():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    truth = samples(phi=y / 10, mu=y, kappa=y)
    preds = {"1:10:3": {k: np.stack([v, v + 1]) for k, v in truth.targets.items()},
             "dynamic": {k: v[None] for k, v in truth.targets.items()}}
    table = strategy_table(preds, truth, paper={"dynamic": {"phi": 0.94}},
                           train=(preds, truth))
    assert table.loc["1:10:3", "seeds"] == 2 and table.loc["dynamic", "seeds"] == 1
    assert table.loc["1:10:3", "R2 mu mean"] == pytest.approx(0.6)
    assert table.loc["1:10:3", "MAE mu mean"] == 0.5 and np.isnan(table.loc["dynamic", "R2 mu std"])
    assert table.loc["dynamic", "paper phi (train)"] == 0.94
    assert table.loc["1:10:3", "train R2 mu mean"] == pytest.approx(0.6)


def test_difference_table_verdicts():
    rng = np.random.default_rng(4)
    slab = np.repeat(np.arange(8), 5)
    y = {k: rng.normal(size=40) + 5 for k in ("phi", "mu", "kappa")}
    truth = samples(**y)
    good = {k: np.stack([v + rng.normal(0, 0.05, 40) for _ in range(2)]) for k, v in y.items()}
    bad = {k: v + rng.normal(0, 0.8, 40) for k, v in y.items()}
    preds = {"good": good, "bad": bad, "same": good, "phi only": {"phi": bad["phi"]}}
    d = difference_table(preds, truth, slab, [("good", "bad"), ("bad", "good", ["mu"]),
                                              ("good", "same"), ("good", "phi only")],
                         n_resamples=300).sort_index()
    assert set(d.loc[("good", "bad"), "verdict"]) == {"supported"}  # R2, RMSE and MAE
    assert set(d.loc[("bad", "good"), "verdict"]) == {"contradicted"}
    same = d.loc[("good", "same", "kappa", "R2")]
    assert (same["difference"], same["difference low"], same["difference high"]) == (0, 0, 0)
    assert same["verdict"] == "not separable" and "same value" in same["note"]
    assert list(d.loc[("good", "phi only")].index.get_level_values("parameter").unique()) == ["phi"]
    row = d.loc[("good", "bad", "mu", "MAE")]
    assert row["unit"] == "GPa" and row["clusters"] == 8 and row["images"] == 40
    assert row["a mean"] == pytest.approx(np.mean([np.abs(g - y["mu"]).mean() for g in good["mu"]]))
    assert row["difference"] == pytest.approx(row["a mean"] - row["b mean"])
    assert len(row["difference per seed"].split(", ")) == 2
    per_seed = [np.abs(g - y["mu"]).mean() - row["b mean"] for g in good["mu"]]
    assert (row["difference seed min"], row["difference seed max"]) == pytest.approx(
        (min(per_seed), max(per_seed)))
    half = 12.706 * np.std(per_seed, ddof=1) / np.sqrt(2)  # Student's t, one degree of freedom
    assert (row["difference seed low"], row["difference seed high"]) == pytest.approx(
        (np.mean(per_seed) - half, np.mean(per_seed) + half), rel=1e-4)
    # "good" does not fit its training images: no verdict for any of its claims
    train = ({"good": {k: np.stack([np.zeros(40)] * 2) for k in y}, "bad": y}, truth)
    d = difference_table(preds, truth, slab, [("good", "bad")], scores=("MAE",), train=train,
                         n_resamples=300)
    assert set(d["verdict"]) == {"not decided: under-fit"}
    assert d.loc[("good", "bad", "phi", "MAE"), "train R2 b"] == 1.0
    assert d.loc[("good", "bad", "phi", "MAE"), "train R2 a"] < 0
    # per group (rock), then all images
    rock = np.where(slab < 4, "A", "B")
    g = difference_table(preds, truth, slab, [("good", "bad", ["mu"])], scores=("R2",), by=rock,
                         n_resamples=300)
    assert list(g.index.get_level_values("group")) == ["A", "B", "all"]
    assert g.loc["A", "clusters"].item() == 4 and g.loc["all", "clusters"].item() == 8
    # the relative error has no unit; the MAE has the parameter's
    u = difference_table(preds, truth, slab, [("good", "bad", ["mu"])],
                         scores=("relative error", "MAE"), n_resamples=50)["unit"]
    assert u.tolist() == ["", "GPa"]
    # relative=True: the ratio bootstrapped, which relative_difference then keeps
    r = difference_table(preds, truth, slab, [("good", "bad", ["mu"])], scores=("MAE",),
                         n_resamples=200, relative=True)
    row = r.iloc[0]
    assert row["relative"] == pytest.approx(row["difference"] / row["b mean"])
    assert row["relative low"] < row["relative"] < row["relative high"] < 0
    assert row["relative seed min"] <= row["relative seed max"] < 0
    assert row["relative seed low"] <= row["relative seed min"] <= row["relative seed high"]
    kept = relative_difference(r, 0.10)
    assert kept["relative low"].iloc[0] == row["relative low"]
    assert kept["margin verdict"].iloc[0] == "supported"


def test_relative_difference_against_a_margin():
    """Hand-made differences: a's error 20 % below b's with intervals on either side of 10 %."""
    idx = pd.MultiIndex.from_tuples(
        [("a", "b", "mu", "MAE"), ("a", "b", "kappa", "MAE"), ("a", "b", "phi", "MAE"),
         ("a", "b", "mu", "R2"), ("a", "b", "kappa", "relative error"),
         ("a", "b", "phi", "R2")], names=["a", "b", "parameter", "score"])
    t = pd.DataFrame({"b mean": [2.0, 2.0, 2.0, 0.5, 1.0, -0.2],
                      "difference": [-0.4, -0.4, -0.1, 0.1, -0.05, 0.1],
                      "difference low": [-0.6, -0.5, -0.15, 0.06, -0.3, 0.05],
                      "difference high": [-0.3, -0.1, -0.05, 0.2, 0.2, 0.2],
                      "verdict": ["supported", "supported", "supported", "supported",
                                  "not decided: under-fit", "supported"]}, index=idx)
    r = relative_difference(t, 0.10)
    assert r["relative"].tolist()[:5] == pytest.approx([-0.2, -0.2, -0.05, 0.2, -0.05])
    assert r["relative high"].iloc[0] == pytest.approx(-0.15)
    # MAE: [-30 %, -15 %] is beyond -10 %; [-25 %, -5 %] straddles it; [-7.5 %, -2.5 %]
    # is lower, but by less than 10 %; R2 (higher is better): [+12 %, +40 %] beyond +10 %
    assert r["margin verdict"].tolist()[:4] == ["supported", "not separable", "contradicted",
                                                "supported"]
    assert r["margin verdict"].iloc[4] == "not decided: under-fit"  # the fit rule first
    assert np.isnan(r["relative"].iloc[5]) and r["margin verdict"].iloc[5] == "not separable"
    # margin 0 is the plain paired verdict
    assert relative_difference(t, 0)["margin verdict"].iloc[2] == "supported"
    # every seed must clear the margin too: mu's seeds -30 % and -5 % of b's MAE, R2 +6 %
    seeds = t.assign(**{"difference seed min": [-0.6, np.nan, -0.12, 0.03, 0, 0.1],
                        "difference seed max": [-0.1, np.nan, -0.08, 0.3, 0, 0.1]})
    assert relative_difference(seeds, 0.10)["margin verdict"].tolist()[:4] == [
        "not separable", "not separable", "contradicted", "not separable"]
    # and so must the seed interval: mu's seeds -30 % and -20 %, their interval [-40 %, -5 %]
    spread = t.assign(**{"difference seed min": [-0.6, np.nan, np.nan, np.nan, 0, np.nan],
                         "difference seed max": [-0.4, np.nan, np.nan, np.nan, 0, np.nan],
                         "difference seed low": [-0.8, np.nan, np.nan, np.nan, 0, np.nan],
                         "difference seed high": [-0.1, np.nan, np.nan, np.nan, 0, np.nan]})
    assert relative_difference(spread, 0.10)["margin verdict"].iloc[0] == "not separable"
    assert relative_difference(spread.assign(**{"difference seed high": -0.35}), 0.10)[
        "margin verdict"].iloc[0] == "supported"
    with pytest.raises(ValueError, match="margin"):
        relative_difference(t, -0.1)


def test_overall_verdict_names_or_counts_the_cases():
    assert overall_verdict(["supported"] * 3) == "supported"
    assert overall_verdict({"phi": "not separable", "mu": "contradicted"}) == \
        "contradicted for mu; not separable for phi"
    assert overall_verdict(pd.Series({"phi": "supported", "mu": "not decided: under-fit"})) == \
        "supported for phi; not decided: under-fit for mu"
    assert overall_verdict(["supported", "not separable"]) == \
        "supported for 1; not separable for 1 (of 2)"
    with pytest.raises(ValueError, match="unknown verdicts"):
        overall_verdict(["first higher"])
    with pytest.raises(ValueError, match="empty"):
        overall_verdict([])


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


def test_difference_text_formats_one_comparison_and_refuses_others():
    rng = np.random.default_rng(5)
    slab = np.repeat(np.arange(6), 4)
    y = {k: rng.normal(size=24) + 5 for k in ("phi", "mu", "kappa")}
    good = {k: v + 0.1 for k, v in y.items()}  # a constant error: R2, MAE known exactly
    bad = {k: v + 1.0 for k, v in y.items()}
    d = difference_table({"good": good, "bad": bad}, samples(**y), slab, [("good", "bad")],
                         scores=("MAE",), n_resamples=200)
    # MAE 0.1 - 1.0 on every resample: the interval is the point -0.9
    assert difference_text(d, "good", "bad", "MAE").to_dict() == {
        k: "-0.90 [-0.90, -0.90]" for k in ("phi", "mu", "kappa")}
    assert difference_text(d, "good", "bad", "MAE", digits=3)["mu"] == "-0.900 [-0.900, -0.900]"
    with pytest.raises(KeyError, match="no rows with a='bad', b='good', score='MAE'"):
        difference_text(d, "bad", "good", "MAE")
    g = difference_table({"good": good, "bad": bad}, samples(**y), slab, [("good", "bad")],
                         scores=("MAE",), by=slab < 3, n_resamples=200)
    with pytest.raises(ValueError, match="has groups"):
        difference_text(g, "good", "bad", "MAE")
