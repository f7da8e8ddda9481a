import io
import logging
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dmtnn import weighting
from dmtnn.config import load_profile
from dmtnn.weighting import (
    STRATEGIES,
    WEIGHTINGS,
    DWAWeights,
    DynamicWeights,
    FixedWeights,
    UncertaintyWeights,
    Weighting,
    build,
    dynamic_weight,
    from_config,
    parse_ratio,
)

EPS = 1e-3


def _w(k, sigma=1.0, gamma=2.0):
    """The reconstructed Eq. 8, written out independently of the module."""
    return -sigma * (1 - k) ** gamma * math.log(k)


def _through_disk(state):
    """Save and load a state the way the training checkpoints do."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


# -- dynamic_weight ----------------------------------------------------------------


def test_dynamic_weight_by_hand():
    assert dynamic_weight(0.5) == pytest.approx(0.25 * math.log(2))
    assert dynamic_weight(0.5, gamma=0) == pytest.approx(math.log(2))
    assert dynamic_weight(0.2, sigma=1.0, gamma=1) == pytest.approx(-0.8 * math.log(0.2))
    assert isinstance(dynamic_weight(0.5), float)


def test_dynamic_weight_clamps():
    at_top = dynamic_weight(1.0)
    assert at_top == pytest.approx(-(EPS**2) * math.log(1 - EPS))
    assert 0 < at_top < 1e-8
    at_eps = _w(EPS)
    for k in (0.0, -0.5, -1e6, -math.inf):
        w = dynamic_weight(k)
        assert math.isfinite(w)
        assert w == pytest.approx(at_eps)
    assert dynamic_weight(0.0, eps=0.01) == pytest.approx(_w(0.01))


def test_dynamic_weight_scales_linearly_with_sigma():
    for k in (0.05, 0.5, 0.9):
        assert dynamic_weight(k, sigma=3.0) == pytest.approx(3 * dynamic_weight(k))
        assert dynamic_weight(k, sigma=0.5) == pytest.approx(0.5 * dynamic_weight(k))


@pytest.mark.parametrize("gamma", [0, 0.5, 1, 2, 5])
def test_dynamic_weight_decreases_with_kpi_on_arrays(gamma):
    k = np.linspace(0.01, 0.99, 99)
    w = dynamic_weight(k, gamma=gamma)
    assert isinstance(w, np.ndarray) and w.shape == k.shape
    assert np.all(np.diff(w) < 0)
    assert w[10] == pytest.approx(_w(k[10], gamma=gamma))
    grid = dynamic_weight(np.array([[0.5, 2.0], [-1.0, 0.1]]), gamma=gamma)
    assert grid.shape == (2, 2) and np.all(np.isfinite(grid))


@pytest.mark.parametrize("kwargs", [{"sigma": 0}, {"sigma": -1}, {"gamma": -1},
                                    {"eps": 0}, {"eps": 0.5}])
def test_dynamic_weight_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        dynamic_weight(0.5, **kwargs)


# -- DynamicWeights ----------------------------------------------------------------

EPOCHS = [  # training KPIs: phi is a pixel accuracy or R2, mu an R2 that starts negative
    {"phi": 0.6, "mu": -0.4},
    {"phi": 0.8, "mu": 0.5},
    {"phi": math.nan, "mu": 0.9},
]


def test_dynamic_weights_follow_the_moving_average():
    dw = DynamicWeights(("phi", "mu"), sigma=1.0, gamma=2, alpha=0.5, eps=EPS, initial=1.0)
    assert dw.weights() == {"phi": 1.0, "mu": 1.0}
    losses = {"phi": 1.0, "mu": 1.0}

    dw.end_epoch(EPOCHS[0], losses)  # first epoch sets kbar; mu's R2 < 0 clamps to eps
    w = dw.weights()
    assert w["phi"] == pytest.approx(_w(0.6))
    assert w["mu"] == pytest.approx(_w(EPS))
    assert math.isfinite(w["mu"]) and w["mu"] > w["phi"]

    dw.end_epoch(EPOCHS[1], losses)  # kbar = 0.5 kbar + 0.5 k
    w = dw.weights()
    assert w["phi"] == pytest.approx(_w(0.7))
    assert w["mu"] == pytest.approx(_w(0.5 * EPS + 0.25))

    dw.end_epoch(EPOCHS[2], losses)  # phi NaN: kbar stays 0.7
    w = dw.weights()
    assert w["phi"] == pytest.approx(_w(0.7))
    assert w["mu"] == pytest.approx(_w(0.5 * (0.5 * EPS + 0.25) + 0.45))
    assert all(type(v) is float for v in w.values())


def test_dynamic_weights_alpha_and_gamma():
    dw = DynamicWeights(("a",), gamma=1, alpha=0.8)
    dw.end_epoch({"a": 0.5}, {"a": 1.0})
    dw.end_epoch({"a": 0.9}, {"a": 1.0})
    assert dw.weights()["a"] == pytest.approx(_w(0.8 * 0.5 + 0.2 * 0.9, gamma=1))


def test_dynamic_weights_nan_kpi(caplog):
    dw = DynamicWeights(("phi", "kappa"), initial=2.0)
    with caplog.at_level(logging.WARNING, logger="dmtnn.weighting"):
        dw.end_epoch({"phi": 0.5, "kappa": math.nan}, {"phi": 1.0, "kappa": 1.0})
    assert "kappa" in caplog.text and "NaN" in caplog.text
    assert dw.weights() == {"phi": pytest.approx(_w(0.5)), "kappa": 2.0}  # no KPI yet: initial
    dw.end_epoch({"phi": math.nan, "kappa": 0.3}, {"phi": 1.0, "kappa": 1.0})
    assert dw.weights() == {"phi": pytest.approx(_w(0.5)), "kappa": pytest.approx(_w(0.3))}


def test_dynamic_weights_per_task_sigma():
    dw = DynamicWeights(("phi", "mu", "kappa"), sigma={"phi": 1.0, "mu": 10.0, "kappa": 3.0})
    dw.end_epoch({"phi": 0.5, "mu": 0.5, "kappa": 0.2}, {"phi": 1, "mu": 1, "kappa": 1})
    w = dw.weights()
    assert w["phi"] == pytest.approx(_w(0.5))
    assert w["mu"] == pytest.approx(10 * _w(0.5))
    assert w["kappa"] == pytest.approx(_w(0.2, sigma=3.0))
    with pytest.raises(ValueError, match="sigma"):
        DynamicWeights(("phi", "mu"), sigma={"phi": 1.0})
    with pytest.raises(ValueError, match="sigma"):
        DynamicWeights(("phi",), sigma={"phi": 1.0, "mu": 2.0})
    with pytest.raises(ValueError, match="sigma"):
        DynamicWeights(("phi",), sigma={"phi": -1.0})


@pytest.mark.parametrize("kwargs", [{"alpha": 1.0}, {"alpha": -0.1}, {"gamma": -1},
                                    {"eps": 0.7}, {"initial": -1}, {"sigma": 0}])
def test_dynamic_weights_reject_bad_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DynamicWeights(("phi",), **kwargs)


def test_dynamic_weights_combine_uses_the_weights():
    dw = DynamicWeights(("phi", "mu"))
    dw.end_epoch({"phi": 0.5, "mu": 0.9}, {"phi": 1.0, "mu": 1.0})
    total = dw.combine({"phi": torch.tensor(2.0), "mu": torch.tensor(3.0)})
    assert float(total) == pytest.approx(2 * _w(0.5) + 3 * _w(0.9))


def test_dynamic_weights_resume_continues_identically():
    losses = {"phi": 1.0, "mu": 1.0}
    a = DynamicWeights(("phi", "mu"), sigma={"phi": 1.0, "mu": 2.0}, alpha=0.3)
    a.end_epoch(EPOCHS[0], losses)
    a.end_epoch(EPOCHS[1], losses)
    b = DynamicWeights(("phi", "mu"), sigma={"phi": 1.0, "mu": 2.0}, alpha=0.3)
    assert b.weights() != a.weights()
    b.load_state_dict(_through_disk(a.state_dict()))
    assert b.weights() == a.weights()
    third = {"phi": 0.7, "mu": 0.95}
    a.end_epoch(third, losses)
    b.end_epoch(third, losses)
    assert b.weights() == a.weights()
    other = DynamicWeights(("phi", "mu"), sigma={"phi": 1.0, "mu": 2.0}, alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        other.load_state_dict(a.state_dict())


def test_normalised_dynamic_weights_keep_the_ratios_and_sum_to_the_task_count():
    losses = {"phi": 1.0, "mu": 1.0, "kappa": 1.0}
    plain = DynamicWeights(("phi", "mu", "kappa"))
    norm = DynamicWeights(("phi", "mu", "kappa"), normalize=True)
    assert norm.weights() == {"phi": 1.0, "mu": 1.0, "kappa": 1.0}  # before any epoch
    for kpis in ({"phi": 0.6, "mu": 0.2, "kappa": 0.3}, {"phi": 0.95, "mu": 0.8, "kappa": 0.85}):
        plain.end_epoch(kpis, losses)
        norm.end_epoch(kpis, losses)
        p, n = plain.weights(), norm.weights()
        assert sum(n.values()) == pytest.approx(3.0)
        assert n["mu"] / n["phi"] == pytest.approx(p["mu"] / p["phi"])
        assert n["kappa"] / n["phi"] == pytest.approx(p["kappa"] / p["phi"])
    # as the KPIs rise the plain weights shrink (from 3 to a sum of 0.29); the normalised do not
    assert sum(p.values()) < 0.3
    # a checkpoint made before the option resumes as the plain (unnormalised) strategy
    state = plain.state_dict()
    del state["_extra_state"]["normalize"]
    fresh = DynamicWeights(("phi", "mu", "kappa"))
    fresh.load_state_dict(state)
    assert fresh.weights() == plain.weights()
    with pytest.raises(ValueError, match="normalize"):
        DynamicWeights(("phi", "mu", "kappa"), normalize=True).load_state_dict(state)


# -- UncertaintyWeights ------------------------------------------------------------


def test_uncertainty_combine_matches_the_formula():
    uw = UncertaintyWeights(("phi", "mu"), init_log_var={"phi": 0.0, "mu": 1.0})
    total = uw.combine({"phi": torch.tensor(2.0), "mu": torch.tensor(3.0)})
    expect = 0.5 * 2.0 + 0.0 + 0.5 * math.exp(-1.0) * 3.0 + 0.5 * 1.0
    assert float(total.detach()) == pytest.approx(expect)
    assert uw.weights() == {"phi": pytest.approx(0.5), "mu": pytest.approx(0.5 * math.exp(-1))}


def test_uncertainty_gradients_reach_log_var():
    uw = UncertaintyWeights(("phi", "mu"), init_log_var={"phi": 0.0, "mu": 1.0})
    x = torch.tensor(1.0, requires_grad=True)
    total = uw.combine({"phi": 2.0 * x, "mu": 3.0 * x})
    total.backward()
    assert uw.log_var.requires_grad
    # d/ds (0.5 e^-s L + 0.5 s) = -0.5 e^-s L + 0.5
    expect = [-0.5 * 2.0 + 0.5, -0.5 * math.exp(-1.0) * 3.0 + 0.5]
    assert uw.log_var.grad.tolist() == pytest.approx(expect)
    assert float(x.grad) == pytest.approx(0.5 * 2.0 + 0.5 * math.exp(-1.0) * 3.0)
    assert [p is uw.log_var for p in uw.parameters()] == [True]


def test_uncertainty_default_and_resume():
    uw = UncertaintyWeights(("phi", "mu", "kappa"))
    assert uw.weights() == {"phi": 0.5, "mu": 0.5, "kappa": 0.5}
    with torch.no_grad():
        uw.log_var.copy_(torch.tensor([0.2, -0.3, 1.5]))
    fresh = UncertaintyWeights(("phi", "mu", "kappa"))
    fresh.load_state_dict(_through_disk(uw.state_dict()))
    assert fresh.weights() == uw.weights()
    assert fresh.weights()["kappa"] == pytest.approx(0.5 * math.exp(-1.5))
    with pytest.raises(ValueError, match="init_log_var"):
        UncertaintyWeights(("phi", "mu", "kappa"), init_log_var=1.0).load_state_dict(uw.state_dict())


# -- DWAWeights --------------------------------------------------------------------


def _softmax_weights(r, temperature):
    e = [math.exp(x / temperature) for x in r]
    return [len(r) * x / sum(e) for x in e]


def test_dwa_by_hand():
    tasks = ("phi", "mu", "kappa")
    dwa = DWAWeights(tasks, temperature=2.0)
    assert dwa.weights() == {t: 1.0 for t in tasks}
    dwa.end_epoch({}, {"phi": 4.0, "mu": 2.0, "kappa": 1.0})
    assert dwa.weights() == {t: 1.0 for t in tasks}  # epoch 2
    dwa.end_epoch({}, {"phi": 2.0, "mu": 2.0, "kappa": 1.5})
    w = dwa.weights()  # epoch 3: r = 0.5, 1.0, 1.5
    assert [w[t] for t in tasks] == pytest.approx(_softmax_weights([0.5, 1.0, 1.5], 2.0))
    assert sum(w.values()) == pytest.approx(3.0)
    assert w["kappa"] > w["mu"] > w["phi"]  # the slowest-falling loss gets the most weight
    dwa.end_epoch({}, {"phi": 1.0, "mu": 3.0, "kappa": 1.5})
    w = dwa.weights()  # epoch 4 uses epochs 3 and 2 only: r = 0.5, 1.5, 1.0
    assert [w[t] for t in tasks] == pytest.approx(_softmax_weights([0.5, 1.5, 1.0], 2.0))
    assert sum(w.values()) == pytest.approx(3.0)


def test_dwa_temperature_and_resume():
    dwa = DWAWeights(("a", "b"), temperature=0.5)
    dwa.end_epoch({}, {"a": 1.0, "b": 1.0})
    dwa.end_epoch({}, {"a": 0.5, "b": 1.0})
    w = dwa.weights()
    assert [w["a"], w["b"]] == pytest.approx(_softmax_weights([0.5, 1.0], 0.5))
    fresh = DWAWeights(("a", "b"), temperature=0.5)
    fresh.load_state_dict(_through_disk(dwa.state_dict()))
    assert fresh.weights() == w
    for m in (dwa, fresh):
        m.end_epoch({}, {"a": 0.4, "b": 0.2})
    assert fresh.weights() == dwa.weights() != w
    with pytest.raises(ValueError, match="temperature"):
        DWAWeights(("a", "b"), temperature=2.0).load_state_dict(dwa.state_dict())
    with pytest.raises(ValueError, match="temperature"):
        DWAWeights(("a",), temperature=0)


def test_dwa_zero_loss_falls_back_to_ratio_one():
    dwa = DWAWeights(("a", "b"))
    dwa.end_epoch({}, {"a": 0.0, "b": 2.0})
    dwa.end_epoch({}, {"a": 1.0, "b": 2.0})
    w = dwa.weights()
    assert w == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}


# -- factory and shared behaviour --------------------------------------------------


def test_build_by_name():
    tasks = ("phi", "mu", "kappa")
    assert WEIGHTINGS == ("fixed", "dynamic", "uncertainty", "dwa")
    fixed = build("fixed", tasks)
    assert isinstance(fixed, FixedWeights) and fixed.weights() == {t: 1.0 for t in tasks}
    ratios = build("fixed", tasks, weights={"phi": 1, "mu": 10, "kappa": 3})
    assert ratios.weights() == {"phi": 1.0, "mu": 10.0, "kappa": 3.0}
    dyn = build("dynamic", tasks, sigma=2.0, gamma=1)
    assert isinstance(dyn, DynamicWeights) and dyn.sigma == {t: 2.0 for t in tasks}
    assert dyn.gamma == 1.0
    unc = build("Uncertainty", tasks, init_log_var=1.0)
    assert isinstance(unc, UncertaintyWeights)
    assert unc.log_var.tolist() == [1.0, 1.0, 1.0]
    dwa = build("dwa", tasks, temperature=3.0)
    assert isinstance(dwa, DWAWeights) and dwa.temperature == 3.0
    assert all(w.tasks == tasks for w in (fixed, dyn, unc, dwa))


def test_build_errors():
    with pytest.raises(ValueError, match="fixed, dynamic, uncertainty, dwa, or a ratio"):
        build("gradnorm", ("phi",))
    with pytest.raises(ValueError, match="exactly the tasks"):
        build("fixed", ("phi", "mu"), weights={"phi": 1.0})
    with pytest.raises(TypeError):
        build("fixed", ("phi",), sigma=2.0)
    with pytest.raises(TypeError):
        build("dwa", ("phi",), sigma=2.0)


@pytest.mark.parametrize("name", WEIGHTINGS)
def test_combine_with_a_missing_task_raises(name):
    w = build(name, ("phi", "mu"))
    with pytest.raises(KeyError, match="mu"):
        w.combine({"phi": torch.tensor(1.0)})
    ok = w.combine({"phi": torch.tensor(1.0), "mu": torch.tensor(1.0)})
    assert torch.isfinite(ok)


@pytest.mark.parametrize("name", WEIGHTINGS)
def test_weightings_need_distinct_tasks(name):
    with pytest.raises(ValueError):
        build(name, ())
    if name != "fixed":
        with pytest.raises(ValueError, match="distinct"):
            build(name, ("phi", "phi"))


# -- one registry: names, ratios, configuration --------------------------------------


def test_registry_names_every_strategy_once():
    assert tuple(STRATEGIES) == WEIGHTINGS
    assert all(issubclass(cls, Weighting) for cls in STRATEGIES.values())
    assert not hasattr(weighting, "make_weighting")  # one entry point: build / from_config


def test_ratios_are_fixed_weights_in_task_order():
    tasks = ("phi", "mu", "kappa")
    assert parse_ratio("dynamic", tasks) is None
    assert parse_ratio("1:10:3", tasks) == {"phi": 1.0, "mu": 10.0, "kappa": 3.0}
    w = build("1:10:3", tasks)
    assert isinstance(w, FixedWeights) and w.weights() == {"phi": 1.0, "mu": 10.0, "kappa": 3.0}
    # the same strategy, hence the same checkpoint identity, as the explicit form
    explicit = build("fixed", tasks, weights={"phi": 1, "mu": 10, "kappa": 3})
    assert w.settings() == explicit.settings()
    assert build("0.5:2", ("a", "b")).weights() == {"a": 0.5, "b": 2.0}
    with pytest.raises(ValueError, match="phi:mu:kappa"):
        build("1:10", tasks)
    with pytest.raises(ValueError, match="phi:mu:kappa"):
        build("1:x:3", tasks)
    with pytest.raises(ValueError, match="non-negative"):
        build("1:-1:3", tasks)
    with pytest.raises(TypeError, match="no options"):
        build("1:1:1", tasks, sigma=2.0)


@pytest.fixture(scope="module")
def cfg():
    return load_profile("ci")


def test_from_config_reads_the_loss_section(cfg):
    lc = replace(cfg.loss, sigma=2.5, gamma=3, alpha=0.25, temperature=4.0, normalize=True)
    c = replace(cfg, loss=lc)
    dyn = from_config(c, "dynamic")
    assert isinstance(dyn, DynamicWeights)
    assert (dyn.sigma, dyn.gamma, dyn.alpha) == ({"phi": 2.5, "mu": 2.5, "kappa": 2.5}, 3.0, 0.25)
    assert dyn.normalize
    dwa = from_config(c, "dwa")
    assert isinstance(dwa, DWAWeights) and dwa.temperature == 4.0
    assert isinstance(from_config(c, "uncertainty"), UncertaintyWeights)
    w = from_config(c, "1:10:3")
    assert isinstance(w, FixedWeights) and w.weights() == {"phi": 1.0, "mu": 10.0, "kappa": 3.0}
    assert from_config(c, "fixed").weights() == {"phi": 1.0, "mu": 1.0, "kappa": 1.0}
    # the default is the configuration's own strategy (the paper's: dynamic)
    assert type(from_config(c)) is STRATEGIES[c.loss.strategy]
    assert from_config(c, "dynamic", ("mu",)).tasks == ("mu",)
    with pytest.raises(ValueError, match="phi:mu:kappa"):
        from_config(c, "1:10")
    with pytest.raises(ValueError, match="unknown weighting 'focal'"):
        from_config(c, "focal")


@pytest.mark.parametrize("strategy", load_profile("ci").loss.strategies)
def test_every_configured_strategy_builds(cfg, strategy):
    w = from_config(cfg, strategy)
    assert w.tasks == ("phi", "mu", "kappa")
    assert np.isfinite(list(w.weights().values())).all()
