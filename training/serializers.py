from __future__ import annotations

from rest_framework import serializers

from recommender.config_schema import SETTINGS
from recommender.families import (
    FAMILIES,
    RUN_SETTINGS,
    SEARCH_SETTINGS,
    Algorithm,
    family_params_text,
)
from training.models import TrainingRun


class TrainingRunOutput(serializers.ModelSerializer):
    recommender = serializers.CharField(source="recommender.name")
    version = serializers.IntegerField(source="version.number", allow_null=True, default=None)

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "recommender",
            "trigger",
            "triggered_by_label",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "phase",
            "progress",
            "phase_timings",
            "options",
            "data_stats",
            "metrics",
            "gate_results",
            "decision",
            "decision_reason",
            "error",
            "version",
        ]


class TrainingRunDetailOutput(TrainingRunOutput):
    """One run, with an auto run's search (every trial: too much for a list page)."""

    class Meta(TrainingRunOutput.Meta):
        fields = [*TrainingRunOutput.Meta.fields, "search"]


def _overrides_help() -> str:
    families = "; ".join(f"{f.name}: {family_params_text(f)}" for f in FAMILIES.values())
    run = ", ".join(
        f"{name} ({SETTINGS[name].range_text()}; default {SETTINGS[name].default})"
        for name in RUN_SETTINGS
    )
    search = ", ".join(
        f"{name} ({SETTINGS[name].range_text()}; default {SETTINGS[name].default})"
        for name in SEARCH_SETTINGS
    )
    return (
        "Hyper-parameters for this run, checked against the run's family (`algorithm`, "
        f"else the recommender's); an unknown or out-of-range one is a 400 under its name. "
        f"Any family: {run}. {families}. auto (searches the families itself): {search}."
    )


class TrainingRunInput(serializers.Serializer):
    recommender = serializers.SlugField(required=False, default="default", max_length=64)
    dry_run = serializers.BooleanField(required=False, default=False)
    no_promote = serializers.BooleanField(required=False, default=False)
    algorithm = serializers.ChoiceField(
        choices=list(Algorithm.values),
        required=False,
        help_text="The model family for this run, or auto: search the families and their "
        "hyper-parameters within tuning_budget_seconds (default: the recommender's).",
    )
    overrides = serializers.DictField(required=False, help_text=_overrides_help())
