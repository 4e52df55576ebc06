"""The typed setting: a name, a kind, bounds or choices, a default and a help text, and
the check that enforces them. Recommender settings (``recommender.config_schema``) and
each model family's hyper-parameters (``recommender.families``) are made of it, so the
admin form, the API, ``retrain`` and the run record all read one description.

Error codes start with "setting_": a ModelForm replaces the message of an error whose
code it knows itself ("invalid", "invalid_choice", ...) by its own, vaguer one."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

INT, FLOAT, CHOICE, BOOL, WEIGHTS, MAPPING = "int", "float", "choice", "bool", "weights", "mapping"


@dataclass(frozen=True)
class SearchRange:
    """Where the ``auto`` algorithm searches a setting (``training.search.space`` turns it
    into a distribution): ``[low, high]`` for numbers (on a log scale with ``log``), or a
    subset of a choice setting's ``choices`` (every choice, and both booleans, when empty).
    Narrower than the setting's bounds, which are the documented maxima of what a person
    may ask for, not a sensible region to search."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Setting:
    """One setting. Bounds are inclusive unless ``*_exclusive``; ``WEIGHTS`` bounds apply
    to each weight. ``WEIGHTS`` and ``MAPPING`` values are checked by ``cleaner``."""

    name: str
    kind: str
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False
    maximum_exclusive: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    default: Any = None
    help: str = ""
    cleaner: Callable[[Any, Setting], Any] | None = None
    search: SearchRange | None = None  # model-family parameters: where ``auto`` looks

    def range_text(self) -> str:
        """``from 1 to 512``, ``greater than 0 and less than 1``, ``one of a, b``."""
        if self.kind == CHOICE:
            return "one of " + ", ".join(self.choices)
        if self.kind == BOOL:
            return "true or false"
        if self.minimum is None or self.maximum is None:  # a kind its cleaner describes
            return self.help
        low = (
            f"greater than {self.minimum:g}"
            if self.minimum_exclusive
            else f"at least {self.minimum:g}"
        )
        high = (
            f"less than {self.maximum:g}" if self.maximum_exclusive else f"at most {self.maximum:g}"
        )
        if not (self.minimum_exclusive or self.maximum_exclusive):
            return f"from {self.minimum:g} to {self.maximum:g}"
        return f"{low} and {high}"

    def clean(self, value: Any) -> Any:
        """``value`` if it is allowed, else ``ValidationError`` saying what is."""
        if value is None:
            if self.nullable:
                return None
            raise ValidationError("This setting is required.", code="setting_required")
        if self.cleaner is not None:
            return self.cleaner(value, self)
        if self.kind == BOOL:
            if not isinstance(value, bool):
                raise ValidationError(f"{value!r} is not true or false.", code="setting_invalid")
            return value
        if self.kind == CHOICE:
            if value not in self.choices:
                raise ValidationError(
                    f"{value!r} is not allowed: give {self.range_text()}.", code="setting_choice"
                )
            return value
        return _clean_number(value, self)

    def within(self, number: float) -> bool:
        low_ok = number > self.minimum if self.minimum_exclusive else number >= self.minimum
        high_ok = number < self.maximum if self.maximum_exclusive else number <= self.maximum
        return low_ok and high_ok


def _clean_number(value: Any, setting: Setting) -> int | float:
    integer = setting.kind == INT
    if isinstance(value, bool) or not isinstance(value, int | float):
        what = "a whole number" if integer else "a number"
        raise ValidationError(f"{value!r} is not {what}.", code="setting_invalid")
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise ValidationError(f"{value!r} is not a whole number.", code="setting_invalid")
        value = int(value)
    if not math.isfinite(value):
        raise ValidationError(f"{value!r} is not a finite number.", code="setting_invalid")
    if not setting.within(value):
        raise ValidationError(
            f"{value:g} is out of range: give a number {setting.range_text()}.",
            code="setting_out_of_range",
        )
    return int(value) if integer else float(value)


def integer(name: str, minimum: int, maximum: int, **options: Any) -> Setting:
    return Setting(name, INT, minimum, maximum, **options)


def number(name: str, minimum: float, maximum: float, **options: Any) -> Setting:
    return Setting(name, FLOAT, minimum, maximum, **options)


def choice(name: str, choices: tuple[str, ...] | list[str], **options: Any) -> Setting:
    return Setting(name, CHOICE, choices=tuple(choices), **options)
