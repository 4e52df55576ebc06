"""Output serializers shared by the API views (and documented in the schema)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from recommender.models import ModelVersion


class ModelVersionOutput(serializers.ModelSerializer):
    recommender = serializers.CharField(source="recommender.name")

    class Meta:
        model = ModelVersion
        fields = [
            "recommender",
            "number",
            "status",
            "created_at",
            "artifact_sha256",
            "artifact_size",
            "metrics",
            "hyperparameters",
            "data_window",
            "data_stats",
        ]


class ActiveModelOutput(ModelVersionOutput):
    version = serializers.IntegerField(source="number")
    trained_at = serializers.DateTimeField(source="created_at")
    age_seconds = serializers.SerializerMethodField()

    class Meta(ModelVersionOutput.Meta):
        fields = [
            "recommender",
            "version",
            "trained_at",
            "age_seconds",
            "metrics",
            "hyperparameters",
            "data_window",
            "data_stats",
        ]

    def get_age_seconds(self, version: ModelVersion) -> float:
        return round((timezone.now() - version.created_at).total_seconds(), 1)
