"""The search's budget, pruning and stopping (training/search/study.py), on a clock the
tests advance themselves (no test depends on the wall clock)."""

import pytest

from training.search.budget import Budget, CostModel, TrialOverrun, ease_prior_seconds
from training.search.study import COMPLETE, PRUNED, SearchConfig, run_search

from .search_helpers import TickClock, holdout_and_search_data, taste_groups


@pytest.fixture(scope="module")
def data():
    return holdout_and_search_data(taste_groups())[1]


def config(budget: float, **options) -> SearchConfig:
    return SearchConfig(budget_seconds=budget, metric="precision@10", k=10, seed=7, **options)


def test_the_budget_is_kept_within_ten_percent_and_an_overrunning_trial_is_pruned(data):
    """Each LightFM epoch reads the clock once (the budget check between fit steps), so
    a trial of many epochs cannot finish in what is left and is stopped."""
    clock = TickClock(tick=1.0)
    result = run_search(data, config(60, families=("lightfm",)), clock=clock)
    assert result.seconds <= 60 * 1.1
    assert result.trials[-1].state == PRUNED
    assert result.trials[-1].note.startswith("stopped: the 60 s budget is spent")
    assert all(t.state == COMPLETE for t in result.trials[:-1])
    assert result.stopped == "budget spent"


def test_the_search_starts_with_each_familys_defaults_then_favours_the_leaders(data):
    result = run_search(data, config(30), clock=TickClock(0.05))
    first = [(t.family, t.state) for t in result.trials[:6]]
    assert first == [
        (name, COMPLETE) for name in ("popularity", "svd", "ease", "itemknn", "als", "lightfm")
    ]
    assert result.trials[2].params == {
        "lambda": 300.0,
        "top_k": 200,
        "binary": True,
        "recency_half_life": 0.0,
    }
    assert result.best.value >= max(t.value for t in result.trials[:6])
    assert result.runner_up.family != result.best.family
    counts = {f: sum(t.family == f for t in result.trials) for f in ("popularity", "ease")}
    assert counts["ease"] > counts["popularity"] >= 1


def test_the_same_seed_and_clock_give_the_same_search(data):
    first = run_search(data, config(20), clock=TickClock(0.05))
    second = run_search(data, config(20), clock=TickClock(0.05))
    assert first.trials == second.trials
    assert len(first.trials) > 10


def test_a_trial_expected_to_overrun_is_pruned_before_it_starts():
    costs = CostModel(n_items=100)
    costs.record("als", 5.0)
    costs.record("als", 3.0)
    assert costs.expected("als") == 3.0
    assert costs.expected("svd") is None
    assert costs.expected("ease") == ease_prior_seconds(100)


def test_a_family_slower_than_what_is_left_is_not_tried(data):
    """ALS iterations each read the clock: its first trial (15 iterations) takes over 3 s
    of a 5 s budget; no trial of it starts in what is left, and the search ends there."""
    result = run_search(data, config(5, families=("als",)), clock=TickClock(0.2))
    assert result.trials[0].state == COMPLETE and result.trials[0].seconds > 3
    assert result.stopped.startswith("no family fits in the ")
    assert result.seconds <= 5


def test_ease_is_left_out_above_its_item_limit_saying_why(data):
    result = run_search(
        data, config(5, families=("ease", "popularity"), ease_max_items=10), clock=TickClock()
    )
    assert result.excluded == {"ease": "30 items is above EASE's limit of 10"}
    assert {t.family for t in result.trials} == {"popularity"}


def test_a_stop_request_ends_the_search_at_once(data):
    class Cancelled(Exception):
        pass

    calls = []

    def check_stop():
        calls.append(1)
        if len(calls) > 30:
            raise Cancelled

    with pytest.raises(Cancelled):
        run_search(data, config(1000), clock=TickClock(0.01), check_stop=check_stop)


def test_the_budget_reads_only_its_clock():
    clock = TickClock(tick=2.0)
    budget = Budget(5.0, clock)  # started at 2
    assert budget.remaining() == 3.0  # now 4
    budget.check()  # now 6: 1 s left
    with pytest.raises(TrialOverrun):
        budget.check()  # now 8
