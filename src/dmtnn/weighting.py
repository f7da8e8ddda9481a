r"""How task losses combine: the weighting strategies (section 2.3 of the paper).

A strategy is an ``nn.Module`` that turns the per-task losses of a batch into
the total loss (``combine``), reports its current weights (``weights``) and
learns from each finished epoch (``end_epoch``: the training-set KPIs and
mean task losses). Its state travels with the training checkpoint, so a
resumed run continues with the same weights.

- :class:`FixedWeights`: the paper's fixed ratios (1:1:1, 1:10:3);
- :class:`DynamicWeights`: the paper's dynamic strategy, after Dynamic Task
  Prioritization (Guo et al., 2018, "Dynamic task prioritization for multitask
  learning", ECCV): a task whose (smoothed) KPI is low gets a large,
  focal-loss-like weight :func:`dynamic_weight`;
- :class:`UncertaintyWeights`: homoscedastic uncertainty weighting with one
  learnable log-variance per task (Kendall, Gal & Cipolla, 2018, "Multi-task
  learning using uncertainty to weigh losses for scene geometry and
  semantics", CVPR);
- :class:`DWAWeights`: Dynamic Weight Average from the rate at which each
  task's loss falls (Liu, Johns & Davison, 2019, "End-to-end multi-task
  learning with attention", CVPR).

The one registry: :data:`STRATEGIES` names them, :func:`build` makes any of
them by name or from a ratio of fixed weights such as ``"1:10:3"``, and
:func:`from_config` does the same with the options of a configuration's
``loss`` section (the notebooks' names: ``cfg.loss.strategies``).

Caution when comparing them: Xin et al. (2022, "Do current multi-task
optimization methods in deep learning even help?", NeurIPS) and Kurin et al.
(2022, "In defense of the unitary scalarization for deep multi-task
learning", NeurIPS) found that well-tuned equal (or fixed) weights often
match such adaptive methods, and that differences between them are often
within seed-to-seed variation; a comparison therefore needs several seeds per
strategy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

__all__ = [
    "STRATEGIES",
    "WEIGHTINGS",
    "TASKS",
    "dynamic_weight",
    "Weighting",
    "FixedWeights",
    "DynamicWeights",
    "UncertaintyWeights",
    "DWAWeights",
    "parse_ratio",
    "build",
    "from_config",
]

log = logging.getLogger(__name__)

#: The default tasks of :func:`from_config`: porosity, shear and 2D bulk modulus.
TASKS = ("phi", "mu", "kappa")


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    return eps


def _check_sigma(sigma: float, name: str = "sigma") -> float:
    sigma = float(sigma)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"{name} must be a positive finite number, got {sigma}")
    return sigma


def _check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a non-negative finite number, got {gamma}")
    return gamma


def dynamic_weight(k, sigma: float = 1.0, gamma: float = 2, eps: float = 1e-3):
    r"""Focal-loss-like task weight of the dynamic strategy.

    .. math:: w(k) = -\sigma\,(1 - k)^\gamma \log k,
              \qquad k \leftarrow \mathrm{clip}(k, \varepsilon, 1 - \varepsilon)

    The form is that of Dynamic Task Prioritization (Guo et al., 2018): a task
    with a low KPI ``k`` (hard task) gets a large weight, a task near
    ``k = 1`` a weight near 0. The paper's own Eq. 8 is lost in our copy of
    the paper; this is our reconstruction from the text (a focal-loss-like
    weight with a focusing parameter gamma and a scale sigma).

    Parameters
    ----------
    k : float or array_like
        KPI: R2 for a regression task, pixel accuracy for segmentation.
        Clipped to ``[eps, 1 - eps]``, so a KPI <= 0 (a poor R2) gives the
        finite weight at ``eps`` and ``k = 1`` a small positive one. NaN
        stays NaN.
    sigma : float
        Scale, > 0. The weight is proportional to it, so it controls the
        spread between task weights (their absolute differences; with one
        sigma for all tasks their ratios do not change, a sigma per task
        changes those too).
    gamma : float
        Focusing parameter, >= 0: the larger, the faster the weight falls
        as ``k`` approaches 1. ``gamma = 0`` leaves ``-sigma * log(k)``.
    eps : float
        Clipping margin in (0, 0.5).

    Returns
    -------
    float or numpy.ndarray
        A float for a scalar ``k``, else an array of the shape of ``k``.

    Examples
    --------
    >>> round(dynamic_weight(0.5), 6) == round(0.25 * math.log(2), 6)
    True
    """
    sigma, gamma, eps = _check_sigma(sigma), _check_gamma(gamma), _check_eps(eps)
    kc = np.clip(np.asarray(k, dtype=float), eps, 1.0 - eps)
    w = -sigma * (1.0 - kc) ** gamma * np.log(kc)
    return float(w) if w.ndim == 0 else w


class Weighting(nn.Module):
    """Base of the strategies: ``total = sum_t w_t L_t`` with weights from :meth:`weights`."""

    def __init__(self, tasks: Iterable[str]):
        super().__init__()
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("a weighting needs at least one task")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be distinct, got {list(tasks)}")
        self.tasks = tasks

    def weights(self) -> dict[str, float]:
        raise NotImplementedError

    def settings(self) -> dict:
        """The strategy's settings, not what it learned: a resumed run must match them."""
        return {"tasks": list(self.tasks)}

    def _check_losses(self, losses: Mapping[str, object], what: str = "loss") -> None:
        missing = set(self.tasks) - set(losses)
        if missing:
            raise KeyError(f"no {what} for task(s) {sorted(missing)}")

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The total loss of a batch from its per-task losses."""
        self._check_losses(losses)
        w = self.weights()
        return sum(w[t] * losses[t] for t in self.tasks)

    def end_epoch(self, kpis: Mapping[str, float], losses: Mapping[str, float]) -> None:
        """Update from a finished epoch's training KPIs and mean task losses."""

    def get_extra_state(self) -> dict:
        return {}

    def set_extra_state(self, state: dict) -> None:
        pass

    def _check_config(self, state: Mapping, config: Mapping) -> None:
        """Refuse a checkpoint's state made under other settings."""
        diff = [f"{k}: checkpoint {state.get(k)!r}, this run {v!r}"
                for k, v in config.items() if state.get(k) != v]
        if diff:
            raise ValueError(f"checkpoint has another {type(self).__name__} setup "
                             f"({'; '.join(diff)})")


class FixedWeights(Weighting):
    """Constant task weights, e.g. the paper's 1:10:3 (phi:mu:kappa).

    >>> FixedWeights({"phi": 1, "mu": 10, "kappa": 3}).weights()
    {'phi': 1.0, 'mu': 10.0, 'kappa': 3.0}
    """

    def __init__(self, weights: Mapping[str, float]):
        super().__init__(tuple(weights))
        bad = {t: w for t, w in weights.items() if not w >= 0}
        if bad:
            raise ValueError(f"task weights must be non-negative numbers, got {bad}")
        self._w = {t: float(w) for t, w in weights.items()}

    def weights(self) -> dict[str, float]:
        return dict(self._w)

    def settings(self) -> dict:
        return {"weights": dict(self._w)}

    def get_extra_state(self) -> dict:
        return self.settings()

    def set_extra_state(self, state: dict) -> None:
        if state:
            self._check_config(state, self.settings())


class DynamicWeights(Weighting):
    r"""The paper's dynamic strategy: weights from each task's smoothed KPI.

    After every epoch the training KPI :math:`k_t` of each task is clipped to
    ``[eps, 1 - eps]`` (so a very negative R2 cannot dominate the average for
    long) and smoothed by an exponential moving average,
    :math:`\bar k_t \leftarrow \alpha \bar k_t + (1 - \alpha) k_t` (the first
    measured epoch sets :math:`\bar k_t = k_t`); the weight of the next epoch
    is :func:`dynamic_weight` ``(kbar_t, sigma_t, gamma)``. Before the first
    epoch every weight is ``initial``. A NaN KPI leaves :math:`\bar k_t` as it
    was (with a logged warning); a task with no KPI yet keeps ``initial``.

    Parameters
    ----------
    tasks : iterable of str
        Task names.
    sigma : float or mapping of str to float
        Scale of :func:`dynamic_weight`, one for all tasks or one per task
        (then with exactly the task names as keys).
    gamma : float
        Focusing parameter, >= 0.
    alpha : float
        Smoothing of the moving average, in [0, 1); 0 uses the last epoch's
        KPI only.
    eps : float
        Clipping margin of the KPI, in (0, 0.5).
    initial : float
        Every task's weight before the first epoch, >= 0.
    normalize : bool
        Scale the weights to sum to the number of tasks, so that only their
        ratios change from epoch to epoch, not the scale of the total loss.
        Without it (the focal form as written) the weights fall as the KPIs
        rise: in the book run from 1.1-6.9 at epoch 2 to 0.001-0.02 by epoch 9.
        Adam divides each step by a running mean of squared gradients that,
        bias-corrected with beta2 = 0.999, weighs the first thousand steps
        about alike; the large early gradients then keep the later steps
        small, and training stalls within a CPU run's few hundred steps
        (quick profile, 3 seeds each: validation R2 of mu 0.74 as written,
        0.83 normalised). The paper reports late-training weights of order
        1e2 to 1e4 (section 4.2.3), which the focal form does not give.

    Notes
    -----
    The weights are plain floats: no gradient flows through them. The state
    (the settings and :math:`\bar k` per task) is extra state of the module,
    so it travels with ``state_dict``.
    """

    def __init__(self, tasks: Iterable[str], sigma: float | Mapping[str, float] = 1.0,
                 gamma: float = 2, alpha: float = 0.5, eps: float = 1e-3,
                 initial: float = 1.0, normalize: bool = False):
        super().__init__(tasks)
        self.normalize = bool(normalize)
        if isinstance(sigma, Mapping):
            unknown = set(sigma) - set(self.tasks)
            missing = set(self.tasks) - set(sigma)
            if unknown or missing:
                raise ValueError(f"sigma per task must name exactly the tasks {list(self.tasks)}"
                                 f" (unknown {sorted(unknown)}, missing {sorted(missing)})")
            self.sigma = {t: _check_sigma(sigma[t], f"sigma[{t!r}]") for t in self.tasks}
        else:
            s = _check_sigma(sigma)
            self.sigma = {t: s for t in self.tasks}
        self.gamma = _check_gamma(gamma)
        self.alpha = float(alpha)
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
        self.eps = _check_eps(eps)
        self.initial = float(initial)
        if not (self.initial >= 0 and math.isfinite(self.initial)):
            raise ValueError(f"initial must be a non-negative finite number, got {initial}")
        self.kbar: dict[str, float | None] = {t: None for t in self.tasks}

    def weights(self) -> dict[str, float]:
        w = {t: self.initial if self.kbar[t] is None
             else dynamic_weight(self.kbar[t], self.sigma[t], self.gamma, self.eps)
             for t in self.tasks}
        total = sum(w.values())
        if self.normalize and total > 0:
            w = {t: len(w) * v / total for t, v in w.items()}
        return w

    def end_epoch(self, kpis: Mapping[str, float], losses: Mapping[str, float]) -> None:
        self._check_losses(kpis, "KPI")
        for t in self.tasks:
            k = float(kpis[t])
            if math.isnan(k):
                log.warning("task %s: KPI is NaN this epoch; keeping its dynamic weight", t)
                continue
            k = min(max(k, self.eps), 1.0 - self.eps)  # also maps -inf / +inf
            old = self.kbar[t]
            self.kbar[t] = k if old is None else self.alpha * old + (1.0 - self.alpha) * k

    def settings(self) -> dict:
        return {"tasks": list(self.tasks), "sigma": dict(self.sigma), "gamma": self.gamma,
                "alpha": self.alpha, "eps": self.eps, "initial": self.initial,
                "normalize": self.normalize}

    def get_extra_state(self) -> dict:
        return {**self.settings(), "kbar": dict(self.kbar)}

    def set_extra_state(self, state: dict) -> None:
        state = {"normalize": False, **state}  # checkpoints from before the option
        self._check_config(state, self.settings())
        self.kbar = {t: None if state["kbar"][t] is None else float(state["kbar"][t])
                     for t in self.tasks}


class UncertaintyWeights(Weighting):
    r"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, 2018).

    One learnable :math:`s_t = \log \sigma_t^2` per task (the parameter vector
    ``log_var``, in the order of ``tasks``), trained with the network:

    .. math:: L = \sum_t \tfrac12 e^{-s_t} L_t + \tfrac12 s_t .

    :meth:`weights` reports the effective weights :math:`\tfrac12 e^{-s_t}`.
    The total may be negative (it is a negative log-likelihood up to a
    constant).

    Parameters
    ----------
    tasks : iterable of str
        Task names.
    init_log_var : float or mapping of str to float
        Initial :math:`s_t`, one for all tasks or one per task.
    """

    def __init__(self, tasks: Iterable[str], init_log_var: float | Mapping[str, float] = 0.0):
        super().__init__(tasks)
        if isinstance(init_log_var, Mapping):
            if set(init_log_var) != set(self.tasks):
                raise ValueError(f"init_log_var per task must name exactly the tasks "
                                 f"{list(self.tasks)}, got {sorted(init_log_var)}")
            init = {t: float(init_log_var[t]) for t in self.tasks}
        else:
            init = {t: float(init_log_var) for t in self.tasks}
        bad = {t: v for t, v in init.items() if not math.isfinite(v)}
        if bad:
            raise ValueError(f"init_log_var must be finite, got {bad}")
        self.init_log_var = init
        self.log_var = nn.Parameter(torch.tensor([init[t] for t in self.tasks],
                                                 dtype=torch.float32))

    def weights(self) -> dict[str, float]:
        s = self.log_var.detach().double().cpu()
        return {t: 0.5 * math.exp(-float(s[i])) for i, t in enumerate(self.tasks)}

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self._check_losses(losses)
        total = 0.0
        for i, t in enumerate(self.tasks):
            s = self.log_var[i]
            total = total + 0.5 * torch.exp(-s) * losses[t] + 0.5 * s
        return total

    def settings(self) -> dict:
        return {"tasks": list(self.tasks), "init_log_var": dict(self.init_log_var)}

    def get_extra_state(self) -> dict:
        return self.settings()

    def set_extra_state(self, state: dict) -> None:
        self._check_config(state, self.settings())


class DWAWeights(Weighting):
    r"""Dynamic Weight Average (Liu, Johns & Davison, 2019).

    Epochs 1 and 2 use weight 1 for every task; from epoch :math:`e = 3` on,

    .. math:: r_t = \frac{L_t(e-1)}{L_t(e-2)}, \qquad
              w_t = T\,\frac{\exp(r_t / \tau)}{\sum_j \exp(r_j / \tau)}

    with :math:`L_t` the mean training loss of task :math:`t` in an epoch (as
    passed to :meth:`end_epoch`), :math:`T` the number of tasks and
    :math:`\tau` the temperature; the weights sum to :math:`T`. A task whose
    ratio is not finite (a zero or non-finite loss) counts with
    :math:`r_t = 1`, with a logged warning.

    Parameters
    ----------
    tasks : iterable of str
        Task names.
    temperature : float
        :math:`\tau > 0`; the larger, the closer the weights are to 1.
    """

    def __init__(self, tasks: Iterable[str], temperature: float = 2.0):
        super().__init__(tasks)
        self.temperature = float(temperature)
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive finite number, got {temperature}")
        self.history: list[dict[str, float]] = []  # the last two epochs' mean losses

    def weights(self) -> dict[str, float]:
        if len(self.history) < 2:
            return {t: 1.0 for t in self.tasks}
        before, last = self.history[-2], self.history[-1]
        r = []
        for t in self.tasks:
            ratio = last[t] / before[t] if before[t] != 0 else math.nan
            if not math.isfinite(ratio):
                log.warning("task %s: loss ratio %r / %r is not finite; using 1",
                            t, last[t], before[t])
                ratio = 1.0
            r.append(ratio / self.temperature)
        e = np.exp(np.asarray(r) - max(r))
        w = len(self.tasks) * e / e.sum()
        return {t: float(w[i]) for i, t in enumerate(self.tasks)}

    def end_epoch(self, kpis: Mapping[str, float], losses: Mapping[str, float]) -> None:
        self._check_losses(losses)
        self.history = [*self.history, {t: float(losses[t]) for t in self.tasks}][-2:]

    def settings(self) -> dict:
        return {"tasks": list(self.tasks), "temperature": self.temperature}

    def get_extra_state(self) -> dict:
        return {**self.settings(), "history": [dict(h) for h in self.history]}

    def set_extra_state(self, state: dict) -> None:
        self._check_config(state, self.settings())
        self.history = [{t: float(h[t]) for t in self.tasks} for h in state["history"]][-2:]



# -- the registry ------------------------------------------------------------------

#: Strategy names and their classes.
STRATEGIES: dict[str, type[Weighting]] = {
    "fixed": FixedWeights,
    "dynamic": DynamicWeights,
    "uncertainty": UncertaintyWeights,
    "dwa": DWAWeights,
}

#: The names :func:`build` knows (besides ratios such as ``"1:10:3"``).
WEIGHTINGS = tuple(STRATEGIES)


def parse_ratio(strategy: str, tasks: Iterable[str]) -> dict[str, float] | None:
    """Fixed weights from a ratio such as ``"1:10:3"`` (in the order of ``tasks``).

    Returns ``None`` when ``strategy`` is not a ratio (has no ``":"``).

    >>> parse_ratio("1:10:3", ("phi", "mu", "kappa"))
    {'phi': 1.0, 'mu': 10.0, 'kappa': 3.0}
    """
    if ":" not in strategy:
        return None
    tasks = tuple(tasks)
    try:
        ratio = [float(w) for w in strategy.split(":")]
    except ValueError:
        ratio = []
    if len(ratio) != len(tasks):
        raise ValueError(f"weight ratio {strategy!r} must give {len(tasks)} numbers "
                         f"{':'.join(tasks)}, e.g. {':'.join(['1'] * len(tasks))!r}")
    return dict(zip(tasks, ratio, strict=True))


def build(strategy: str, tasks: Iterable[str], **options) -> Weighting:
    """Make a weighting strategy by name or from a ratio of fixed weights.

    Parameters
    ----------
    strategy : str
        A key of :data:`STRATEGIES` (``"fixed"``, ``"dynamic"``,
        ``"uncertainty"``, ``"dwa"``; any case), or a ratio of fixed weights
        in the order of ``tasks``, such as ``"1:10:3"``.
    tasks : iterable of str
        Task names.
    **options
        Keyword arguments of the strategy's class. For ``"fixed"``:
        ``weights``, a mapping with exactly the task names as keys (default
        all 1); a ratio takes none.

    Returns
    -------
    Weighting

    Examples
    --------
    >>> build("fixed", ["phi", "mu"], weights={"phi": 1, "mu": 10}).weights()
    {'phi': 1.0, 'mu': 10.0}
    >>> build("1:10:3", ["phi", "mu", "kappa"]).weights()
    {'phi': 1.0, 'mu': 10.0, 'kappa': 3.0}
    """
    tasks = tuple(tasks)
    ratio = parse_ratio(str(strategy), tasks)
    if ratio is not None:
        if options:
            raise TypeError(f"a weight ratio takes no options, got {sorted(options)}")
        return build("fixed", tasks, weights=ratio)
    key = str(strategy).strip().lower()
    if key not in STRATEGIES:
        raise ValueError(f"unknown weighting {strategy!r}; valid names: "
                         f"{', '.join(WEIGHTINGS)}, or a ratio such as '1:10:3'")
    if key == "fixed":
        weights = options.pop("weights", None)
        if options:
            raise TypeError(f"unexpected option(s) for 'fixed': {sorted(options)}")
        if weights is None:
            weights = {t: 1.0 for t in tasks}
        if set(weights) != set(tasks) or len(set(tasks)) != len(tasks):
            raise ValueError(f"fixed weights must name exactly the tasks {list(tasks)}, "
                             f"got {sorted(weights)}")
        return FixedWeights({t: weights[t] for t in tasks})
    return STRATEGIES[key](tasks, **options)


def _config_options(loss) -> dict[str, dict]:
    """Each strategy's options as a configuration's ``loss`` section sets them."""
    return {"fixed": {}, "uncertainty": {},
            "dynamic": {"sigma": loss.sigma, "gamma": loss.gamma, "alpha": loss.alpha,
                        "normalize": loss.normalize},
            "dwa": {"temperature": loss.temperature}}


def from_config(cfg, strategy: str | None = None, tasks: Iterable[str] = TASKS) -> Weighting:
    """The strategy ``strategy`` (default ``cfg.loss.strategy``) with ``cfg.loss``'s options.

    Parameters
    ----------
    cfg : Config
        Its ``loss`` section gives the dynamic strategy's sigma, gamma and
        alpha, and DWA's temperature.
    strategy : str, optional
        As for :func:`build`: ``"dynamic"``, ``"uncertainty"``, ``"dwa"``,
        ``"fixed"`` or a ratio such as ``"1:10:3"`` (phi:mu:kappa).
    tasks : iterable of str
        Task names (default porosity, shear and bulk modulus).
    """
    strategy = strategy or cfg.loss.strategy
    key = str(strategy).strip().lower()
    return build(strategy, tasks, **_config_options(cfg.loss).get(key, {}))
