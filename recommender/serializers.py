"""Output serializers shared by the API views (and documented in the schema)."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from recommender.models import ModelVersion, PromotionEvent
from recommender.serving.state import ITEM_SOURCES


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


class RankedItemOutput(serializers.Serializer):
    item_id = serializers.CharField()
    score = serializers.FloatField(help_text="Model score, cosine, or popularity (fallback).")
    rank = serializers.IntegerField(help_text="1-based position in the whole ranking.")
    title = serializers.CharField()
    categories = serializers.ListField(child=serializers.CharField())


class RecommendedItemOutput(RankedItemOutput):
    source = serializers.ChoiceField(
        choices=ITEM_SOURCES,
        required=False,
        help_text=(
            "With `explain=true` only. `model`: the model ranked the item; "
            "`cold_start_category`: a catalogue item the model has not seen, scored through "
            "its categories; `popularity_fallback`: popularity (no model, or an unknown user)."
        ),
    )
    because = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=(
            "With `explain=true` only. Up to 3 of the user's items (ids) that contributed "
            "most, the largest first: the largest terms of the score (item-item models) or "
            "the history items nearest by embedding cosine (factor models); empty for "
            "popularity."
        ),
    )


class PaginationOutput(serializers.Serializer):
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    total = serializers.IntegerField(
        help_text=(
            "Items eligible under the recommender's catalogue and the `category` filter, "
            "before the user's own history and `exclude` are removed: it does not depend "
            "on what the user has seen."
        )
    )
    has_more = serializers.BooleanField(help_text="Whether the next page holds items.")


class ExperimentArmOutput(serializers.Serializer):
    id = serializers.IntegerField()
    arm = serializers.CharField()


class RecommendationsOutput(serializers.Serializer):
    """Documents the response (the view builds it as a plain dict)."""

    recommender = serializers.CharField()
    user_id = serializers.CharField()
    model_version = serializers.IntegerField(allow_null=True)
    recommendation_id = serializers.CharField(
        help_text="Send it back with the events this list leads to (a UUIDv7 in hex)."
    )
    experiment = ExperimentArmOutput(
        allow_null=True,
        help_text="The running experiment and the arm this user is in; null when none.",
    )
    fallback = serializers.ChoiceField(
        choices=["unknown_user", "no_model"], allow_null=True, help_text="null: ranked by the model"
    )
    items = RecommendedItemOutput(many=True)
    pagination = PaginationOutput()


class SimilarItemsOutput(serializers.Serializer):
    recommender = serializers.CharField()
    item_id = serializers.CharField()
    model_version = serializers.IntegerField()
    recommendation_id = serializers.CharField(
        help_text="Send it back with the events this list leads to (a UUIDv7 in hex)."
    )
    items = RankedItemOutput(many=True)


class PromotionEventOutput(serializers.ModelSerializer):
    """One change of the active version, as the audit trail records it."""

    recommender = serializers.CharField(source="recommender.name")
    from_version = serializers.IntegerField(
        source="from_version.number", allow_null=True, default=None
    )
    to_version = serializers.IntegerField(source="to_version.number")

    class Meta:
        model = PromotionEvent
        fields = [
            "id",
            "recommender",
            "kind",
            "from_version",
            "to_version",
            "actor_label",
            "reason",
            "created_at",
        ]
