"""The online loop's API (thin views): online metrics and experiments, scope
``training:write``."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender.apis import ErrorSerializer, query_validate
from recommender.auth import HasScope, api_key_actor_label
from recommender.models import Scope
from recommender.online.experiment_figures import experiment_figures
from recommender.online.experiments import (
    MAX_TREATMENTS,
    TreatmentSpec,
    experiment_create,
    experiment_get,
    experiment_stop,
)
from recommender.online.models import PrimaryMetric
from recommender.online.selectors import MAX_RANGE, Granularity, online_metrics
from recommender.online.serializers import (
    ExperimentOutput,
    OnlineMetricsOutput,
    experiment_output,
    online_metrics_output,
)
from recommender.selectors import recommender_get


class OnlineMetricsQuery(serializers.Serializer):
    recommender = serializers.SlugField(required=False, default="default", max_length=64)
    granularity = serializers.ChoiceField(
        choices=[g.value for g in Granularity], required=False, default=Granularity.DAY.value
    )
    start = serializers.DateTimeField(
        required=False, help_text="Lists shown from (default: end minus 7 days, or 2 for hours)."
    )
    end = serializers.DateTimeField(required=False, help_text="Lists shown before (default: now).")
    by_position = serializers.BooleanField(
        required=False, default=False, help_text="One row per position (1 to 100) too."
    )
    version = serializers.IntegerField(
        required=False, min_value=0, help_text="Only this model version (0: the fallback)."
    )
    experiment = serializers.IntegerField(required=False, min_value=1)

    def validate(self, data: dict) -> dict:
        granularity = Granularity(data["granularity"])
        end = data.get("end") or timezone.now()
        default_span = timedelta(days=2 if granularity == Granularity.HOUR else 7)
        start = data.get("start") or end - default_span
        if start >= end:
            raise serializers.ValidationError({"start": ["Must be before end."]})
        if end - start > MAX_RANGE[granularity]:
            raise serializers.ValidationError(
                {"start": [f"At most {MAX_RANGE[granularity].days} days by {granularity}."]}
            )
        return {**data, "start": start, "end": end, "granularity": granularity}


ONLINE_METRICS_QUERY = OnlineMetricsQuery()


class OnlineMetricsApi(APIView):
    permission_classes = [HasScope(Scope.TRAINING_WRITE)]

    @extend_schema(
        parameters=[OnlineMetricsQuery],
        responses={200: OnlineMetricsOutput, 400: ErrorSerializer, 404: ErrorSerializer},
        summary="Online metrics: impressions, clicks, conversions, CTR and conversion rate "
        "(95 % Wilson intervals) per period, version, experiment arm and position",
        description=(
            "From the hourly aggregates of the attribution pass (beat, every minute): an "
            "event counts once it is a minute old. Clicks and conversions are counted in "
            "the hour their list was shown. Rates are per impression (item shown)."
        ),
    )
    def get(self, request):
        data = query_validate(ONLINE_METRICS_QUERY, request.query_params)
        recommender = recommender_get(name=data["recommender"])
        rows = online_metrics(
            recommender=recommender,
            start=data["start"],
            end=data["end"],
            granularity=data["granularity"],
            by_position=data["by_position"],
            model_versions=[data["version"]] if "version" in data else None,
            experiment_id=data.get("experiment"),
        )
        return Response(online_metrics_output(recommender, data, rows))


class TreatmentInput(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    share = serializers.FloatField(min_value=0, max_value=1)
    recommender = serializers.SlugField(
        required=False,
        max_length=64,
        help_text="Another recommender's version (default: this one).",
    )


class ExperimentInput(serializers.Serializer):
    recommender = serializers.SlugField(required=False, default="default", max_length=64)
    name = serializers.CharField(max_length=200)
    treatments = TreatmentInput(many=True, max_length=MAX_TREATMENTS, min_length=1)
    primary_metric = serializers.ChoiceField(
        choices=PrimaryMetric.values, required=False, default=PrimaryMetric.CTR
    )
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)


class ExperimentStopInput(serializers.Serializer):
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)


EXPERIMENT_ID_PARAMETER = OpenApiParameter("experiment_id", int, OpenApiParameter.PATH)


class ExperimentListApi(APIView):
    permission_classes = [HasScope(Scope.TRAINING_WRITE)]

    @extend_schema(
        request=ExperimentInput,
        responses={
            201: ExperimentOutput,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
        summary="Start an experiment: the active version (control) against 1-4 treatments",
        description=(
            "The control gets the share the treatments leave. Users are assigned by a hash "
            "of the experiment's salt and their id: sticky, nothing stored. 409 "
            "`experiment_already_running` when the recommender runs one."
        ),
    )
    def post(self, request):
        data = ExperimentInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        experiment = experiment_create(
            recommender=recommender_get(name=values["recommender"]),
            name=values["name"],
            treatments=[TreatmentSpec(**treatment) for treatment in values["treatments"]],
            primary_metric=values["primary_metric"],
            actor_label=api_key_actor_label(request.auth),
            reason=values["reason"],
        )
        return Response(experiment_output(experiment_figures(experiment=experiment)), status=201)


class ExperimentDetailApi(APIView):
    permission_classes = [HasScope(Scope.TRAINING_WRITE)]

    @extend_schema(
        parameters=[EXPERIMENT_ID_PARAMETER],
        responses={200: ExperimentOutput, 404: ErrorSerializer},
        summary="An experiment with its per-arm figures and verdicts",
    )
    def get(self, request, experiment_id: int):
        experiment = experiment_get(experiment_id=experiment_id)
        return Response(experiment_output(experiment_figures(experiment=experiment)))


class ExperimentStopApi(APIView):
    permission_classes = [HasScope(Scope.TRAINING_WRITE)]

    @extend_schema(
        parameters=[EXPERIMENT_ID_PARAMETER],
        request=ExperimentStopInput,
        responses={200: ExperimentOutput, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Stop an experiment: all traffic back to the active version at once",
    )
    def post(self, request, experiment_id: int):
        data = ExperimentStopInput(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = experiment_stop(
            experiment=experiment_get(experiment_id=experiment_id),
            actor_label=api_key_actor_label(request.auth),
            reason=data.validated_data["reason"],
        )
        return Response(experiment_output(experiment_figures(experiment=experiment)))
