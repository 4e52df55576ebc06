"""Reading typed settings from the environment, with errors that name the variable."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """The variable's value; unset or empty means ``default``."""
    raw = os.environ.get(name, "")
    return raw if raw.strip() else default


def env_timezone(name: str, default: str) -> str:
    """An IANA time zone name (``Europe/London``); unset or empty means ``default``."""
    value = env_str(name, default).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a time zone: give an IANA name such as Europe/London, "
            "America/New_York or UTC."
        ) from None
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no).")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_int_optional(name: str) -> int | None:
    """An integer, or None when the variable is unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    return env_int(name, 0)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def env_datetime(name: str, default: str) -> datetime:
    """An ISO-8601 date or date-time; naive means UTC."""
    raw = env_str(name, default)
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an ISO-8601 date-time (e.g. 1990-01-01T00:00:00Z)."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def parse_event_types(raw: str) -> dict[str, float]:
    """Parse ``"view:1,like:3"`` into ``{"view": 1.0, "like": 3.0}``."""
    types: dict[str, float] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, weight = part.partition(":")
        try:
            types[name.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise ImproperlyConfigured(
                f"RECSITE_EVENT_TYPES: weight {weight!r} of type {name!r} is not a number."
            ) from None
    if not types:
        raise ImproperlyConfigured("RECSITE_EVENT_TYPES defines no event type.")
    return types
