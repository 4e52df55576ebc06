"""What a search came to, for the run record and for people: the winner, the runner-up
(the best trial of another family) and by how much the one beat the other."""

from __future__ import annotations

from typing import Any

from training.search.records import SearchResult, TrialRecord


def _summary(record: TrialRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "number": record.number,
        "family": record.family,
        "params": record.params,
        "value": record.value,
    }


def search_outcome(result: SearchResult) -> dict[str, Any]:
    """The winner, the runner-up (the best trial of another family) and the margin."""
    best, runner_up = result.best, result.runner_up
    margin = None
    if best is not None and runner_up is not None and runner_up.value:
        margin = best.value / runner_up.value - 1.0
    return {"winner": _summary(best), "runner_up": _summary(runner_up), "margin": margin}


def outcome_text(search: dict) -> str:
    """``ease won: precision@10 0.2012 on validation, 8.1 % above itemknn (0.1861)``."""
    winner, runner_up, metric = search.get("winner"), search.get("runner_up"), search["metric"]
    if not winner:
        return "no trial finished"
    text = f"{winner['family']} won: {metric} {winner['value']:.4f} on validation"
    if runner_up:
        margin = search.get("margin")
        above = f"{margin:.1%} above" if margin is not None else "above"
        text += f", {above} {runner_up['family']} ({runner_up['value']:.4f})"
    else:
        text += " (no other family finished a trial)"
    return text
