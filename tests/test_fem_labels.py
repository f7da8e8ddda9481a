"""Elastic labels of a dataset: values, caching, resume after a kill, non-convergence."""

from dataclasses import replace

import numpy as np
import pytest

from dmtnn import fem
from dmtnn.artifacts import store_for
from dmtnn.data import build_dataset
from dmtnn.data.fem_labels import LABEL_FIELDS, fem_labels, labels_table, real_labels, trend_ratio
from dmtnn.data.real import available
from dmtnn.morphology import porosity


def test_labels_match_a_direct_call_and_respect_the_bounds(tiny_cfg):
    ds = build_dataset(tiny_cfg)
    labels = fem_labels(tiny_cfg, ds, progress=False)
    berea = labels["Berea"]["label"]
    assert set(berea) == set(LABEL_FIELDS) and berea["kappa"].shape == (12,)
    assert set(labels["Castle Gate"]) == {"label", "truth"}
    assert np.allclose(berea["phi"], porosity(ds["Berea"].label, axis=(1, 2)))
    direct = fem.elastic_moduli(ds["Berea"].label[:3])
    assert np.allclose(berea["kappa"][:3], direct.kappa, rtol=1e-4)
    k_hs, m_hs = fem.hashin_shtrikman_upper_2d(berea["phi"], *fem.solid_moduli_2d(36.6, 45.0))
    assert berea["converged"].all()
    assert np.all(berea["kappa"] <= k_hs * (1 + 1e-6)) and np.all(berea["kappa"] > 0)


def test_resume_after_a_kill_computes_only_what_is_missing(tiny_cfg, monkeypatch):
    cfg = replace(tiny_cfg, fem=replace(tiny_cfg.fem, chunk=5))  # 12 images -> parts of 5, 5, 2
    ds = build_dataset(cfg)
    real_solver, calls = fem.elastic_moduli, []

    def dies_on_second_part(images, **kw):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_solver(images, **kw)

    monkeypatch.setattr(fem, "elastic_moduli", dies_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        fem_labels(cfg, ds, kinds=("label",), progress=False)
    assert store_for(cfg).status("labels/Berea_label/part0000.npz", "x") == "stale"  # kept
    calls.clear()
    monkeypatch.setattr(fem, "elastic_moduli", lambda images, **kw: (calls.append(len(images)),
                                                                    real_solver(images, **kw))[1])
    done = fem_labels(cfg, ds, kinds=("label",), progress=False)
    assert calls == [5, 2, 3]  # Berea parts 1 and 2, then Castle Gate; part 0 was kept
    assert done["Berea"]["label"]["kappa"].shape == (12,)
    assert "labels/Berea_label/part0000.npz" not in store_for(cfg).manifest()  # merged


def test_unconverged_solves_are_stored_as_nan(tiny_cfg, monkeypatch):
    ds = build_dataset(tiny_cfg)
    real_solver = fem.elastic_moduli
    monkeypatch.setattr(fem, "elastic_moduli",
                        lambda images, **kw: real_solver(images, **{**kw, "max_iter": 1}))
    out = fem_labels(tiny_cfg, ds, kinds=("label",), progress=False)["Berea"]["label"]
    assert not out["converged"].any() and np.isnan(out["kappa"]).all()


def test_trend_ratio_against_a_linear_reference():
    phi = np.array([0.1, 0.2, 0.3, 0.4])
    reference = {"phi": phi, "kappa": 10 - 20 * phi, "converged": np.ones(4, bool)}
    sample = {"phi": np.array([0.2, 0.25, 0.3]), "kappa": np.array([3.0, 5.0, np.nan]),
              "converged": np.array([True, True, False])}
    assert trend_ratio(sample, reference, "kappa").tolist() == pytest.approx([0.5, 1.0])


def test_labels_table_counts_and_real_windows(tiny_cfg):
    ds = build_dataset(tiny_cfg)
    table = labels_table(fem_labels(tiny_cfg, ds, progress=False))
    assert table["n"].tolist() == [12, 12, 3, 3] and (table["converged"] == 1).all()
    if "icl_400" not in available():
        pytest.skip("real Berea volume absent")
    real = real_labels(tiny_cfg, "icl_400", n_images=5)
    assert real["kappa"].shape == (5,) and real["converged"].all()
    assert np.all((real["phi"] > 0) & (real["phi"] < 0.6))


def test_labels_on_a_local_dask_cluster_equal_the_local_ones(tiny_cfg, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
    ds = build_dataset(tiny_cfg)
    here = fem_labels(tiny_cfg, ds, kinds=("label",), progress=False)
    monkeypatch.setenv("DMTNN_ARTIFACTS", str(tmp_path / "on-dask"))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        there = fem_labels(tiny_cfg, build_dataset(tiny_cfg), kinds=("label",), client=client,
                           progress=False)
    for rock in here:
        for field in ("phi", "kappa", "mu", "converged"):
            assert np.allclose(here[rock]["label"][field], there[rock]["label"][field])
