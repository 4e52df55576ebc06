"""Training runs over the API: start one (202, or 409 with the live run), read them."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender.apis import (
    RECOMMENDER_PARAMETER,
    ErrorSerializer,
    paginated_response,
    recommender_from_query,
)
from recommender.auth import HasScope, api_key_actor_label
from recommender.models import Scope
from recommender.pagination import PAGE_PARAMETERS, paginated
from recommender.selectors import recommender_get
from training.models import TrainingRun, Trigger
from training.selectors import training_run_get
from training.serializers import TrainingRunDetailOutput, TrainingRunInput, TrainingRunOutput
from training.services import training_run_create

READ_SCOPES = (Scope.TRAINING_WRITE, Scope.RECOMMENDATIONS_READ)


class TrainingRunListApi(APIView):
    def get_permissions(self):
        scopes = (Scope.TRAINING_WRITE,) if self.request.method == "POST" else READ_SCOPES
        return [HasScope(*scopes)]

    @extend_schema(
        request=TrainingRunInput,
        responses={
            202: TrainingRunOutput,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
        summary="Start a training run (409 with the live run's id when one is running)",
    )
    def post(self, request):
        data = TrainingRunInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        recommender = recommender_get(name=values["recommender"])
        run = training_run_create(
            recommender=recommender,
            trigger=Trigger.API,
            actor_label=api_key_actor_label(request.auth),
            options={
                "dry_run": values["dry_run"],
                "no_promote": values["no_promote"],
                "algorithm": values.get("algorithm"),
                "overrides": dict(values.get("overrides") or {}),
            },
        )
        return Response(TrainingRunOutput(run).data, status=202)

    @extend_schema(
        parameters=[RECOMMENDER_PARAMETER, *PAGE_PARAMETERS],
        responses={200: paginated(TrainingRunOutput, "TrainingRunPage"), 404: ErrorSerializer},
        summary="A recommender's training runs, newest first",
        operation_id="v1_training_runs_list",
    )
    def get(self, request):
        runs = (
            TrainingRun.objects.filter(recommender=recommender_from_query(request))
            .select_related("recommender", "version")
            .order_by("-created_at", "-id")
        )
        return paginated_response(request, self, runs, TrainingRunOutput)


class TrainingRunDetailApi(APIView):
    permission_classes = [HasScope(*READ_SCOPES)]

    @extend_schema(
        parameters=[OpenApiParameter("run_id", int, OpenApiParameter.PATH)],
        responses={200: TrainingRunDetailOutput, 404: ErrorSerializer},
        summary="One training run: status, progress, metrics, decision",
    )
    def get(self, request, run_id: int):
        return Response(TrainingRunDetailOutput(training_run_get(run_id=run_id)).data)
