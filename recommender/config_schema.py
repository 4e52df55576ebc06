"""The one schema of a recommender's configuration: every setting's type, bounds and
allowed values, and the checks that enforce them.

Every way in derives from it, so each refuses the same values with the same message on
the same field:

- the model (``Recommender.clean_fields``), and through it the admin form;
- the API's training-run overrides (``recommender.serializers.config_serializer_fields``);
- ``manage.py retrain``'s hyper-parameter options (``config_clean`` in the command).

The bounds are documented maxima (README, "Recommender settings"): they keep one request
from asking for a model that fills a worker's memory or runs for days. The choice lists
live here too; ``recommender.models`` uses them for its fields."""

from __future__ import annotations

import functools
import math
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from recommender.metric_names import KEY_METRICS

# Error codes start with "setting_": a ModelForm replaces the message of an error whose
# code it knows itself ("invalid", "invalid_choice", ...) by its own, vaguer one.


class Loss(models.TextChoices):
    WARP = "warp", "WARP"
    BPR = "bpr", "BPR"
    WARP_KOS = "warp-kos", "k-OS WARP"
    LOGISTIC = "logistic", "Logistic"


class DuplicateAggregation(models.TextChoices):
    SUM = "sum", "Sum the weights of repeated (user, item) events"
    MAX = "max", "Keep the largest weight of repeated (user, item) events"


class HoldoutStrategy(models.TextChoices):
    PER_USER_RECENT = "per_user_recent", "Each user's most recent interactions"
    GLOBAL_CUTOFF = "global_cutoff", "Everything after one global time cutoff"


class PromotionPolicy(models.TextChoices):
    AUTO = "auto", "Promote a candidate that passes the gates and beats the champion"
    MANUAL = "manual", "Keep candidates until staff promote one"


class ChampionNoOverlapPolicy(models.TextChoices):
    HOLD = "hold", "Hold the candidate for manual promotion"
    SKIP = "skip", "Skip the champion comparison, with a warning on the run"


INT, FLOAT, CHOICE, BOOL, WEIGHTS, EVENT_TYPES = (
    "int",
    "float",
    "choice",
    "bool",
    "weights",
    "event_types",
)
TIMEZONE = "timezone"  # an IANA time zone name


@dataclass(frozen=True)
class Setting:
    """One setting. Bounds are inclusive unless ``*_exclusive``; ``WEIGHTS`` bounds apply
    to each weight."""

    name: str
    kind: str
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False
    maximum_exclusive: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def range_text(self) -> str:
        """``from 1 to 512``, ``greater than 0 and less than 1``, ``one of a, b``."""
        if self.kind == CHOICE:
            return "one of " + ", ".join(self.choices)
        if self.kind == TIMEZONE:
            return "an IANA time zone name, e.g. Europe/London or UTC"
        if self.kind == EVENT_TYPES:
            return "a list of event types from " + ", ".join(settings.RECSITE_EVENT_TYPES)
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
        if self.kind == WEIGHTS:
            return _clean_weights(value, self)
        if self.kind == TIMEZONE:
            return _clean_timezone(value)
        if self.kind == EVENT_TYPES:
            return _clean_event_types(value)
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


def _clean_weights(value: Any, setting: Setting) -> dict[str, float]:
    known = list(settings.RECSITE_EVENT_TYPES)
    if not isinstance(value, Mapping) or not value:
        raise ValidationError(
            'Give a weight per event type, e.g. {"view": 1, "like": 3}, with at least one '
            f"of the known types ({', '.join(known)}).",
            code="setting_invalid",
        )
    problems = []
    for event_type, weight in value.items():
        if event_type not in known:
            problems.append(
                f"{event_type!r} is not a known event type (RECSITE_EVENT_TYPES: "
                f"{', '.join(known)})"
            )
        elif (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or not setting.within(weight)
        ):
            problems.append(
                f"{event_type}: {weight!r} is not a weight; give a number {setting.range_text()}"
            )
    if problems:
        raise ValidationError("; ".join(problems) + ".", code="setting_invalid")
    return {event_type: float(weight) for event_type, weight in value.items()}


@functools.cache
def time_zone_names() -> frozenset[str]:
    """The IANA names the system's (or the tzdata package's) database knows."""
    return frozenset(zoneinfo.available_timezones())


def _clean_timezone(value: Any) -> str:
    if not isinstance(value, str) or value not in time_zone_names():
        raise ValidationError(
            f"{value!r} is not a time zone: give an IANA name such as Europe/London, "
            "America/New_York, Asia/Colombo or UTC.",
            code="setting_invalid",
        )
    return value


def _clean_event_types(value: Any) -> list[str]:
    known = list(settings.RECSITE_EVENT_TYPES)
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise ValidationError(
            'Give a list of event types, e.g. ["click"], from the known types '
            f"({', '.join(known)}).",
            code="setting_invalid",
        )
    unknown = [entry for entry in value if entry not in known]
    if unknown:
        raise ValidationError(
            f"{', '.join(map(repr, unknown))}: not a known event type (RECSITE_EVENT_TYPES: "
            f"{', '.join(known)}).",
            code="setting_invalid",
        )
    return list(dict.fromkeys(value))


def _int(name: str, minimum: int, maximum: int, *, nullable: bool = False) -> Setting:
    return Setting(name, INT, minimum, maximum, nullable=nullable)


def _choice(name: str, choices: Iterable[str]) -> Setting:
    return Setting(name, CHOICE, choices=tuple(choices))


# The documented maxima (README, "Recommender settings").
MAX_COMPONENTS = 512
MAX_EPOCHS = 1000
MAX_THREADS = 64
MAX_EVAL_K = 100

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        # LightFM
        _int("no_components", 1, MAX_COMPONENTS),
        _choice("loss", Loss.values),
        Setting("learning_rate", FLOAT, 0.0, 1.0, minimum_exclusive=True),
        _int("epochs", 1, MAX_EPOCHS),
        Setting("item_alpha", FLOAT, 0.0, 1.0),
        Setting("user_alpha", FLOAT, 0.0, 1.0),
        _int("num_threads", 1, MAX_THREADS),
        _int("random_seed", 0, 2**31 - 1),
        # Data
        Setting("event_weights", WEIGHTS, 0.0, 1000.0, minimum_exclusive=True),
        _choice("duplicate_aggregation", DuplicateAggregation.values),
        _int("window_days", 1, 36_500, nullable=True),
        Setting("use_item_features", BOOL),
        Setting("use_user_features", BOOL),
        # Evaluation
        _choice("holdout_strategy", HoldoutStrategy.values),
        Setting(
            "holdout_fraction", FLOAT, 0.0, 1.0, minimum_exclusive=True, maximum_exclusive=True
        ),
        _int("eval_k", 1, MAX_EVAL_K),
        _choice("key_metric", KEY_METRICS),
        # Gates
        _int("gate_min_users", 0, 10**9),
        _int("gate_min_items", 0, 10**9),
        _int("gate_min_events", 0, 10**12),
        Setting("gate_min_lift_over_popularity", FLOAT, -1.0, 100.0),
        Setting("champion_tolerance", FLOAT, 0.0, 1.0),
        _choice("champion_no_overlap_policy", ChampionNoOverlapPolicy.values),
        # Policy and retention
        _choice("promotion_policy", PromotionPolicy.values),
        Setting("refit_on_full_data", BOOL),
        _int("versions_kept", 1, 1000),
        # Schedule (the cron itself is checked by recommender.models.validate_schedule_cron)
        Setting("schedule_timezone", TIMEZONE),
        # Online metrics
        Setting("click_event_types", EVENT_TYPES),
        Setting("conversion_event_types", EVENT_TYPES),
    )
}

# The settings a run copies into ``ModelVersion.hyperparameters`` and that ``retrain`` and
# the API may override for one run.
HYPERPARAMETERS = (
    "no_components",
    "loss",
    "learning_rate",
    "epochs",
    "item_alpha",
    "user_alpha",
    "num_threads",
    "random_seed",
)


def config_clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """The given settings, checked and normalised; ``ValidationError`` keyed by setting
    (every bad one at once). Unknown names are errors too."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[ValidationError]] = {}
    for name, value in values.items():
        setting = SETTINGS.get(name)
        if setting is None:
            errors[name] = [
                ValidationError(f"{name!r} is not a recommender setting.", code="setting_unknown")
            ]
            continue
        try:
            cleaned[name] = setting.clean(value)
        except ValidationError as exc:
            errors[name] = [exc]
    if errors:
        raise ValidationError(errors)
    return cleaned
