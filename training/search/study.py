"""The search: Optuna's TPE sampler (seeded) over the families and their
hyper-parameters (``space``), each trial fitted on the validation split's train part and
judged by the run's key metric on its validation events, within a time budget.

- The first trials are each family's schema defaults, in order of expected cost; TPE
  takes over from there.
- A trial that would end after the budget is pruned: before it starts when its family's
  expected cost (``budget.CostModel``) exceeds what is left, else between the steps of
  its fit (the fits report progress after each epoch / iteration / block). The search
  then ends, so it overruns its budget by at most one fit step and one evaluation.
- A family that cannot fit the data at all (EASE above its item limit, or its first
  dense inverse expected to take longer than the whole budget) is left out, saying why.
- A trial whose fit fails (e.g. a diverging factorisation) is recorded as failed; the
  search goes on. ``check_stop`` raising (a cancel) ends the search at once.

Every trial is recorded (``TrialRecord``) and handed to ``on_trial`` as it ends."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
from training.search.space import default_trial, suggest
from training.search.validation import SearchData

# Cheapest first: the defaults the search starts with.
DEFAULT_ORDER = ("popularity", "svd", "ease", "itemknn", "als", "lightfm")
COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"
# After this many trials in a row pruned before they started, nothing fits any more.
_MAX_SKIPPED_IN_A_ROW = 20
# A fit that fails for its hyper-parameters (not for a bug or a cancel).
_TRIAL_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError, FamilyLimitExceeded)


@dataclass(frozen=True)
class TrialRecord:
    number: int
    family: str
    params: dict[str, Any]  # the family's hyper-parameters (not the run settings)
    value: float | None  # the key metric on validation; None unless complete
    seconds: float
    state: str  # complete, pruned or failed
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchConfig:
    budget_seconds: float
    metric: str  # the key the trials are judged on, e.g. "precision@10"
    k: int
    seed: int = 42
    num_threads: int = 1
    families: tuple[str, ...] = DEFAULT_ORDER
    ease_max_items: int = 20_000


@dataclass
class SearchResult:
    trials: list[TrialRecord]
    seconds: float
    stopped: str  # why the search ended
    excluded: dict[str, str] = field(default_factory=dict)  # family -> why left out

    @property
    def completed(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == COMPLETE]

    @property
    def best(self) -> TrialRecord | None:
        """The best complete trial (the earliest of equals)."""
        return max(self.completed, key=lambda t: (t.value, -t.number), default=None)

    @property
    def runner_up(self) -> TrialRecord | None:
        """The best complete trial of another family than the winner's."""
        best = self.best
        others = [t for t in self.completed if best is not None and t.family != best.family]
        return max(others, key=lambda t: (t.value, -t.number), default=None)


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
    budget = Budget(float(config.budget_seconds), clock)
    excluded = _excluded(config, data.n_items)
    families: list[Family] = [FAMILIES[name] for name in config.families if name not in excluded]
    if not families:
        raise ValueError("no model family can be searched on this data")
    costs = CostModel(data.n_items)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        sampler = TPESampler(seed=config.seed, multivariate=True, group=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for family in families:
        study.enqueue_trial(default_trial(family))

    trials: list[TrialRecord] = []
    skipped_in_a_row = 0
    stopped = "budget spent"
    while True:
        if check_stop is not None:
            check_stop()
        if budget.remaining() <= 0:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            trial = study.ask()
            params = suggest(trial, families)
        family = params["family"]
        expected = costs.expected(family)
        if expected is not None and expected > budget.remaining():
            record = TrialRecord(
                trial.number,
                family,
                _own(params),
                None,
                0.0,
                PRUNED,
                f"not started: expected ~{expected:.1f} s, {budget.remaining():.1f} s left",
            )
            study.tell(trial, state=TrialState.PRUNED)
            skipped_in_a_row += 1
        else:
            record = _run_trial(trial.number, params, data, config, budget, check_stop)
            if record.state == COMPLETE:
                study.tell(trial, record.value)
                costs.record(family, record.seconds)
            else:
                state = TrialState.PRUNED if record.state == PRUNED else TrialState.FAIL
                study.tell(trial, state=state)
            skipped_in_a_row = 0
        trials.append(record)
        if on_trial is not None:
            on_trial(record, budget)
        if skipped_in_a_row >= _MAX_SKIPPED_IN_A_ROW:
            stopped = f"no family fits in the {max(budget.remaining(), 0):.1f} s left"
            break
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
