"""The public REST API of the recommender app (thin views; the work is in services)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender.auth import HasScope
from recommender.exceptions import BatchTooLarge
from recommender.models import Scope
from recommender.services import event_batch_ingest, item_batch_upsert


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
