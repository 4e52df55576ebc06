"""The API error handler for DRF and the JSON 404 / 500 pages: every error leaves as
``{"error": {"code": ..., "message": ..., "detail": ...}}`` with the right status, as
``recommender.errors`` decides."""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import set_rollback

from recommender.errors import error_answer, error_body


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: the answer of ``recommender.errors.error_answer`` as a
    DRF response (None, for an unexpected exception, lets it surface as a 500)."""
    answer = error_answer(exc)
    if answer is None:
        return None
    set_rollback()
    return Response(answer.body, status=answer.status, headers=answer.headers)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


@csrf_exempt  # any method: an unknown URL is a 404, not a CSRF failure
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """The last /api/ route: an unknown API URL gets the error body whatever ``DEBUG``
    says (``handler404`` only runs with ``DEBUG`` off)."""
    return JsonResponse(
        error_body("not_found", f"No API endpoint at {request.path}.", {"path": request.path}),
        status=404,
    )


def json_404(request, exception=None):
    """404 for URLs no view matched: the error body under /api/, Django's page elsewhere."""
    if _is_api(request):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)


def json_500(request):
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)
