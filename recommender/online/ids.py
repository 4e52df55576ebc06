"""Time-ordered recommendation ids: UUIDv7 (RFC 9562), which Python 3.11's ``uuid``
lacks. Plain Python, no Django.

48 bits of Unix milliseconds, then 74 random bits (with the version and variant bits):
ids sort by the time they were made, so the served lists' primary-key index grows at
its end like a time index. Within one process, ids are strictly increasing even within
one millisecond or when the clock steps back: the random part of the last id is then
incremented (RFC 9562 6.2, method 2), carrying into the timestamp when it overflows."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

_RANDOM_BITS = 74
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
_TIME_MAX = (1 << 48) - 1


def uuid7_from_parts(unix_ms: int, random_bits: int) -> uuid.UUID:
    """The UUIDv7 of a millisecond timestamp and 74 random bits."""
    if not 0 <= unix_ms <= _TIME_MAX:
        raise ValueError(f"unix_ms {unix_ms} does not fit in 48 bits")
    rand_a = (random_bits >> 62) & 0xFFF
    rand_b = random_bits & ((1 << 62) - 1)
    value = (unix_ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def uuid7_time_ms(value: uuid.UUID) -> int:
    """The Unix milliseconds a UUIDv7 carries."""
    return value.int >> 80


class Uuid7Generator:
    """Strictly increasing UUIDv7s for one process (thread-safe). ``clock_ms`` and
    ``random_bits`` are injectable so tests need no wall clock."""

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int] | None = None,
        random_bits: Callable[[], int] | None = None,
    ) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._random_bits = random_bits or (
            lambda: int.from_bytes(os.urandom(10), "big") & _RANDOM_MAX
        )
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def __call__(self) -> uuid.UUID:
        unix_ms = self._clock_ms()
        random_bits = self._random_bits() & _RANDOM_MAX
        with self._lock:
            if unix_ms < self._last_ms or (
                unix_ms == self._last_ms and random_bits <= self._last_random
            ):
                unix_ms, random_bits = self._last_ms, self._last_random + 1
                if random_bits > _RANDOM_MAX:
                    unix_ms, random_bits = unix_ms + 1, 0
            self._last_ms, self._last_random = unix_ms, random_bits
        return uuid7_from_parts(unix_ms, random_bits)


# The process's generator: ``recommendation_id_new()`` is what serving calls.
_generator = Uuid7Generator()


def recommendation_id_new() -> uuid.UUID:
    """A new, time-ordered recommendation id (UUIDv7)."""
    return _generator()


def recommendation_id_parse(text: str) -> uuid.UUID | None:
    """The id an event names (hex, with or without hyphens), or None when it is not a
    UUID: an id no list can have, counted as unknown by attribution."""
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
