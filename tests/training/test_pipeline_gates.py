import math
from dataclasses import replace

import pytest

from training.pipeline.gates import (
    ChampionComparison,
    DataStats,
    GateConfig,
    Outcome,
    decide,
    run_gates,
)

CONFIG = GateConfig(
    min_users=10,
    min_items=5,
    min_events=100,
    key_metric="precision@10",
    min_lift_over_popularity=0.10,
    max_regression_vs_champion=0.05,
)
ENOUGH = DataStats(n_users=10, n_items=5, n_events=100)
KEY = "precision@10"
PROMOTE, KEEP, REJECT = Outcome.PROMOTE, Outcome.KEEP_CHAMPION, Outcome.REJECT
POP, CHAMP = "beats_popularity", "not_worse_than_champion"


def same_holdout(champion: float, candidate: float) -> ChampionComparison:
    """The champion and the candidate on the champion's holdout (100 events)."""
    return ChampionComparison(
        version=1, events=100, champion={KEY: champion}, candidate={KEY: candidate}
    )


@pytest.mark.parametrize(
    ("case", "data", "candidate", "popularity", "champion", "policy", "outcome", "failed"),
    [
        ("first model, auto", ENOUGH, 0.22, 0.20, None, "auto", PROMOTE, None),
        ("first model, manual", ENOUGH, 0.22, 0.20, None, "manual", KEEP, None),
        ("too few users", DataStats(9, 5, 100), 0.5, 0.1, None, "auto", REJECT, "min_users"),
        ("too few items", DataStats(10, 4, 100), 0.5, 0.1, None, "auto", REJECT, "min_items"),
        ("too few events", DataStats(10, 5, 99), 0.5, 0.1, None, "auto", REJECT, "min_events"),
        # 0.21 beats 0.20 but not by 10 %
        ("lift below margin", ENOUGH, 0.21, 0.20, None, "auto", REJECT, POP),
        ("zero popularity and candidate", ENOUGH, 0.0, 0.0, None, "auto", REJECT, POP),
        ("zero popularity, any lift", ENOUGH, 0.01, 0.0, None, "auto", PROMOTE, None),
        # champion 0.30 -> threshold 0.285
        ("within tolerance", ENOUGH, 0.29, 0.20, 0.30, "auto", PROMOTE, None),
        ("exactly at tolerance", ENOUGH, 0.285, 0.20, 0.30, "auto", PROMOTE, None),
        ("worse than champion", ENOUGH, 0.28, 0.20, 0.30, "auto", REJECT, CHAMP),
        ("worse than champion, manual", ENOUGH, 0.28, 0.20, 0.30, "manual", REJECT, CHAMP),
        ("better than champion, manual", ENOUGH, 0.40, 0.20, 0.30, "manual", KEEP, None),
        ("nan candidate", ENOUGH, math.nan, 0.20, None, "auto", REJECT, POP),
        ("first failure wins", DataStats(1, 1, 1), 0.0, 0.2, 0.3, "auto", REJECT, "min_users"),
    ],
)
def test_decision_table(case, data, candidate, popularity, champion, policy, outcome, failed):
    gates = run_gates(
        config=CONFIG,
        data=data,
        candidate={KEY: candidate},
        popularity={KEY: popularity},
        champion=None if champion is None else same_holdout(champion, candidate),
    )
    decision = decide(gates=gates, policy=policy)
    assert decision.outcome == outcome, case
    assert decision.failed_gate == failed, case
    if failed:
        assert failed in decision.reason
    assert decision.gates == gates


def test_gate_results_carry_observed_and_threshold():
    gates = run_gates(
        config=CONFIG,
        data=ENOUGH,
        candidate={KEY: 0.21},
        popularity={KEY: 0.20},
        champion=same_holdout(0.30, 0.21),
    )
    by_name = {g.name: g for g in gates}
    assert [g.name for g in gates] == [
        "min_users",
        "min_items",
        "min_events",
        "beats_popularity",
        "not_worse_than_champion",
    ]
    pop = by_name["beats_popularity"]
    assert (pop.passed, pop.observed) == (False, 0.21)
    assert pop.threshold == pytest.approx(0.22)
    assert "0.2100" in pop.message and "0.2200" in pop.message
    champ = by_name["not_worse_than_champion"]
    assert champ.threshold == pytest.approx(0.285)
    assert not champ.passed and not champ.skipped


def test_champion_gate_names_a_champion_whose_artifact_is_missing():
    gates = run_gates(
        config=CONFIG,
        data=ENOUGH,
        candidate={KEY: 0.3},
        popularity={KEY: 0.1},
        champion=None,
        champion_unavailable="champion artifact missing: v4 (missing_file: gone)",
    )
    champ = {g.name: g for g in gates}[CHAMP]
    assert (champ.passed, champ.skipped) == (True, True)
    assert champ.message.startswith("Champion artifact missing: v4 (missing_file: gone); ")
    assert "No champion yet" not in champ.message


def test_champion_gate_is_skipped_without_a_champion():
    gates = run_gates(
        config=CONFIG, data=ENOUGH, candidate={KEY: 0.3}, popularity={KEY: 0.1}, champion=None
    )
    champ = gates[-1]
    assert champ.passed and champ.skipped
    assert "No champion" in champ.message


def test_missing_key_metric_fails_the_gate():
    gates = run_gates(
        config=CONFIG, data=ENOUGH, candidate={"auc": 0.9}, popularity={KEY: 0.1}, champion=None
    )
    decision = decide(gates=gates, policy="auto")
    assert decision.failed_gate == "beats_popularity"
    assert "candidate has no finite precision@10" in decision.reason


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        decide(gates=(), policy="yolo")


def test_the_champion_gate_compares_the_candidate_on_the_champions_holdout():
    """The demo's run #2: 0.1198 on its whole holdout against the champion's 0.0860 on
    the events newer than the champion's data, where the candidate scored 0.0843. With a
    1 % tolerance (threshold 0.0851) that is a regression, whatever the whole holdout says."""
    gates = run_gates(
        config=replace(CONFIG, max_regression_vs_champion=0.01),
        data=ENOUGH,
        candidate={KEY: 0.1198},
        popularity={KEY: 0.05},
        champion=same_holdout(0.0860, 0.0843),
    )
    decision = decide(gates=gates, policy="auto")
    assert decision.outcome is REJECT
    assert decision.failed_gate == CHAMP
    champ = gates[-1]
    assert (champ.observed, champ.threshold) == (0.0843, pytest.approx(0.08514))
    assert "100 held-out events newer than champion v1" in champ.message


def test_the_issue_case_is_within_the_default_two_percent_tolerance():
    """0.0843 vs 0.0860 is -1.98 %: the default tolerance of 2 % lets it pass; the
    gate's threshold, not the comparison, decides that case."""
    gates = run_gates(
        config=replace(CONFIG, max_regression_vs_champion=0.02),
        data=ENOUGH,
        candidate={KEY: 0.1198},
        popularity={KEY: 0.05},
        champion=same_holdout(0.0860, 0.0843),
    )
    assert gates[-1].passed
    assert gates[-1].threshold == pytest.approx(0.08428)


NO_OVERLAP = ChampionComparison(version=3, events=0, champion=None, candidate=None)


@pytest.mark.parametrize("policy", ["auto", "manual"])
def test_no_shared_holdout_holds_the_candidate_by_default(policy):
    gates = run_gates(
        config=CONFIG,
        data=ENOUGH,
        candidate={KEY: 0.9},
        popularity={KEY: 0.1},
        champion=NO_OVERLAP,
    )
    champ = gates[-1]
    assert champ.passed and champ.held and not champ.skipped
    assert "held for manual promotion" in champ.message
    decision = decide(gates=gates, policy=policy)
    assert decision.outcome is KEEP
    assert "holds the candidate" in decision.reason and "v3" in decision.reason


def test_no_shared_holdout_skips_with_a_warning_when_the_policy_says_so():
    gates = run_gates(
        config=replace(CONFIG, champion_no_overlap_policy="skip"),
        data=ENOUGH,
        candidate={KEY: 0.9},
        popularity={KEY: 0.1},
        champion=NO_OVERLAP,
    )
    champ = gates[-1]
    assert champ.passed and champ.skipped and not champ.held
    assert champ.message.startswith("Warning: No held-out event is newer than champion v3")
    assert decide(gates=gates, policy="auto").outcome is PROMOTE


def test_an_unknown_no_overlap_policy_is_refused():
    with pytest.raises(ValueError):
        run_gates(
            config=replace(CONFIG, champion_no_overlap_policy="pass"),
            data=ENOUGH,
            candidate={KEY: 0.9},
            popularity={KEY: 0.1},
            champion=NO_OVERLAP,
        )
