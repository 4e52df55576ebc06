from __future__ import annotations

from rest_framework import serializers

from recommender.config_schema import HYPERPARAMETERS
from recommender.serializers import ConfigOverridesSerializer
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


class HyperparameterOverrides(ConfigOverridesSerializer):
    """Per-run overrides of the recommender's LightFM settings, bounded by
    ``recommender.config_schema`` (the same bounds as the admin form and ``retrain``)."""

    setting_names = HYPERPARAMETERS


class TrainingRunInput(serializers.Serializer):
    recommender = serializers.SlugField(required=False, default="default", max_length=64)
    dry_run = serializers.BooleanField(required=False, default=False)
    no_promote = serializers.BooleanField(required=False, default=False)
    overrides = HyperparameterOverrides(required=False)
