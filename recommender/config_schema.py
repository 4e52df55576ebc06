"""The one schema of a recommender's configuration: every setting's type, bounds and
allowed values, and the checks that enforce them.

Every way in derives from it, so each refuses the same values with the same message on
the same field:

- the model (``Recommender.clean_fields``), and through it the admin form;
- the API's training-run overrides (``recommender.serializers.config_serializer_fields``
  for the run settings, ``run_overrides_clean`` for a family's hyper-parameters);
- ``manage.py retrain``'s options (``config_clean`` / ``run_overrides_clean``).

The model families' hyper-parameters are ``recommender.families``'; here they are one
setting, ``hyperparameters``, checked by that module.

The bounds are documented maxima (README, "Recommender settings"): they keep one request
from asking for a model that fills a worker's memory or runs for days. The choice lists
live here too; ``recommender.models`` uses them for its fields."""

from __future__ import annotations

import functools
import math
import zoneinfo
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from recommender.families import (
    RUN_SETTINGS,
    SEARCH_SETTINGS,
    Algorithm,
    family_get,
    family_params_clean,
    family_params_resolve,
    hyperparameters_clean,
)
from recommender.metric_names import KEY_METRICS
from recommender.setting_types import BOOL, FLOAT, MAPPING, WEIGHTS, Setting, choice, integer


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


TIMEZONE = "timezone"  # an IANA time zone name
EVENT_TYPES = "event_types"  # a list of RECSITE_EVENT_TYPES


@functools.cache
def time_zone_names() -> frozenset[str]:
    """The IANA names the system's (or the tzdata package's) database knows."""
    return frozenset(zoneinfo.available_timezones())


def _clean_timezone(value: Any, setting: Setting) -> str:
    if not isinstance(value, str) or value not in time_zone_names():
        raise ValidationError(
            f"{value!r} is not a time zone: give an IANA name such as Europe/London, "
            "America/New_York, Asia/Colombo or UTC.",
            code="setting_invalid",
        )
    return value


def _clean_event_types(value: Any, setting: Setting) -> list[str]:
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


# The documented maxima (README, "Recommender settings").
MAX_THREADS = 64
MAX_EVAL_K = 100
MAX_TUNING_BUDGET_SECONDS = 86_400
# The embedded demo's shop (1,000 users x 500 items, 50,000 events) searches ~20 trials
# in this many seconds.
DEFAULT_TUNING_BUDGET_SECONDS = 10

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        # The model family and its hyper-parameters (recommender.families)
        choice("algorithm", Algorithm.values),
        Setting("hyperparameters", MAPPING, cleaner=hyperparameters_clean),
        # How every family is fitted
        integer("num_threads", 1, MAX_THREADS, default=2, help="Threads for fitting."),
        integer("random_seed", 0, 2**31 - 1, default=42, help="Seed of every random choice."),
        # How long ``auto`` searches (the refit of the winner comes on top)
        integer(
            "tuning_budget_seconds",
            1,
            MAX_TUNING_BUDGET_SECONDS,
            default=DEFAULT_TUNING_BUDGET_SECONDS,
            help=(
                "Seconds the auto algorithm searches the families and their "
                "hyper-parameters (kept within 10 %); the refit of the winner comes on top."
            ),
        ),
        # Data
        Setting(
            "event_weights", WEIGHTS, 0.0, 1000.0, minimum_exclusive=True, cleaner=_clean_weights
        ),
        choice("duplicate_aggregation", DuplicateAggregation.values),
        integer("window_days", 1, 36_500, nullable=True),
        Setting("use_item_features", BOOL),
        Setting("use_user_features", BOOL),
        # Evaluation
        choice("holdout_strategy", HoldoutStrategy.values),
        Setting(
            "holdout_fraction", FLOAT, 0.0, 1.0, minimum_exclusive=True, maximum_exclusive=True
        ),
        integer("eval_k", 1, MAX_EVAL_K),
        choice("key_metric", KEY_METRICS),
        # Gates
        integer("gate_min_users", 0, 10**9),
        integer("gate_min_items", 0, 10**9),
        integer("gate_min_events", 0, 10**12),
        Setting("gate_min_lift_over_popularity", FLOAT, -1.0, 100.0),
        Setting("champion_tolerance", FLOAT, 0.0, 1.0),
        choice("champion_no_overlap_policy", ChampionNoOverlapPolicy.values),
        # Policy and retention
        choice("promotion_policy", PromotionPolicy.values),
        Setting("refit_on_full_data", BOOL),
        integer("versions_kept", 1, 1000),
        # Schedule (the cron itself is checked by recommender.models.validate_schedule_cron)
        Setting(
            "schedule_timezone",
            TIMEZONE,
            cleaner=_clean_timezone,
            help="an IANA time zone name, e.g. Europe/London or UTC",
        ),
        # Online metrics
        Setting(
            "click_event_types",
            EVENT_TYPES,
            cleaner=_clean_event_types,
            help="a list of event types from RECSITE_EVENT_TYPES",
        ),
        Setting(
            "conversion_event_types",
            EVENT_TYPES,
            cleaner=_clean_event_types,
            help="a list of event types from RECSITE_EVENT_TYPES",
        ),
    )
}


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


def run_overrides_clean(algorithm: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """One run's overrides, checked; ``ValidationError`` keyed by name (unknown ones too).
    A family's run takes its hyper-parameters and the run settings (``RUN_SETTINGS``);
    an ``auto`` run takes the run settings and ``SEARCH_SETTINGS`` (it chooses the
    hyper-parameters itself). ``FamilyUnavailable`` for an unknown algorithm."""
    if algorithm == Algorithm.AUTO:
        settings_names = (*RUN_SETTINGS, *SEARCH_SETTINGS)
        family_check = None
    else:
        settings_names = RUN_SETTINGS
        family = family_get(algorithm)

        def family_check(values: Mapping[str, Any]) -> dict[str, Any]:
            return family_params_clean(family, values)

    errors: dict[str, list] = {}
    own = {name: value for name, value in overrides.items() if name not in settings_names}
    given = {name: value for name, value in overrides.items() if name in settings_names}
    if family_check is None:
        for name in own:
            errors[name] = [
                ValidationError(
                    f"{name!r} cannot be set for an auto run: it searches the families' "
                    f"hyper-parameters itself (give {', '.join(settings_names)}).",
                    code="setting_unknown",
                )
            ]
    cleaned: dict[str, Any] = {}
    checks = [(config_clean, given)]
    if family_check is not None:
        checks.append((family_check, own))
    for clean, values in checks:
        try:
            cleaned.update(clean(values))
        except ValidationError as exc:
            errors.update(exc.error_dict)
    if errors:
        raise ValidationError(errors)
    return cleaned


def run_override_names(algorithm: str) -> tuple[str, ...]:
    """What a run of ``algorithm`` may override."""
    if algorithm == Algorithm.AUTO:
        return (*RUN_SETTINGS, *SEARCH_SETTINGS)
    return (*(p.name for p in family_get(algorithm).params), *RUN_SETTINGS)


def run_hyperparameters(
    *, recommender_values: Mapping[str, Any], algorithm: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """What one run fits, recorded on the run, the version and the artifact manifest:
    ``{"family": name, <every family hyper-parameter>, num_threads, random_seed}`` from
    the schema's defaults, the recommender's values (``recommender_values``: its
    ``hyperparameters``, run settings and search settings) and the run's checked
    ``overrides``. An ``auto`` run records ``{"family": "auto", tuning_budget_seconds,
    num_threads, random_seed}``: what it fits is the search's winner (the version's)."""
    run = {name: overrides.get(name, recommender_values[name]) for name in RUN_SETTINGS}
    if algorithm == Algorithm.AUTO:
        search = {name: overrides.get(name, recommender_values[name]) for name in SEARCH_SETTINGS}
        return {"family": Algorithm.AUTO.value, **search, **run}
    family = family_get(algorithm)
    stored = recommender_values.get("hyperparameters") or {}
    own = {name: value for name, value in overrides.items() if name not in RUN_SETTINGS}
    return {"family": family.name, **family_params_resolve(family, stored, own), **run}
