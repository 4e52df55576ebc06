"""Quality gates and the promotion decision: pure policy, no I/O.

The decision, in order:

1. any gate failed -> ``reject``: the candidate is recorded but may not be promoted;
   the reason names the first failing gate;
2. every gate passed, policy ``manual`` -> ``keep_champion``: the active version (if
   any) keeps serving and the candidate waits for staff to promote it;
3. every gate passed, policy ``auto`` -> ``promote``.

The champion gate compares like with like: the champion and the candidate measured on
exactly the same held-out events, those newer than the champion's data (the champion was
refit on everything older, so it would be rewarded for memorising them). It passes
(marked ``skipped``) when there is no champion yet, so the very first model only has to
beat popularity and meet the data minimums. When a champion exists but no held-out event
is newer than its data, nothing can be compared and ``champion_no_overlap_policy`` decides,
never silently: ``hold`` (the default) keeps the candidate for staff to promote by hand
(the gate is marked ``held``), ``skip`` passes it with a warning in the gate's message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum


class Outcome(StrEnum):
    PROMOTE = "promote"
    KEEP_CHAMPION = "keep_champion"
    REJECT = "reject"


class PromotionPolicy(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class ChampionNoOverlapPolicy(StrEnum):
    """What the champion gate does when no held-out event is newer than the champion."""

    HOLD = "hold"
    SKIP = "skip"


@dataclass(frozen=True)
class GateConfig:
    """Thresholds; margins are relative (``0.05`` = 5 %)."""

    min_users: int = 10
    min_items: int = 10
    min_events: int = 100
    key_metric: str = "precision@10"
    min_lift_over_popularity: float = 0.0
    max_regression_vs_champion: float = 0.02
    champion_no_overlap_policy: str = ChampionNoOverlapPolicy.HOLD


@dataclass(frozen=True)
class DataStats:
    n_users: int
    n_items: int
    n_events: int


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    observed: float | None
    threshold: float | None
    message: str
    skipped: bool = False
    # Passed, but the candidate may only be promoted by hand (see ChampionNoOverlapPolicy).
    held: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ChampionComparison:
    """The active version and the candidate on the same held-out events: those newer than
    the champion's data. ``champion`` and ``candidate`` are None when there is no such
    event (``events`` = 0)."""

    version: int
    events: int
    champion: Mapping[str, float] | None
    candidate: Mapping[str, float] | None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    failed_gate: str | None
    gates: tuple[GateResult, ...]


def _minimum_gate(name: str, what: str, observed: int, minimum: int) -> GateResult:
    passed = observed >= minimum
    verdict = "meets" if passed else "is below"
    return GateResult(
        name=name,
        passed=passed,
        observed=float(observed),
        threshold=float(minimum),
        message=f"{observed} {what} {verdict} the minimum of {minimum}.",
    )


def _metric(metrics: Mapping[str, float], key: str) -> float | None:
    value = metrics.get(key)
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _at_least(value: float, threshold: float) -> bool:
    """``value >= threshold``, forgiving float noise (``0.2 * 1.1`` is not ``0.22``)."""
    return value >= threshold or math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)


def gate_beats_popularity(
    candidate: Mapping[str, float],
    popularity: Mapping[str, float],
    config: GateConfig,
    candidate_is_baseline: bool = False,
) -> GateResult:
    """The candidate must score strictly above popularity and by at least the margin.
    Skipped, saying why, when the candidate *is* that baseline (the popularity family
    without decay ranks exactly as it does, so it could never pass)."""
    key = config.key_metric
    if candidate_is_baseline:
        return GateResult(
            "beats_popularity",
            True,
            _metric(candidate, key),
            _metric(popularity, key),
            "Skipped: the candidate is the popularity baseline itself (popularity without "
            "decay), so it cannot beat it; the other gates decide.",
            skipped=True,
        )
    cand, pop = _metric(candidate, key), _metric(popularity, key)
    if cand is None or pop is None:
        missing = "candidate" if cand is None else "popularity baseline"
        return GateResult(
            "beats_popularity", False, cand, pop, f"The {missing} has no finite {key}."
        )
    threshold = pop * (1.0 + config.min_lift_over_popularity)
    passed = cand > pop and _at_least(cand, threshold)
    verdict = "beats" if passed else "does not beat"
    return GateResult(
        name="beats_popularity",
        passed=passed,
        observed=cand,
        threshold=threshold,
        message=(
            f"{key} {cand:.4f} {verdict} popularity {pop:.4f} by the required "
            f"{config.min_lift_over_popularity:.0%} (needs > {pop:.4f} and >= {threshold:.4f})."
        ),
    )


def _no_overlap(comparison: ChampionComparison, config: GateConfig) -> GateResult:
    policy = ChampionNoOverlapPolicy(config.champion_no_overlap_policy)
    why = (
        f"No held-out event is newer than champion v{comparison.version}'s data, so the two "
        "cannot be compared on the same events"
    )
    if policy is ChampionNoOverlapPolicy.SKIP:
        return GateResult(
            "not_worse_than_champion",
            True,
            None,
            None,
            f"Warning: {why}; the comparison is skipped (champion_no_overlap_policy=skip).",
            skipped=True,
        )
    return GateResult(
        "not_worse_than_champion",
        True,
        None,
        None,
        f"{why}; the candidate is held for manual promotion (champion_no_overlap_policy=hold).",
        held=True,
    )


def gate_not_worse_than_champion(
    comparison: ChampionComparison | None,
    config: GateConfig,
    champion_unavailable: str | None = None,
) -> GateResult:
    """On the champion's holdout, the candidate may trail the champion by at most the
    tolerance. Skipped without a champion; ``champion_no_overlap_policy`` without a
    shared holdout.

    ``champion_unavailable`` says why an active version could not be compared (its
    artifact is missing or unusable): the gate is skipped too, saying so rather than "no
    champion yet". Serving then answers from the popularity fallback, which the candidate
    has already beaten, so holding it back would keep the worse ranking in place."""
    key = config.key_metric
    if comparison is None:
        message = (
            f"{champion_unavailable[0].upper()}{champion_unavailable[1:]}; not compared "
            "(serving falls back to popularity, which the candidate has to beat)."
            if champion_unavailable
            else "No champion yet: nothing to compare with."
        )
        return GateResult(
            "not_worse_than_champion",
            True,
            None,
            None,
            message,
            skipped=True,
        )
    if comparison.champion is None or comparison.candidate is None:
        return _no_overlap(comparison, config)
    cand, champ = _metric(comparison.candidate, key), _metric(comparison.champion, key)
    if cand is None or champ is None:
        missing = "candidate" if cand is None else "champion"
        return GateResult(
            "not_worse_than_champion", False, cand, champ, f"The {missing} has no finite {key}."
        )
    threshold = champ * (1.0 - config.max_regression_vs_champion)
    passed = _at_least(cand, threshold)
    verdict = "is within" if passed else "falls below"
    return GateResult(
        name="not_worse_than_champion",
        passed=passed,
        observed=cand,
        threshold=threshold,
        message=(
            f"On the {comparison.events} held-out events newer than champion "
            f"v{comparison.version}'s data, the candidate's {key} {cand:.4f} {verdict} the "
            f"champion's {champ:.4f} less the {config.max_regression_vs_champion:.0%} "
            f"tolerance ({threshold:.4f})."
        ),
    )


def run_gates(
    *,
    config: GateConfig,
    data: DataStats,
    candidate: Mapping[str, float],
    popularity: Mapping[str, float],
    champion: ChampionComparison | None,
    champion_unavailable: str | None = None,
    candidate_is_baseline: bool = False,
) -> tuple[GateResult, ...]:
    """Every gate, in the order they are shown and checked. ``candidate`` and
    ``popularity`` are measured on the whole holdout; ``champion`` pairs the champion with
    the candidate on the champion's holdout. ``candidate_is_baseline``: the candidate is
    the popularity baseline itself (``gate_beats_popularity``)."""
    return (
        _minimum_gate("min_users", "users", data.n_users, config.min_users),
        _minimum_gate("min_items", "items", data.n_items, config.min_items),
        _minimum_gate("min_events", "events", data.n_events, config.min_events),
        gate_beats_popularity(candidate, popularity, config, candidate_is_baseline),
        gate_not_worse_than_champion(champion, config, champion_unavailable),
    )


def decide(*, gates: Sequence[GateResult], policy: PromotionPolicy | str) -> Decision:
    """Turn gate results and the promotion policy into promote / keep_champion / reject.
    A held gate keeps the candidate for staff whatever the policy."""
    policy = PromotionPolicy(policy)
    results = tuple(gates)
    failed = next((g for g in results if not g.passed), None)
    if failed is not None:
        return Decision(
            Outcome.REJECT,
            f"Rejected: gate {failed.name} failed. {failed.message}",
            failed.name,
            results,
        )
    held = next((g for g in results if g.held), None)
    if held is not None:
        return Decision(
            Outcome.KEEP_CHAMPION,
            f"All gates passed, but gate {held.name} holds the candidate for staff to "
            f"promote by hand: {held.message}",
            None,
            results,
        )
    if policy is PromotionPolicy.MANUAL:
        return Decision(
            Outcome.KEEP_CHAMPION,
            "All gates passed; the policy is manual, so the candidate waits for staff "
            "to promote it and the current version keeps serving.",
            None,
            results,
        )
    return Decision(
        Outcome.PROMOTE, "All gates passed; the policy is auto, so it is promoted.", None, results
    )
