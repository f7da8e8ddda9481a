"""Characteristic parameters from images: DMTNN, its baselines, and how they are scored.

The regression tasks are the porosity ``phi`` of the threshold label, and the
FEM shear modulus ``mu`` and 2D bulk modulus ``K`` (kappa) of the same label
(notebook 03). ``mu`` and ``K`` are standardised with training-split
statistics inside the training loop (saved with the checkpoint; predictions
come back in GPa); porosity is not, as in the paper.

- :func:`regression_samples`: images, masks and labels of one split, without
  the images whose FEM solve did not converge;
- :func:`build_network` / :func:`train_network`: any network of
  :mod:`dmtnn.models` with any weighting strategy, through the one training
  loop; runs live in ``artifacts/<profile>/models/<network>-<strategy>-seed<k>``;
- :func:`make_weighting`: a strategy by the names notebook 06 uses;
- :func:`r2_table`, :func:`segment_then_simulate`: scores and the two
  baselines the paper lacks (porosity of the predicted mask; FEM on it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import pandas as pd
from torch import nn

from dmtnn import models
from dmtnn.config import Config
from dmtnn.data.dataset import Dataset
from dmtnn.losses import Weighting, build_weighting
from dmtnn.metrics import mae, mse, r2_score, relative_error
from dmtnn.train import (
    CheckpointMismatch,
    FitResult,
    Samples,
    Task,
    fit,
    predict,
    run_folder,
    seed_everything,
)

__all__ = [
    "REGRESSION",
    "NETWORKS",
    "PAPER_R2",
    "PAPER_WEIGHTS_R2",
    "regression_samples",
    "make_weighting",
    "build_network",
    "train_network",
    "predict_parameters",
    "r2_table",
    "segment_then_simulate",
    "r2_summary",
    "strategy_table",
    "rock_table",
    "best_alternative",
    "scores_by_split",
    "lower_of",
]

log = logging.getLogger(__name__)

#: The three regressions: porosity as is, the moduli standardised.
REGRESSION = (
    Task("phi", "regression"),
    Task("mu", "regression", normalize=True),
    Task("K", "regression", normalize=True),
)

#: Regression networks by name (``dmtnn`` needs the trained segmenter of notebook 04).
NETWORKS = ("dmtnn", "mtnn_ws", "cnn", "hard_sharing", "soft_sharing")

#: The paper's test R2 (section 4.2, Figs. 10 and 11).
PAPER_R2 = {
    "CNN": {"phi": 0.47, "mu": 0.64, "K": 0.58},
    "DMTNN": {"phi": 0.92, "mu": 0.74, "K": 0.79},
}

#: The paper's R2 after 100 epochs per weighting strategy: training-set KPIs read off its
#: Fig. 13 ("~" values), not test scores.
PAPER_WEIGHTS_R2 = {
    "1:10:3": {"phi": 0.89, "mu": 0.82, "K": 0.86},
    "dynamic": {"phi": 0.94, "mu": 0.84, "K": 0.88},
}

_LABEL_KEYS = {"phi": "porosity", "mu": "mu", "K": "kappa"}


def regression_samples(
    ds: Dataset, labels: dict, split: str, rocks=None
) -> tuple[Samples, dict[str, np.ndarray]]:
    """Images, masks and labels of one split, dropping unconverged FEM solves.

    Parameters
    ----------
    ds : Dataset
    labels : dict
        From :func:`dmtnn.data.labels.fem_labels` (uses the ``"label"`` kind).
    split : str
        ``"train"``, ``"val"``, ``"test"`` or ``"heldout"``.
    rocks : sequence of str, optional
        Default: every rock with images in ``split``.

    Returns
    -------
    samples : Samples
        ``gray`` and targets ``phi``, ``mu``, ``K`` (GPa) and ``mask`` (the label).
    info : dict
        ``rock`` (index into ``names``), ``names``, ``truth`` masks when known, and
        ``dropped`` (images left out because their solve did not converge).
    """
    names = [n for n in (rocks or ds.rocks) if len(ds[n].select(split))]
    if not names:
        raise ValueError(f"split {split!r} has no images")
    parts, dropped = [], 0
    for i, name in enumerate(names):
        r = ds[name]
        if r.rock not in labels or "label" not in labels[r.rock]:
            raise KeyError(f"no FEM labels of {r.rock}: run notebook 03 (fem_labels) first")
        lab = labels[r.rock]["label"]
        idx = r.select(split)
        ok = idx[lab["converged"][idx].astype(bool)]
        dropped += len(idx) - len(ok)
        parts.append((i, r, ok, lab))
    gray = np.concatenate([r.gray[ok] for _, r, ok, _ in parts])
    targets = {t: np.concatenate([lab[k][ok] for _, _, ok, lab in parts])
               for t, k in _LABEL_KEYS.items()}
    targets["mask"] = np.concatenate([r.label[ok] for _, r, ok, _ in parts])
    info = {"rock": np.concatenate([np.full(len(ok), i) for i, _, ok, _ in parts]),
            "names": np.array([r.rock for _, r, _, _ in parts]), "dropped": dropped}
    if all(r.truth is not None for _, r, _, _ in parts):
        info["truth"] = np.concatenate([r.truth[ok] for _, r, ok, _ in parts])
    if dropped:
        log.warning("%s split: %d image(s) without a converged FEM label left out", split,
                    dropped)
    return Samples(gray, targets), info


def make_weighting(cfg: Config, strategy: str | None = None) -> Weighting:
    """A weighting strategy by name: a ratio ``"1:10:3"`` (phi:mu:K), ``"dynamic"``,
    ``"uncertainty"`` or ``"dwa"``; default ``cfg.loss.strategy``."""
    strategy = strategy or cfg.loss.strategy
    tasks = tuple(t.name for t in REGRESSION)
    lc = cfg.loss
    if ":" in strategy:
        try:
            ratio = [float(w) for w in strategy.split(":")]
        except ValueError:
            ratio = []
        if len(ratio) != len(tasks):
            raise ValueError(f"weight ratio {strategy!r} must give {len(tasks)} numbers "
                             f"phi:mu:K, e.g. '1:10:3'")
        return build_weighting("fixed", tasks, weights=dict(zip(tasks, ratio, strict=True)))
    options = {"dynamic": {"sigma": lc.sigma, "gamma": lc.gamma, "alpha": lc.alpha},
               "dwa": {"temperature": lc.temperature}, "uncertainty": {}}
    if strategy not in options:
        raise ValueError(f"unknown weighting {strategy!r}; use a ratio such as '1:10:3' or "
                         f"one of {', '.join(options)}")
    return build_weighting(strategy, tasks, **options[strategy])


def _tasks(tasks) -> tuple[Task, ...]:
    if tasks is None:
        return REGRESSION
    chosen = tuple(t for t in REGRESSION if t.name in tasks)
    if len(chosen) != len(set(tasks)):
        raise ValueError(f"tasks must be among {[t.name for t in REGRESSION]}, got {tasks}")
    return chosen


def build_network(cfg: Config, name: str = "dmtnn", *, seed: int = 0, depth: int = 2,
                  tasks=None) -> nn.Module:
    """A regression network of this profile's image size and width, initialised by seed.

    ``depth`` (feature modules per subnet) and ``tasks`` (a subset of phi, mu,
    K: single-task models) apply to DMTNN and MTNN_WS (Appendix A).
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    kwargs = {"image_size": cfg.data.image_size, "width": cfg.train.width}
    if name in ("dmtnn", "mtnn_ws"):
        kwargs.update(depth=depth, tasks=tuple(t.name for t in _tasks(tasks)))
    elif depth != 2 or tasks is not None:
        raise ValueError(f"depth and tasks apply to dmtnn and mtnn_ws, not {name}")
    if name == "dmtnn":
        from dmtnn.segmentation import load_segmenter

        kwargs["segmenter"] = load_segmenter(cfg, "linknet")[0]
    seed_everything(cfg.train.seed + seed, 0)
    return models.build(name, **kwargs)


def train_network(
    cfg: Config,
    train: Samples,
    val: Samples,
    name: str = "dmtnn",
    strategy: str | None = None,
    *,
    seed: int = 0,
    depth: int = 2,
    tasks=None,
    tag: str = "",
    progress: bool | None = None,
) -> FitResult:
    """Train (or resume, or read back) network ``name`` with weighting ``strategy``.

    ``seed`` offsets ``cfg.train.seed`` (initial weights and shuffling); a run
    made under another configuration or other data is started afresh.
    ``depth`` and ``tasks`` give Appendix A's variants (a single task trains
    with weight 1); ``tag`` prefixes the run's folder, so that runs on other
    data (e.g. Appendix A's one rock) never replace the main ones.
    """
    strategy = strategy or cfg.loss.strategy
    chosen = _tasks(tasks)
    tc = replace(cfg.train, seed=cfg.train.seed + seed)
    parts = [tag, name, strategy.replace(":", "-"), f"seed{seed}"]
    if depth != 2:
        parts.append(f"depth{depth}")
    if tasks is not None:
        parts.append("+".join(t.name for t in chosen))
    folder = run_folder(cfg, "-".join(p for p in parts if p))

    def weighting() -> Weighting:
        if len(chosen) < len(REGRESSION):
            return build_weighting("fixed", [t.name for t in chosen])
        return make_weighting(cfg, strategy)

    def run(resume: bool) -> FitResult:
        net = build_network(cfg, name, seed=seed, depth=depth, tasks=tasks)
        return fit(net, chosen, train, val, tc, folder, device=cfg.device,
                   weighting=weighting(), resume=resume, progress=progress)

    try:
        return run(resume=True)
    except CheckpointMismatch as err:
        log.warning("%s; training afresh", err)
        return run(resume=False)


def predict_parameters(result: FitResult, gray: np.ndarray, cfg: Config) -> dict[str, np.ndarray]:
    """The parameters (porosity; moduli in GPa) a trained network predicts for gray slices.

    A single-task network gives its own parameter only.
    """
    tasks = [t for t in REGRESSION if f"train {t.name} loss" in result.history]
    return predict(result.model, gray, tasks, result.scales,
                   batch_size=cfg.train.batch_size, device=cfg.device)


def r2_table(predictions: dict[str, dict[str, np.ndarray]], truth: Samples) -> pd.DataFrame:
    """R2, MSE, MAE and mean relative error per method and parameter.

    Parameters
    ----------
    predictions : dict
        Method -> ``{"phi", "mu", "K"}`` -> predictions in the order of ``truth``.
        NaN predictions (unconverged FEM solves) and parameters a method does not
        predict are left out and counted.
    truth : Samples
        The labels.

    Notes
    -----
    The relative error leaves out zero targets (an image without pores has
    porosity 0), where it is undefined.
    """
    rows = []
    for method, pred in predictions.items():
        for t in REGRESSION:
            y = np.asarray(truth.targets[t.name], float)
            p = np.asarray(pred.get(t.name, np.full(len(y), np.nan)), float)
            ok = np.isfinite(p)
            nz = ok & (y != 0)
            row = {"method": method, "parameter": t.name, "R2": np.nan, "MSE": np.nan,
                   "MAE": np.nan, "relative error": np.nan, "left out": int((~ok).sum())}
            if ok.any():  # a method may not predict this parameter at all
                row.update({"R2": r2_score(p[ok], y[ok]), "MSE": mse(p[ok], y[ok]),
                            "MAE": mae(p[ok], y[ok]),
                            "relative error": relative_error(p[nz], y[nz])})
            rows.append(row)
    return pd.DataFrame(rows).set_index(["method", "parameter"])


def segment_then_simulate(masks: np.ndarray, cfg: Config) -> tuple[dict[str, np.ndarray], float]:
    """Porosity and FEM moduli of predicted masks: the "segment, then simulate" baseline.

    The same solver and settings as the labels (:func:`dmtnn.data.labels.label_chunk`).
    Returns the parameters (unconverged solves as NaN) and the time per image (s).
    """
    from dmtnn.data.labels import label_chunk, solver_settings

    settings, device = solver_settings(cfg)
    t0 = time.perf_counter()
    res = label_chunk(masks, settings, device)
    seconds = (time.perf_counter() - t0) / len(masks)
    return {"phi": res["porosity"], "mu": res["mu"], "K": res["kappa"]}, seconds


def r2_summary(table: pd.DataFrame, paper: dict[str, dict[str, float]] | None = None
               ) -> pd.DataFrame:
    """One row per method: our test R2 of phi, mu, K and, where it has one, the paper's.

    ``table`` comes from :func:`r2_table`; ``paper`` maps method names to the
    paper's R2 (default :data:`PAPER_R2`).
    """
    paper = PAPER_R2 if paper is None else paper
    names = [t.name for t in REGRESSION]
    wide = table["R2"].unstack("parameter")[names]
    wide = wide.loc[table.index.get_level_values("method").unique()]  # the table's order
    wide.columns = [f"R2 {n}" for n in names]
    for n in names:
        wide[f"paper {n}"] = [paper.get(m, {}).get(n, np.nan) for m in wide.index]
    return wide


def strategy_table(runs: dict[str, list[FitResult]], test: Samples, cfg: Config,
                   paper: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """Test R2 per weighting strategy: mean and standard deviation over seeds, and the
    paper's values, which are *training*-set KPIs (columns ``paper <task> (train)``).

    Parameters
    ----------
    runs : dict
        Strategy -> trained runs, one per seed.
    test : Samples
        The test labels.
    paper : dict, optional
        Strategy -> the paper's R2 (default :data:`PAPER_WEIGHTS_R2`).
    """
    paper = PAPER_WEIGHTS_R2 if paper is None else paper
    rows = []
    for strategy, results in runs.items():
        r2 = scores_by_split(dict(enumerate(results)), {"test": test}, cfg,
                             scores={"R2": r2_score})["R2"]["test"]
        r2 = r2.unstack("parameter")  # one row per seed
        row = {"strategy": strategy, "seeds": len(results)}
        for t in REGRESSION:
            v = r2[t.name].to_numpy()
            row[f"R2 {t.name} mean"] = v.mean()
            row[f"R2 {t.name} std"] = v.std(ddof=1) if len(v) > 1 else np.nan
        for t in REGRESSION:
            row[f"paper {t.name} (train)"] = paper.get(strategy, {}).get(t.name, np.nan)
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def rock_table(predictions: dict[str, dict[str, np.ndarray]], truth: Samples,
               rock: np.ndarray, names, *, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> pd.DataFrame:
    """Per rock, method and parameter: R2 and MAE with bootstrap intervals over images.

    Parameters
    ----------
    predictions : dict
        Method -> ``{"phi", "mu", "K"}`` -> predictions in the order of ``truth``
        (NaN predictions are left out).
    truth : Samples
    rock, names : arrays
        Rock index of each image and the rock names (from :func:`regression_samples`).
    n_boot, level, seed
        Bootstrap resamples, interval coverage and seed
        (:func:`dmtnn.metrics.bootstrap_ci`).
    """
    from dmtnn.metrics import bootstrap_ci

    rows = []
    for i, name in enumerate(names):
        sel = np.asarray(rock) == i
        for method, pred in predictions.items():
            for t in REGRESSION:
                y = np.asarray(truth.targets[t.name], float)[sel]
                p = np.asarray(pred.get(t.name, np.full(len(sel), np.nan)), float)[sel]
                ok = np.isfinite(p)
                row = {"rock": str(name), "method": method, "parameter": t.name,
                       "images": int(ok.sum())}
                if ok.sum() >= 2:
                    r2, lo, hi = bootstrap_ci(r2_score, p[ok], y[ok], n_boot=n_boot,
                                              level=level, seed=seed)
                    m, mlo, mhi = bootstrap_ci(mae, p[ok], y[ok], n_boot=n_boot,
                                               level=level, seed=seed)
                    row.update({"R2": r2, "R2 low": lo, "R2 high": hi,
                                "MAE": m, "MAE low": mlo, "MAE high": mhi})
                rows.append(row)
    return pd.DataFrame(rows).set_index(["rock", "method", "parameter"])


def best_alternative(runs: dict[str, FitResult], exclude: str) -> str:
    """The strategy other than ``exclude`` with the best validation score (no test data used)."""
    scores = {s: float(r.history["val score"].max()) for s, r in runs.items() if s != exclude}
    if not scores:
        raise ValueError(f"no strategy other than {exclude!r}")
    return max(scores, key=scores.get)


def scores_by_split(runs: dict[str, FitResult], splits: dict[str, Samples], cfg: Config,
                    *, scores=None, n_boot: int = 0, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Scores of several networks on several sets of images (Appendix A tables).

    Each network predicts each set once; every score in ``scores`` (name ->
    ``score(pred, target)``; default R2 and MAE) is computed from those
    predictions. Returns, per score, a frame indexed by (network, parameter)
    with one column per set; NaN where a (single-task) network does not
    predict the parameter. With ``n_boot`` > 0, columns ``<set> low`` and
    ``<set> high`` hold a 95 % bootstrap interval over the set's images. The
    MAE does not depend on the spread of a set's targets, which R2 does (a few
    similar slices give an unstable R2).
    """
    from dmtnn.metrics import bootstrap_ci

    scores = {"R2": r2_score, "MAE": mae} if scores is None else scores
    rows: dict[str, list[dict]] = {name: [] for name in scores}
    for net, res in runs.items():
        preds = {s: predict_parameters(res, samples.gray, cfg) for s, samples in splits.items()}
        for t in REGRESSION:
            for name, score in scores.items():
                row = {"network": net, "parameter": t.name}
                for s, samples in splits.items():
                    p, y = preds[s].get(t.name), samples.targets[t.name]
                    if p is None:
                        row[s] = np.nan
                    elif n_boot:
                        row[s], row[f"{s} low"], row[f"{s} high"] = bootstrap_ci(
                            score, p, y, n_boot=n_boot, seed=seed)
                    else:
                        row[s] = score(p, y)
                rows[name].append(row)
    return {name: pd.DataFrame(r).set_index(["network", "parameter"])
            for name, r in rows.items()}


def lower_of(table: pd.DataFrame, first: str, second: str, parameter: str, split: str) -> str:
    """"first", "second" or "neither": whose score in ``table`` is lower beyond both
    intervals (columns ``<split> low`` / ``<split> high``; for an error, lower is better)."""
    from dmtnn.metrics import compare_intervals

    a, b = table.loc[(first, parameter)], table.loc[(second, parameter)]
    verdict = compare_intervals((a[f"{split} low"], a[f"{split} high"]),
                                (b[f"{split} low"], b[f"{split} high"]))
    return {"first higher": "second", "second higher": "first"}.get(verdict, "neither")
