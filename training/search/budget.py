"""The search's time budget, read from an injected clock (tests pass their own, so no
test depends on the wall clock), and what a trial is expected to cost."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
"""Seconds from an arbitrary origin, never going back (``time.monotonic``)."""

# EASE's fit is a dense inverse, which cannot be interrupted: its first trial is only
# started when this estimate (seconds per (1,000 items)^3, measured on MovieLens 100K and
# Last.fm on the 2-core development machine, x1.5) fits in what is left of the budget.
EASE_SECONDS_PER_GIGA_CUBE = 0.09


class TrialOverrun(Exception):
    """The trial would end after the budget: it is stopped and recorded as pruned."""


@dataclass
class Budget:
    seconds: float
    clock: Clock = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        return self.seconds - self.elapsed()

    def check(self) -> None:
        """``TrialOverrun`` once the budget is spent (called between a fit's steps)."""
        if self.remaining() <= 0:
            raise TrialOverrun(f"the {self.seconds:g} s budget is spent")


def ease_prior_seconds(n_items: int) -> float:
    """What EASE's first fit on ``n_items`` items is expected to take (cubic)."""
    return EASE_SECONDS_PER_GIGA_CUBE * (n_items / 1000.0) ** 3


@dataclass
class CostModel:
    """Expected seconds of a family's next trial: the fastest of its finished trials (an
    optimistic guess; the fits check the budget between steps anyway), or for EASE,
    whose fit cannot be stopped, its first fit's cubic estimate. None: no idea yet."""

    n_items: int
    seen: dict[str, list[float]] = field(default_factory=dict)

    def record(self, family: str, seconds: float) -> None:
        self.seen.setdefault(family, []).append(seconds)

    def expected(self, family: str) -> float | None:
        if family in self.seen:
            return min(self.seen[family])
        if family == "ease":
            return ease_prior_seconds(self.n_items)
        return None
