"""The search section of an ``auto`` run's admin page: the trials as table rows and a
chart of the validation metric over the trials (one marker series per family, and the
best so far as a line). Reads ``TrainingRun.search`` only; no queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training import charts
from training.reports import search_text

# The table shows the latest trials (the chart shows them all).
TABLE_ROWS = 200


@dataclass(frozen=True)
class TrialRow:
    number: int
    family: str
    params: str
    value: float | None
    seconds: float
    state: str
    note: str
    best: bool


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in params.items()
    )


def search_section(search: dict[str, Any]) -> dict[str, Any] | None:
    """Template context for the run page, or None for a run that did not search."""
    if not search:
        return None
    trials = search.get("trials") or []
    winner = (search.get("winner") or {}).get("number")
    rows = [
        TrialRow(
            number=t["number"],
            family=t["family"],
            params=_params_text(t["params"]),
            value=t["value"],
            seconds=t["seconds"],
            state=t["state"],
            note=t.get("note", ""),
            best=t["number"] == winner,
        )
        for t in trials[-TABLE_ROWS:]
    ]
    return {
        "summary": search_text(search),
        "metric": search.get("metric", ""),
        "excluded": search.get("excluded") or {},
        "rows": rows,
        "hidden_rows": max(0, len(trials) - TABLE_ROWS),
        "chart": search_chart(search),
    }


def search_chart(search: dict[str, Any]) -> str:
    trials = search.get("trials") or []
    metric = search.get("metric", "metric")
    families = list(dict.fromkeys(t["family"] for t in trials))
    series = [
        charts.Series(family, [t["value"] if t["family"] == family else None for t in trials])
        for family in families
    ]
    best: list[float | None] = []
    for t in trials:
        previous = best[-1] if best else None
        value = t["value"]
        best.append(
            value if value is not None and (previous is None or value > previous) else previous
        )
    return charts.line_chart(
        title=f"Validation {metric} per trial",
        x_labels=[str(t["number"]) for t in trials],
        series=[charts.Series("best so far", best), *series],
        width=940,  # room for the legend of the best-so-far line and six families
        empty_message="No trial has finished yet.",
    )
