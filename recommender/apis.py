"""The public REST API of the recommender app (thin views; the work is in services)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender.auth import HasScope
from recommender.exceptions import BatchTooLarge, NoActiveVersion
from recommender.models import Scope
from recommender.selectors import active_version_get, recommender_get
from recommender.serializers import ActiveModelOutput, ModelVersionOutput
from recommender.services import event_batch_ingest, item_batch_upsert
from recsite.pagination import BoundedLimitOffsetPagination


def _batch(request, key: str, limit: int) -> list:
    body = request.data
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise serializers.ValidationError({key: [f"Send {{{key!r}: [...]}} with a list."]})
    entries = body[key]
    if len(entries) > limit:
        raise BatchTooLarge(
            f"A batch holds at most {limit} {key}; this one has {len(entries)}.",
            max=limit,
            received=len(entries),
        )
    return entries


class ErrorSerializer(serializers.Serializer):
    class ErrorBody(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        detail = serializers.JSONField(allow_null=True)

    error = ErrorBody()


class EventInSerializer(serializers.Serializer):
    """Documents an event; validation itself is ``recommender.ingest.parse_events``."""

    event_id = serializers.CharField(max_length=255, help_text="Client id; resending is safe.")
    user_id = serializers.CharField(max_length=255)
    item_id = serializers.CharField(max_length=255)
    type = serializers.CharField(help_text="One of RECSITE_EVENT_TYPES, e.g. view, like.")
    timestamp = serializers.DateTimeField(help_text="ISO-8601; naive means UTC.")
    weight = serializers.FloatField(required=False, min_value=0, help_text="e.g. a rating")
    recommendation_id = serializers.CharField(required=False, max_length=64)


class EventBatchInSerializer(serializers.Serializer):
    events = EventInSerializer(many=True)


class EventBatchOutSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class EventBatchApi(APIView):
    permission_classes = [HasScope(Scope.EVENTS_WRITE)]

    @extend_schema(
        request=EventBatchInSerializer,
        responses={201: EventBatchOutSerializer, 400: ErrorSerializer, 413: ErrorSerializer},
        summary="Send a batch of interaction events (idempotent on event_id)",
    )
    def post(self, request):
        entries = _batch(request, "events", settings.RECSITE_EVENT_BATCH_MAX)
        result = event_batch_ingest(raw_events=entries)
        return Response(EventBatchOutSerializer(result).data, status=201)


class ItemInSerializer(serializers.Serializer):
    item_id = serializers.CharField(max_length=255)
    title = serializers.CharField(required=False, max_length=500)
    categories = serializers.ListField(child=serializers.CharField(max_length=100), required=False)
    active = serializers.BooleanField(required=False)


class ItemBatchInSerializer(serializers.Serializer):
    items = ItemInSerializer(many=True)


class ItemBatchOutSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


class ItemBatchApi(APIView):
    permission_classes = [HasScope(Scope.CATALOG_WRITE)]

    @extend_schema(
        request=ItemBatchInSerializer,
        responses={200: ItemBatchOutSerializer, 400: ErrorSerializer, 413: ErrorSerializer},
        summary="Create or update catalog items (fields left out keep their value)",
    )
    def post(self, request):
        entries = _batch(request, "items", settings.RECSITE_ITEM_BATCH_MAX)
        result = item_batch_upsert(raw_items=entries)
        return Response(ItemBatchOutSerializer(result).data, status=200)


RECOMMENDER_PARAMETER = OpenApiParameter(
    "recommender", OpenApiTypes.STR, description="recommender name (default: default)"
)


class RecommenderQuery(serializers.Serializer):
    recommender = serializers.SlugField(required=False, default="default", max_length=64)


class ModelVersionListApi(APIView):
    permission_classes = [HasScope(Scope.TRAINING_WRITE, Scope.RECOMMENDATIONS_READ)]

    @extend_schema(
        parameters=[RECOMMENDER_PARAMETER],
        responses={200: ModelVersionOutput(many=True), 404: ErrorSerializer},
        summary="A recommender's model versions, newest first",
    )
    def get(self, request):
        query = RecommenderQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        recommender = recommender_get(name=query.validated_data["recommender"])
        versions = recommender.versions.select_related("recommender").order_by("-number")
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(ModelVersionOutput(page, many=True).data)


class ActiveModelApi(APIView):
    permission_classes = [HasScope(Scope.RECOMMENDATIONS_READ, Scope.TRAINING_WRITE)]

    @extend_schema(
        parameters=[RECOMMENDER_PARAMETER],
        responses={200: ActiveModelOutput, 404: ErrorSerializer},
        summary="The active model version: number, age, metrics, data stats",
    )
    def get(self, request):
        query = RecommenderQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        recommender = recommender_get(name=query.validated_data["recommender"])
        version = active_version_get(recommender=recommender)
        if version is None:
            raise NoActiveVersion(
                f"Recommender {recommender.name!r} has no active version yet.",
                recommender=recommender.name,
            )
        return Response(ActiveModelOutput(version).data)
