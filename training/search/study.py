"""The search: one Optuna study per family (TPE, seeded) over its hyper-parameters
(``space``), each trial fitted on the validation split's train part and judged by the
run's key metric on its validation events, within a time budget.

- Warm-up: every family gets ``WARMUP`` trials, round-robin, cheapest family first,
  starting with its schema defaults (so the winner is never below the best default on
  validation); a family is not judged on its defaults alone (EASE with its defaults
  trails ItemKNN on MovieLens; with a recency-weighted history it leads).
- Then the next trial goes to the family of highest priority, its best value so far plus
  an exploration bonus that shrinks with its number of trials
  (``best + EXPLORATION x leader's best / sqrt(trials)``): the leading families get most
  trials, a close second keeps getting some. One study with the family as a categorical
  parameter locked on to the first family that did well (118 of 166 trials ItemKNN) and
  hardly tried EASE; a relative bonus on the best value alone never came back to EASE
  after its defaults.
- A trial that would end after the budget is pruned: a family whose expected cost
  (``budget.CostModel``) exceeds what is left is not tried; a trial that is running when
  the budget runs out is stopped between the steps of its fit (the fits report progress
  after each epoch / iteration / block) and recorded as pruned, and the search ends. So
  it overruns its budget by at most one fit step and one evaluation.
- A family that cannot fit the data at all (EASE above its item limit, or its first
  dense inverse expected to take longer than the whole budget) is left out, saying why.
- A trial whose fit fails (e.g. a diverging factorisation) is recorded as failed; the
  search goes on. ``check_stop`` raising (a cancel) ends the search at once.

Every trial is recorded (``TrialRecord``) and handed to ``on_trial`` as it ends."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import TPESampler
from optuna.trial import TrialState

from recommender.families import FAMILIES, Family
from training.families.base import FamilyLimitExceeded, FitContext
from training.families.fit import family_scorer, fit_family
from training.pipeline.metrics import evaluate
from training.search.budget import Budget, Clock, CostModel, TrialOverrun, ease_prior_seconds
from training.search.records import COMPLETE, FAILED, PRUNED, SearchResult, TrialRecord
from training.search.space import default_trial, suggest
from training.search.validation import SearchData

# Cheapest first: the defaults the search starts with.
DEFAULT_ORDER = ("popularity", "svd", "ease", "itemknn", "als", "lightfm")
# Trials of each family before the priorities decide, and how much a family with few
# trials is favoured (see the docstring).
WARMUP = 4
EXPLORATION = 0.3
# A fit that fails for its hyper-parameters (not for a bug or a cancel).
_TRIAL_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError, FamilyLimitExceeded)


@dataclass(frozen=True)
class SearchConfig:
    budget_seconds: float
    metric: str  # the key the trials are judged on, e.g. "precision@10"
    k: int
    seed: int = 42
    num_threads: int = 1
    families: tuple[str, ...] = DEFAULT_ORDER
    ease_max_items: int = 20_000


def _excluded(config: SearchConfig, n_items: int) -> dict[str, str]:
    excluded = {}
    if "ease" in config.families:
        if n_items > config.ease_max_items:
            excluded["ease"] = (
                f"{n_items:,} items is above EASE's limit of {config.ease_max_items:,}"
            )
        elif ease_prior_seconds(n_items) > config.budget_seconds:
            excluded["ease"] = (
                f"its dense inverse of {n_items:,} items is expected to take "
                f"~{ease_prior_seconds(n_items):.0f} s, more than the budget"
            )
    return excluded


class _FamilyStudy:
    """One family's TPE study and what its trials gave."""

    def __init__(self, family: Family, seed: int) -> None:
        self.family = family
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            sampler = TPESampler(seed=seed, multivariate=True)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.study.enqueue_trial(default_trial(family))
        self.trials = 0
        self.best: float | None = None

    def priority(self, leader: float) -> tuple[float, int]:
        """Larger first: families in their warm-up (the fewest trials first), then by best
        value plus the exploration bonus. A family none of whose trials finished comes
        last."""
        if self.trials < WARMUP:
            return math.inf, -self.trials
        if self.best is None:
            return -math.inf, 0
        return self.best + EXPLORATION * leader / math.sqrt(self.trials), 0

    def ask(self) -> tuple[optuna.trial.Trial, dict[str, Any]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            trial = self.study.ask()
            return trial, suggest(trial, self.family)

    def tell(self, trial: optuna.trial.Trial, record: TrialRecord) -> None:
        self.trials += 1
        if record.state == COMPLETE:
            self.study.tell(trial, record.value)
            self.best = record.value if self.best is None else max(self.best, record.value)
        else:
            state = TrialState.PRUNED if record.state == PRUNED else TrialState.FAIL
            self.study.tell(trial, state=state)


def run_search(
    data: SearchData,
    config: SearchConfig,
    *,
    clock: Clock,
    on_trial: Callable[[TrialRecord, Budget], None] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> SearchResult:
    """Search until the budget is spent (see the module docstring). ``on_trial`` is
    called after each trial; ``check_stop`` between trials and fit steps (it raises to
    end the search, e.g. a cancel)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = Budget(float(config.budget_seconds), clock)
    excluded = _excluded(config, data.n_items)
    studies = [
        _FamilyStudy(FAMILIES[name], config.seed)
        for name in config.families
        if name not in excluded
    ]
    if not studies:
        raise ValueError("no model family can be searched on this data")
    costs = CostModel(data.n_items)
    trials: list[TrialRecord] = []
    stopped = "budget spent"
    number = 0
    while True:
        if check_stop is not None:
            check_stop()
        remaining = budget.remaining()
        if remaining <= 0:
            break
        fitting = [s for s in studies if (costs.expected(s.family.name) or 0.0) <= remaining]
        if not fitting:
            stopped = f"no family fits in the {remaining:.1f} s left"
            break
        leader = max((s.best for s in studies if s.best is not None), default=0.0)
        chosen = max(fitting, key=lambda s: s.priority(leader))  # the first of equals
        trial, params = chosen.ask()
        record = _run_trial(number, params, data, config, budget, check_stop)
        chosen.tell(trial, record)
        if record.state == COMPLETE:
            costs.record(record.family, record.seconds)
        trials.append(record)
        number += 1
        if on_trial is not None:
            on_trial(record, budget)
    return SearchResult(trials, round(budget.elapsed(), 3), stopped, excluded)


def _own(params: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in params.items() if name != "family"}


def _run_trial(
    number: int,
    params: dict[str, Any],
    data: SearchData,
    config: SearchConfig,
    budget: Budget,
    check_stop: Callable[[], None] | None,
) -> TrialRecord:
    started = budget.elapsed()

    def between_steps(done: int, total: int) -> None:
        if check_stop is not None:
            check_stop()
        budget.check()

    hyperparameters = {**params, "num_threads": config.num_threads, "random_seed": config.seed}
    context = FitContext(
        num_threads=config.num_threads,
        random_seed=config.seed,
        on_progress=between_steps,
        item_features=data.item_features,
        user_features=data.user_features,
        last_seen=data.last_seen,
        ease_max_items=config.ease_max_items,
    )

    def record(value: float | None, state: str, note: str = "") -> TrialRecord:
        seconds = round(budget.elapsed() - started, 3)
        return TrialRecord(number, params["family"], _own(params), value, seconds, state, note)

    try:
        fitted = fit_family(data.train, hyperparameters, context)
        budget.check()
        scorer = family_scorer(
            fitted, hyperparameters, history=data.train, last_seen=data.last_seen
        )
        value = evaluate(scorer, data.train, data.validation, k=config.k)[config.metric]
    except TrialOverrun as exc:
        return record(None, PRUNED, f"stopped: {exc}")
    except _TRIAL_ERRORS as exc:
        return record(None, FAILED, f"{type(exc).__name__}: {exc}")
    if not math.isfinite(value):
        return record(None, FAILED, f"{config.metric} is not finite")
    return record(float(value), COMPLETE)
