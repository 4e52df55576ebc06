from __future__ import annotations

from rest_framework import serializers

from recommender.models import Loss
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


class HyperparameterOverrides(serializers.Serializer):
    no_components = serializers.IntegerField(required=False, min_value=1, max_value=1024)
    loss = serializers.ChoiceField(choices=Loss.choices, required=False)
    learning_rate = serializers.FloatField(required=False, min_value=1e-6, max_value=10)
    epochs = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    item_alpha = serializers.FloatField(required=False, min_value=0, max_value=10)
    user_alpha = serializers.FloatField(required=False, min_value=0, max_value=10)
    num_threads = serializers.IntegerField(required=False, min_value=1, max_value=256)
    random_seed = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


class TrainingRunInput(serializers.Serializer):
    recommender = serializers.SlugField(required=False, default="default", max_length=64)
    dry_run = serializers.BooleanField(required=False, default=False)
    no_promote = serializers.BooleanField(required=False, default=False)
    overrides = HyperparameterOverrides(required=False)
