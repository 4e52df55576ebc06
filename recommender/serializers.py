"""Output serializers shared by the API views (and documented in the schema)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.utils import timezone
from rest_framework import serializers

from recommender.config_schema import BOOL, CHOICE, FLOAT, INT, SETTINGS, TIMEZONE
from recommender.models import ModelVersion, PromotionEvent


def config_serializer_fields(names: Iterable[str]) -> dict[str, serializers.Field]:
    """Optional DRF fields for the named recommender settings, derived from
    ``recommender.config_schema``: the bounds show in the OpenAPI schema and the schema's
    own check runs as the field's validator, so an error names the field."""
    fields: dict[str, serializers.Field] = {}
    for name in names:
        setting = SETTINGS[name]
        common = {
            "required": False,
            "allow_null": setting.nullable,
            "validators": [setting.clean],
        }
        if setting.kind == INT:
            field = serializers.IntegerField(
                min_value=int(setting.minimum),
                max_value=int(setting.maximum),
                help_text=f"A whole number {setting.range_text()}.",
                **common,
            )
        elif setting.kind == FLOAT:
            field = serializers.FloatField(
                min_value=setting.minimum,
                max_value=setting.maximum,
                help_text=f"A number {setting.range_text()}.",
                **common,
            )
        elif setting.kind == CHOICE:
            field = serializers.ChoiceField(choices=setting.choices, **common)
        elif setting.kind == BOOL:
            field = serializers.BooleanField(**common)
        elif setting.kind == TIMEZONE:
            field = serializers.CharField(help_text="An IANA time zone name.", **common)
        else:
            field = serializers.DictField(
                child=serializers.FloatField(),
                help_text=f"Weight per event type, each {setting.range_text()}.",
                **common,
            )
        fields[name] = field
    return fields


class ConfigOverridesSerializer(serializers.Serializer):
    """Some of a recommender's settings (``setting_names``), each checked by the schema;
    a name that is not one of them is an error on that name, never silently ignored."""

    setting_names: tuple[str, ...] = ()

    def get_fields(self) -> dict[str, serializers.Field]:
        return config_serializer_fields(self.setting_names)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.setting_names)
            if unknown:
                message = f"Not one of the settings allowed here: {', '.join(self.setting_names)}."
                raise serializers.ValidationError({name: [message] for name in unknown})
        return super().to_internal_value(data)


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
    items = RankedItemOutput(many=True)
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
