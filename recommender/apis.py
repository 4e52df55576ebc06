"""The public REST API of the recommender app (thin views; the work is in services)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender.auth import HasScope, api_key_actor_label
from recommender.exceptions import BatchTooLarge, NoActiveVersion
from recommender.ids import MAX_ID_LENGTH
from recommender.ingest import MAX_POSITION
from recommender.metrics import ingest_count, served_response_count
from recommender.models import Recommender, Scope, api_key_client
from recommender.pagination import PAGE_PARAMETERS, BoundedLimitOffsetPagination, paginated
from recommender.renderers import OrjsonRenderer
from recommender.selectors import active_version_get, model_version_get, recommender_get
from recommender.serializers import (
    ActiveModelOutput,
    ModelVersionOutput,
    PromotionEventOutput,
    RecommendationsOutput,
    SimilarItemsOutput,
)
from recommender.services import (
    event_batch_ingest,
    item_batch_upsert,
    model_version_promote,
    model_version_rollback,
    user_erase,
)
from recommender.serving.responses import recommendations_get, similar_items_get


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

    event_id = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        help_text="Your id for the event, unique per client (API key name); resending is safe.",
    )
    user_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    item_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    type = serializers.CharField(help_text="One of RECSITE_EVENT_TYPES, e.g. view, like.")
    timestamp = serializers.DateTimeField(
        help_text="ISO-8601, naive means UTC; from RECSITE_EVENT_MIN_TIMESTAMP (1990-01-01) "
        "to now + RECSITE_EVENT_FUTURE_TOLERANCE_SECONDS."
    )
    weight = serializers.FloatField(
        required=False,
        min_value=0,
        help_text="e.g. a rating; > 0 and at most RECSITE_EVENT_WEIGHT_MAX (100)",
    )
    recommendation_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text="The recommendation_id of the list the user acted on, if any: the event is "
        "attributed to that list when it is real (else to the user's latest list showing "
        "the item, within RECSITE_ATTRIBUTION_WINDOW_SECONDS).",
    )
    position = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_POSITION,
        help_text="Where the client showed the item (1 = first), if it was in a list.",
    )


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
        summary="Send a batch of interaction events (idempotent on event_id per API key name)",
    )
    def post(self, request):
        client = api_key_client(request.auth.name)
        try:
            entries = _batch(request, "events", settings.RECSITE_EVENT_BATCH_MAX)
        except BatchTooLarge as exc:
            ingest_count(client=client, refused=exc.detail["received"], code=exc.code)
            raise
        result = event_batch_ingest(raw_events=entries, client=client)
        return Response(EventBatchOutSerializer(result).data, status=201)


class UserEraseQuery(serializers.Serializer):
    reason = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=500,
        help_text="Kept in the audit trail, e.g. the erasure request's reference.",
    )


USER_ERASE_QUERY = UserEraseQuery()


class UserApi(APIView):
    permission_classes = [HasScope(Scope.EVENTS_WRITE)]

    @extend_schema(
        parameters=[UserEraseQuery],
        request=None,
        responses={204: None, 400: ErrorSerializer},
        summary="Erase a user: all their events and their profile (204, also when unknown)",
        description=(
            "Deletes every event of the user (from every client) and the user's profile, "
            "and records the erasure (key, time, counts, reason). Serving treats the user "
            "as unknown within seconds; the next training run no longer sees them. "
            "Idempotent: a user with nothing stored also gets 204, so the answer does not "
            "tell whether the user existed."
        ),
    )
    def delete(self, request, user_id: str):
        path_id_check("user_id", user_id)
        data = query_validate(USER_ERASE_QUERY, request.query_params)
        user_erase(
            user_id=user_id,
            actor_label=f"api-key:{request.auth.prefix} ({request.auth.name})",
            reason=data["reason"],
        )
        return Response(status=204)


class ItemInSerializer(serializers.Serializer):
    item_id = serializers.CharField(max_length=MAX_ID_LENGTH)
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


RECOMMENDER_QUERY = RecommenderQuery()


def query_validate(query: serializers.Serializer, params: QueryDict) -> dict:
    """``query``'s fields validated from a query string (400 on errors).

    ``query`` is an instance built once at import: DRF deep-copies a serializer's fields
    for every new instance, which on the recommendations path cost more than the
    scoring. Validating through a shared instance is safe: ``run_validation`` keeps no
    state on it. Valid query strings repeat (most clients send the same few), so their
    results are kept (``_validated``); a caller gets its own copy of the dict."""
    frozen = tuple(sorted((name, tuple(values)) for name, values in params.lists()))
    return {
        name: list(value) if isinstance(value, list) else value
        for name, value in _validated(query, frozen).items()
    }


@lru_cache(maxsize=1024)
def _validated(query: serializers.Serializer, frozen: tuple) -> dict:
    params = QueryDict(mutable=True)
    for name, values in frozen:
        params.setlist(name, list(values))
    return query.run_validation(params)


def recommender_from_query(request) -> Recommender:
    """The recommender named by ``?recommender=`` (default ``default``); 400 / 404."""
    return recommender_get(
        name=query_validate(RECOMMENDER_QUERY, request.query_params)["recommender"]
    )


def paginated_response(request, view: APIView, queryset, output: type) -> Response:
    """One bounded page (``limit`` <= 100) of ``queryset`` rendered with ``output``."""
    paginator = BoundedLimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(output(page, many=True).data)


class ModelVersionListApi(APIView):
    permission_classes = [HasScope(Scope.TRAINING_WRITE, Scope.RECOMMENDATIONS_READ)]

    @extend_schema(
        parameters=[RECOMMENDER_PARAMETER, *PAGE_PARAMETERS],
        responses={
            200: paginated(ModelVersionOutput, "ModelVersionPage"),
            404: ErrorSerializer,
        },
        summary="A recommender's model versions, newest first",
    )
    def get(self, request):
        recommender = recommender_from_query(request)
        versions = recommender.versions.select_related("recommender").order_by("-number")
        return paginated_response(request, self, versions, ModelVersionOutput)


class ActiveModelApi(APIView):
    permission_classes = [HasScope(Scope.RECOMMENDATIONS_READ, Scope.TRAINING_WRITE)]

    @extend_schema(
        parameters=[RECOMMENDER_PARAMETER],
        responses={200: ActiveModelOutput, 404: ErrorSerializer},
        summary="The active model version: number, age, metrics, data stats",
    )
    def get(self, request):
        recommender = recommender_from_query(request)
        version = active_version_get(recommender=recommender)
        if version is None:
            raise NoActiveVersion(
                f"Recommender {recommender.name!r} has no active version yet.",
                recommender=recommender.name,
            )
        return Response(ActiveModelOutput(version).data)


class PromotionInput(serializers.Serializer):
    recommender = serializers.SlugField(required=False, default="default", max_length=64)
    reason = serializers.CharField(max_length=500, help_text="Why: kept in the audit trail.")


VERSION_NUMBER_PARAMETER = OpenApiParameter(
    "number", OpenApiTypes.INT, OpenApiParameter.PATH, description="A version number."
)


class ModelVersionPromoteApi(APIView):
    """The admin's and ``manage.py promote``'s service, with the key as the actor."""

    permission_classes = [HasScope(Scope.TRAINING_WRITE)]

    @extend_schema(
        parameters=[VERSION_NUMBER_PARAMETER],
        request=PromotionInput,
        responses={201: PromotionEventOutput, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Make version {number} the active one (audited; the old one becomes the "
        "rollback target)",
        description=(
            "404 `recommender_not_found` / `model_version_not_found`; 409 "
            "`version_not_promotable` (rejected, artifact deleted or failing verification) "
            "or `version_already_active`."
        ),
    )
    def post(self, request, number: int):
        data = PromotionInput(data=request.data)
        data.is_valid(raise_exception=True)
        recommender = recommender_get(name=data.validated_data["recommender"])
        event = model_version_promote(
            version=model_version_get(recommender=recommender, number=number),
            actor_label=api_key_actor_label(request.auth),
            reason=data.validated_data["reason"],
        )
        return Response(PromotionEventOutput(event).data, status=201)


class ModelVersionRollbackApi(APIView):
    """``{number}`` is the version to roll back *from*, which must be the active one:
    a retried or concurrent rollback then gets 409 instead of undoing the first one."""

    permission_classes = [HasScope(Scope.TRAINING_WRITE)]

    @extend_schema(
        parameters=[VERSION_NUMBER_PARAMETER],
        request=PromotionInput,
        responses={201: PromotionEventOutput, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Roll back from the active version {number} to the version active before it",
        description=(
            "`number` must be the active version (the one being rolled back), so that a "
            "retried or concurrent rollback cannot roll back twice. 404 "
            "`recommender_not_found` / `model_version_not_found`; 409 `version_not_active` "
            "(`detail.active_version` says which is) or `no_rollback_target`."
        ),
    )
    def post(self, request, number: int):
        data = PromotionInput(data=request.data)
        data.is_valid(raise_exception=True)
        recommender = recommender_get(name=data.validated_data["recommender"])
        model_version_get(recommender=recommender, number=number)
        event = model_version_rollback(
            recommender=recommender,
            actor_label=api_key_actor_label(request.auth),
            reason=data.validated_data["reason"],
            from_number=number,
        )
        return Response(PromotionEventOutput(event).data, status=201)


# --- Serving -------------------------------------------------------------------------

MAX_EXCLUDED = 100


class RecommendationsQuery(RecommenderQuery):
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=100)
    offset = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=settings.RECSITE_RECOMMENDATIONS_MAX_OFFSET,
        help_text="At most RECSITE_RECOMMENDATIONS_MAX_OFFSET (1000).",
    )
    exclude = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=MAX_EXCLUDED * (MAX_ID_LENGTH + 1),
        help_text=(
            f"Comma-separated item ids never to return (at most {MAX_EXCLUDED}, each at "
            f"most {MAX_ID_LENGTH} characters)."
        ),
    )
    category = serializers.CharField(required=False, max_length=100)
    explain = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            "Add to each item `source` (what ranked it) and `because` (up to 3 of the "
            "user's items that contributed most). Off by default: it costs extra work."
        ),
    )

    def validate_exclude(self, value: str) -> list[str]:
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if len(ids) > MAX_EXCLUDED:
            raise serializers.ValidationError(f"At most {MAX_EXCLUDED} item ids.")
        if any(len(i) > MAX_ID_LENGTH for i in ids):
            raise serializers.ValidationError(
                f"Item ids have at most {MAX_ID_LENGTH} characters; no item has a longer one."
            )
        return ids


RECOMMENDATIONS_QUERY = RecommendationsQuery()


def path_id_check(field: str, value: str) -> str:
    """A user or item id from the URL path: at most ``MAX_ID_LENGTH`` characters (no
    stored id is longer), else a 400 naming the field, before anything looks it up."""
    if len(value) > MAX_ID_LENGTH:
        raise serializers.ValidationError(
            {field: [f"Ensure this field has no more than {MAX_ID_LENGTH} characters."]}
        )
    return value


class JsonOnly(BaseContentNegotiation):
    """Always JSON, whatever ``Accept`` says: the serving endpoints are called by apps
    thousands of times a second, and parsing ``Accept`` against the browsable API's
    renderer was a tenth of a request's CPU."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# A serving endpoint: ``answer`` turns the query string and the path's ids into the
# response body. Its GET is served by a plain Django view
# (``recommender.serving_views.serving_view``) that runs this class's authentication,
# permissions, throttles, error answers and renderer without DRF's dispatch; this DRF view
# documents the endpoint in the schema and answers the other methods (HEAD, OPTIONS, 405).
# (A comment, not a docstring: drf-spectacular would publish an inherited docstring as the
# operations' description.)
class ServingApi(APIView):
    permission_classes = [HasScope(Scope.RECOMMENDATIONS_READ)]
    renderer_classes = [OrjsonRenderer]
    content_negotiation_class = JsonOnly

    @staticmethod
    def answer(params: QueryDict, **path: str) -> dict:
        raise NotImplementedError

    def get(self, request, **path: str) -> Response:
        return Response(self.answer(request.query_params, **path))


def recommendations_answer(params: QueryDict, *, user_id: str) -> dict:
    """The body of ``GET recommendations/{user_id}``: validation here, the work in
    ``recommender.serving``."""
    path_id_check("user_id", user_id)
    data = query_validate(RECOMMENDATIONS_QUERY, params)
    page = recommendations_get(
        recommender=data["recommender"],
        user_id=user_id,
        limit=data["limit"],
        offset=data["offset"],
        exclude=data["exclude"],
        category=data.get("category"),
        explain=data["explain"],
    )
    served_response_count(
        recommender=page.recommender, endpoint="recommendations", fallback=page.fallback
    )
    # A plain dict, not the output serializer (which documents the shape): it is the
    # hot path, and serializing 100 items field by field costs more than the scoring.
    return {
        "recommender": page.recommender,
        "user_id": page.user_id,
        "model_version": page.model_version,
        "recommendation_id": page.recommendation_id,
        "experiment": page.experiment,
        "fallback": page.fallback,
        "items": page.items,
        "pagination": {
            "limit": page.limit,
            "offset": page.offset,
            "total": page.total,
            "has_more": page.has_more,
        },
    }


@extend_schema_view(
    get=extend_schema(
        parameters=[RecommendationsQuery],
        responses={
            200: RecommendationsOutput,
            400: ErrorSerializer,
            404: ErrorSerializer,
            503: ErrorSerializer,
        },
        summary="Ranked items for a user (paged; seen, excluded and inactive items filtered)",
        description=(
            "`fallback` is null when the model ranked the items, `unknown_user` when the "
            "model does not know the user (popularity), `no_model` when no model is loaded "
            "yet (popularity from the events). 503 `no_model` when there are no events "
            "either. Pages are consistent within one `model_version`."
        ),
    )
)
class RecommendationsApi(ServingApi):
    answer = staticmethod(recommendations_answer)


class SimilarItemsQuery(RecommenderQuery):
    limit = serializers.IntegerField(required=False, default=10, min_value=1, max_value=100)


SIMILAR_ITEMS_QUERY = SimilarItemsQuery()


def similar_items_answer(params: QueryDict, *, item_id: str) -> dict:
    """The body of ``GET items/{item_id}/similar``."""
    path_id_check("item_id", item_id)
    data = query_validate(SIMILAR_ITEMS_QUERY, params)
    similar = similar_items_get(
        recommender=data["recommender"], item_id=item_id, limit=data["limit"]
    )
    served_response_count(recommender=similar["recommender"], endpoint="similar", fallback=None)
    return similar


@extend_schema_view(
    get=extend_schema(
        parameters=[SimilarItemsQuery],
        responses={
            200: SimilarItemsOutput,
            400: ErrorSerializer,
            404: ErrorSerializer,
            503: ErrorSerializer,
        },
        summary="Items nearest to an item",
        description=(
            "By the model's family: the cosine of the item embeddings (lightfm, als, svd; "
            "new catalogue items included), the item's row of the item-item matrix (ease, "
            "itemknn), or the cosine of the items' users in the training interactions "
            "(popularity). 503 `no_model` while no model is loaded."
        ),
    )
)
class SimilarItemsApi(ServingApi):
    answer = staticmethod(similar_items_answer)
