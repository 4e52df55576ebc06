"""The ``search`` phase of an ``auto`` run: carve the validation split from the run's
training window, run the search (``training.search.study``) within the recommender's
``tuning_budget_seconds``, record every trial on the run as it ends
(``TrainingRun.search``) and report trials done / budget as progress. What it returns is
the winner's hyper-parameters, which the run then fits, evaluates, gates and promotes
exactly as a run of that family.

``TrainingRun.search``::

    {"budget_seconds": 120, "metric": "precision@10", "validation": {split stats},
     "excluded": {family: why}, "trials": [TrialRecord.as_dict(), ...],
     "seconds": 118.7, "stopped": "budget spent",
     "winner": {"number", "family", "params", "value"},
     "runner_up": {...} or None, "margin": 0.12 (winner / runner-up - 1) or None}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import scipy.sparse as sp
from django.conf import settings

from recommender.families import RUN_SETTINGS
from recommender.metric_names import metric_key
from recommender.models import Recommender
from training.pipeline.matrices import Interactions
from training.pipeline.split import Split
from training.search.budget import Budget, Clock
from training.search.outcome import outcome_text, search_outcome
from training.search.records import COMPLETE, TrialRecord
from training.search.study import SearchConfig, run_search
from training.search.validation import search_data
from training.services import training_run_search_record

Report = Callable[[float, str], None]
"""``report(fraction_of_the_phase, log_line)``; an empty line only moves the bar."""

# A line in the run's log every this many trials (besides each new best), so a long
# search does not push the rest of the log out of its 64 KB.
LOG_EVERY = 25


def search_clock() -> Clock:
    """The clock the search's budget is read from: the wall clock (tests replace this
    function to run a search on a clock they advance themselves)."""
    return time.monotonic


class SearchFoundNothing(ValueError):
    """No trial finished within the budget."""


def search_phase(
    *,
    run_id: int,
    recommender: Recommender,
    params: dict[str, Any],
    interactions: Interactions,
    holdout: Split,
    n_users: int,
    n_items: int,
    item_features: sp.csr_matrix | None,
    user_features: sp.csr_matrix | None,
    report: Report,
    check_stop: Callable[[], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Search, recording as it goes; returns the winner's hyper-parameters (as a run of
    its family resolves them) and the final ``TrainingRun.search``. ``check_stop``
    raising ends the search (a cancel): what was recorded stays on the run."""
    data, validation = search_data(
        interactions,
        holdout,
        fraction=recommender.holdout_fraction,
        n_users=n_users,
        n_items=n_items,
        duplicates=recommender.duplicate_aggregation,
        item_features=item_features,
        user_features=user_features,
    )
    metric = metric_key(recommender.key_metric, recommender.eval_k)
    config = SearchConfig(
        budget_seconds=float(params["tuning_budget_seconds"]),
        metric=metric,
        k=recommender.eval_k,
        seed=int(params["random_seed"]),
        num_threads=int(params["num_threads"]),
        ease_max_items=settings.RECSITE_EASE_MAX_ITEMS,
    )
    search: dict[str, Any] = {
        "budget_seconds": config.budget_seconds,
        "metric": metric,
        "validation": validation.stats.as_dict(),
        "trials": [],
    }
    report(
        0.0,
        f"searching the families for {config.budget_seconds:g} s on a validation split of the "
        f"training window ({validation.stats.n_test} events, {validation.stats.test_users} "
        f"users); trials judged by {metric}",
    )
    best: list[float] = []

    def on_trial(record: TrialRecord, budget: Budget) -> None:
        search["trials"].append(record.as_dict())
        training_run_search_record(run_id=run_id, search=search)
        done = len(search["trials"])
        line = ""
        if record.state == COMPLETE and (not best or record.value > best[0]):
            best[:] = [record.value]
            line = f"trial {record.number}: new best, {record.family} {metric} {record.value:.4f}"
        elif done % LOG_EVERY == 0:
            line = f"trial {record.number}: best so far {best[0]:.4f}" if best else ""
        if line:
            line += f"; {done} trials done, {budget.elapsed():.0f} / {budget.seconds:g} s"
        report(min(1.0, budget.elapsed() / budget.seconds), line)

    result = run_search(
        data, config, clock=search_clock(), on_trial=on_trial, check_stop=check_stop
    )
    search.update(
        excluded=result.excluded,
        seconds=result.seconds,
        stopped=result.stopped,
        **search_outcome(result),
    )
    training_run_search_record(run_id=run_id, search=search)
    for family, why in result.excluded.items():
        report(1.0, f"search left {family} out: {why}")
    states = [t.state for t in result.trials]
    report(
        1.0,
        f"search: {len(states)} trials in {result.seconds:.1f} s ({states.count(COMPLETE)} "
        f"complete, {states.count('pruned')} pruned, {states.count('failed')} failed; "
        f"{result.stopped}); {outcome_text(search)}",
    )
    if result.best is None:
        raise SearchFoundNothing(
            f"no trial finished within tuning_budget_seconds={config.budget_seconds:g}: "
            "raise the budget"
        )
    winner = {
        "family": result.best.family,
        **result.best.params,
        **{name: params[name] for name in RUN_SETTINGS},
    }
    return winner, search
