"""Output serializers of the online loop's API: they render the selectors' dataclasses
and document the shapes in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from recommender.models import Recommender
from recommender.online.experiment_figures import ExperimentFigures
from recommender.online.selectors import OnlineFigures


class RateOutput(serializers.Serializer):
    successes = serializers.IntegerField()
    trials = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True, help_text="successes / trials")
    low = serializers.FloatField(help_text="95 % Wilson interval, lower bound")
    high = serializers.FloatField(help_text="95 % Wilson interval, upper bound")


class OnlineRowOutput(serializers.Serializer):
    period = serializers.DateTimeField(
        allow_null=True, help_text="The hour or day (UTC); null for the whole range."
    )
    model_version = serializers.IntegerField(help_text="0: the popularity fallback.")
    experiment = serializers.IntegerField(source="experiment_id", help_text="0: none.")
    arm = serializers.CharField()
    position = serializers.IntegerField(allow_null=True, help_text="null: every position.")
    lists = serializers.IntegerField()
    impressions = serializers.IntegerField(help_text="Items shown.")
    clicks = serializers.IntegerField()
    conversions = serializers.IntegerField()
    ctr = RateOutput(help_text="Clicks per impression.")
    conversion_rate = RateOutput(help_text="Conversions per impression.")


class OnlineMetricsOutput(serializers.Serializer):
    recommender = serializers.CharField()
    granularity = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rows = OnlineRowOutput(many=True)


def online_metrics_output(
    recommender: Recommender, query: Mapping[str, Any], rows: list[OnlineFigures]
) -> dict:
    return OnlineMetricsOutput(
        {
            "recommender": recommender.name,
            "granularity": str(query["granularity"]),
            "start": query["start"],
            "end": query["end"],
            "rows": rows,
        }
    ).data


class VerdictOutput(serializers.Serializer):
    label = serializers.CharField(
        source="text",
        help_text='"better", "worse", "no difference yet (needs about N more users)" or '
        '"sample ratio mismatch: do not trust".',
    )
    lift = serializers.FloatField(allow_null=True, help_text="Relative to the control.")
    lift_interval = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="Always-valid (mSPRT)."
    )
    difference = serializers.FloatField(allow_null=True)
    difference_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    p_value = serializers.FloatField(help_text="Always-valid p-value.")
    more_users = serializers.IntegerField(allow_null=True)


class ArmOutput(serializers.Serializer):
    name = serializers.CharField(source="arm.name")
    recommender = serializers.CharField(source="arm.version.recommender.name")
    version = serializers.IntegerField(source="arm.version.number")
    share = serializers.FloatField(source="arm.share")
    users = serializers.IntegerField()
    impressions = serializers.IntegerField()
    clicks = serializers.IntegerField()
    conversions = serializers.IntegerField()
    rate = RateOutput(help_text="The primary metric per impression.")
    verdict = VerdictOutput(allow_null=True, help_text="Against the control; null for it.")


class SampleRatioOutput(serializers.Serializer):
    statistic = serializers.FloatField()
    p_value = serializers.FloatField()
    alarm = serializers.BooleanField(help_text="p < 0.001: do not trust the verdicts.")


class ExperimentOutput(serializers.Serializer):
    id = serializers.IntegerField(source="experiment.id")
    recommender = serializers.CharField(source="experiment.recommender.name")
    name = serializers.CharField(source="experiment.name")
    status = serializers.CharField(source="experiment.status")
    primary_metric = serializers.CharField(source="experiment.primary_metric")
    started_at = serializers.DateTimeField(source="experiment.started_at")
    stopped_at = serializers.DateTimeField(source="experiment.stopped_at", allow_null=True)
    arms = ArmOutput(many=True)
    sample_ratio = SampleRatioOutput(allow_null=True)


def experiment_output(figures: ExperimentFigures) -> dict:
    return ExperimentOutput(figures).data
