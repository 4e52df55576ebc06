"""What a search records: each trial, and the search as a whole. Plain data, apart from
the search itself (``study``), so that reading a run's search (the run page, reports)
does not load Optuna and the fitting libraries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


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
