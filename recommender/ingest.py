"""Validation of incoming event and item batches: plain Python, no Django.

A DRF serializer costs tens of microseconds per field; a batch of 1,000 events would
spend most of its time there. These validators check the same rules in a few
microseconds per event and report every problem with its index, so the API can answer
all-or-nothing and the importer can name the line."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from recommender.ids import MAX_ID_LENGTH

MAX_TITLE_LENGTH = 500
MAX_RECOMMENDATION_ID_LENGTH = 64
# An event's ``position`` (where the client showed the item, 1 = first).
MAX_POSITION = 100_000
MAX_CATEGORIES = 100
MAX_CATEGORY_LENGTH = 100


@dataclass(frozen=True, slots=True)
class EventIn:
    event_id: str
    user_id: str
    item_id: str
    event_type: str
    timestamp: datetime
    weight: float | None = None
    recommendation_id: str | None = None
    position: int | None = None


@dataclass(frozen=True, slots=True)
class ItemIn:
    item_id: str
    title: str | None = None
    categories: list[str] | None = None
    active: bool | None = None

    def provided_fields(self) -> set[str]:
        return {
            name for name in ("title", "categories", "active") if getattr(self, name) is not None
        }


@dataclass(frozen=True, slots=True)
class EventRules:
    event_types: Mapping[str, float]
    now: datetime
    future_tolerance: timedelta
    # Events dated before this are refused (``RECSITE_EVENT_MIN_TIMESTAMP``).
    earliest: datetime = datetime(1990, 1, 1, tzinfo=UTC)
    # An event's own weight lies in (0, weight_max] (``RECSITE_EVENT_WEIGHT_MAX``).
    weight_max: float = 100.0


@dataclass(slots=True)
class BatchErrors:
    """Problems found in a batch: one entry per bad field, each naming its index."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, index: int, field_name: str, message: str) -> None:
        self.entries.append({"index": index, "field": field_name, "message": message})

    def __bool__(self) -> bool:
        return bool(self.entries)

    def indexes(self) -> set[int]:
        return {entry["index"] for entry in self.entries}


class _Invalid(Exception):
    pass


def _external_id(value: Any, max_length: int = MAX_ID_LENGTH) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Invalid("must be a string")
    text = str(value)
    if not text.strip():
        raise _Invalid("must not be empty")
    if len(text) > max_length:
        raise _Invalid(f"must be at most {max_length} characters")
    if "\x00" in text:
        raise _Invalid("must not contain NUL characters")
    return text


def parse_timestamp(value: Any) -> datetime:
    """ISO-8601 (naive means UTC) or Unix seconds; always returns an aware UTC datetime."""
    if isinstance(value, bool):
        raise _Invalid("must be an ISO-8601 string or Unix seconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise _Invalid("must be finite")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _Invalid("is out of range") from None
    if not isinstance(value, str):
        raise _Invalid("must be an ISO-8601 string or Unix seconds")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Invalid(f"{value[:40]!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise _Invalid("is out of range") from None


def weight_problem(value: float, weight_max: float) -> str | None:
    """Why an event's own weight is unusable, or None. One rule for ingest and for the
    training loader, which skips such rows stored before the rule existed: a weight of
    1e39 overflows float32 to infinity and made every training run fail; 1e9 on one
    event made its item everybody's first recommendation."""
    if not math.isfinite(value):
        return "must be finite"
    if value <= 0:
        return "must be greater than 0"
    if value > weight_max:
        return f"must be at most {weight_max:g} (RECSITE_EVENT_WEIGHT_MAX)"
    return None


def _weight(value: Any, weight_max: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid("must be a number")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise _Invalid("must be finite") from None
    problem = weight_problem(number, weight_max)
    if problem:
        raise _Invalid(problem)
    return number


def _position(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("must be a whole number")
    if not 1 <= value <= MAX_POSITION:
        raise _Invalid(f"must be from 1 (the first item) to {MAX_POSITION}")
    return value


def parse_events(
    raw_events: Sequence[Any], rules: EventRules
) -> tuple[list[EventIn | None], BatchErrors]:
    """Validate every event; the result list keeps positions (``None`` where invalid).

    One ``event_id`` sent twice in a batch with the same content is fine (stored once);
    with different content the later ones are errors: merging would keep whichever the
    database saw first."""
    errors = BatchErrors()
    parsed: list[EventIn | None] = []
    latest_allowed = rules.now + rules.future_tolerance
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, Mapping):
            errors.add(index, "", "must be an object")
            parsed.append(None)
            continue
        values: dict[str, Any] = {}
        before = len(errors.entries)
        for name, required, check in (
            ("event_id", True, _external_id),
            ("user_id", True, _external_id),
            ("item_id", True, _external_id),
            ("type", True, None),
            ("timestamp", True, parse_timestamp),
            ("weight", False, None),
            ("recommendation_id", False, None),
            ("position", False, _position),
        ):
            value = raw.get(name)
            if value is None:
                if required:
                    errors.add(index, name, "is required")
                continue
            try:
                if name == "type":
                    if not isinstance(value, str) or value not in rules.event_types:
                        raise _Invalid(
                            f"unknown event type {str(value)[:40]!r}; known: "
                            + ", ".join(sorted(rules.event_types))
                        )
                elif name == "recommendation_id":
                    value = _external_id(value, MAX_RECOMMENDATION_ID_LENGTH)
                elif name == "weight":
                    value = _weight(value, rules.weight_max)
                else:
                    value = check(value)
            except _Invalid as problem:
                errors.add(index, name, str(problem))
                continue
            values[name] = value
        timestamp = values.get("timestamp")
        if timestamp is not None and timestamp > latest_allowed:
            errors.add(
                index,
                "timestamp",
                f"is in the future (more than {rules.future_tolerance.total_seconds():g} s ahead)",
            )
        elif timestamp is not None and timestamp < rules.earliest:
            errors.add(
                index,
                "timestamp",
                f"is before {rules.earliest.isoformat()} (RECSITE_EVENT_MIN_TIMESTAMP)",
            )
        if len(errors.entries) > before:
            parsed.append(None)
            continue
        event = EventIn(
            event_id=values["event_id"],
            user_id=values["user_id"],
            item_id=values["item_id"],
            event_type=values["type"],
            timestamp=values["timestamp"],
            weight=values.get("weight"),
            recommendation_id=values.get("recommendation_id"),
            position=values.get("position"),
        )
        first = first_seen.setdefault(event.event_id, index)
        if first != index and parsed[first] != event:
            errors.add(
                index,
                "event_id",
                f"{event.event_id[:40]!r} is also at index {first} with different content",
            )
            parsed.append(None)
            continue
        parsed.append(event)
    return parsed, errors


def _categories(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid("must be a list of strings")
    if len(value) > MAX_CATEGORIES:
        raise _Invalid(f"must have at most {MAX_CATEGORIES} entries")
    cleaned: list[str] = []
    for entry in value:
        if not isinstance(entry, str) or not entry.strip():
            raise _Invalid("must be a list of non-empty strings")
        if len(entry) > MAX_CATEGORY_LENGTH:
            raise _Invalid(f"entries must be at most {MAX_CATEGORY_LENGTH} characters")
        if "\x00" in entry:
            raise _Invalid("entries must not contain NUL characters")
        name = entry.strip()
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


def parse_items(raw_items: Sequence[Any]) -> tuple[list[ItemIn | None], BatchErrors]:
    errors = BatchErrors()
    parsed: list[ItemIn | None] = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, Mapping):
            errors.add(index, "", "must be an object")
            parsed.append(None)
            continue
        before = len(errors.entries)
        values: dict[str, Any] = {}
        if raw.get("item_id") is None:
            errors.add(index, "item_id", "is required")
        else:
            try:
                values["item_id"] = _external_id(raw["item_id"])
            except _Invalid as problem:
                errors.add(index, "item_id", str(problem))
        title = raw.get("title")
        if title is not None:
            if not isinstance(title, str):
                errors.add(index, "title", "must be a string")
            elif len(title) > MAX_TITLE_LENGTH:
                errors.add(index, "title", f"must be at most {MAX_TITLE_LENGTH} characters")
            elif "\x00" in title:
                errors.add(index, "title", "must not contain NUL characters")
            else:
                values["title"] = title
        if raw.get("categories") is not None:
            try:
                values["categories"] = _categories(raw["categories"])
            except _Invalid as problem:
                errors.add(index, "categories", str(problem))
        active = raw.get("active")
        if active is not None:
            if not isinstance(active, bool):
                errors.add(index, "active", "must be true or false")
            else:
                values["active"] = active
        if len(errors.entries) > before:
            parsed.append(None)
            continue
        parsed.append(ItemIn(**values))
    return parsed, errors
