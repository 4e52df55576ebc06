"""Which arm of an experiment a user is in: a pure function of (salt, user id), so every
serving process agrees without a stored assignment, and a user stays in their arm for the
whole experiment (whatever else is promoted meanwhile). Plain Python.

The first 8 bytes of ``sha256(salt NUL user_id)`` read as a number in [0, 1) fall into
one arm's slice of the cumulative shares. A new salt per experiment reshuffles users, so
one experiment's treatment group is not the next one's."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_SCALE = float(1 << 64)


def bucket(salt: str, user_id: str) -> float:
    """The user's point in [0, 1) for this salt."""
    digest = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_for(salt: str, user_id: str, arms: Sequence[tuple[str, float]]) -> str:
    """The name of the arm ``user_id`` is in; ``arms`` are (name, share) in the
    experiment's order (shares are normalised by their sum)."""
    if not arms:
        raise ValueError("an experiment has at least one arm")
    total = sum(share for _, share in arms)
    if total <= 0:
        raise ValueError("the arms' shares must add up to more than 0")
    point = bucket(salt, user_id) * total
    cumulative = 0.0
    for name, share in arms:
        cumulative += share
        if point < cumulative:
            return name
    return arms[-1][0]  # rounding: the point sits at the very top
