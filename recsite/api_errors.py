"""The one API error handler: every error leaves as
``{"error": {"code": ..., "message": ..., "detail": ...}}`` with the right status."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg2.errors
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from recommender.exceptions import RecsiteError, RequestBodyTooLarge

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, detail: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "detail": detail}}


def _drf_code(exc: drf.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return {
        drf.ValidationError: "invalid",
        drf.ParseError: "parse_error",
    }.get(type(exc), getattr(exc, "default_code", "error"))


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        # DRF reads JSON through ``request.body``, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        # (= RECSITE_MAX_BODY_BYTES) refuses an oversized body before our parser sees it.
        exc = RequestBodyTooLarge(max_bytes=settings.RECSITE_MAX_BODY_BYTES)
    if isinstance(exc, RecsiteError):
        return Response(error_body(exc.code, exc.message, exc.detail), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return Response(error_body("invalid", "Invalid input.", detail), status=400)
    if isinstance(exc, (OperationalError, InterfaceError)):
        if _is_write_conflict(exc):
            logger.warning("concurrent write conflict: %s", exc)
            code, message = "database_conflict", "A concurrent write conflicted; retry."
        else:
            logger.warning("database unavailable: %s", exc)
            code, message = "database_unavailable", "The database is unavailable; retry later."
        return Response(error_body(code, message), status=503, headers={"Retry-After": "1"})
    if isinstance(exc, DatabaseError):
        return None  # a real bug: let it surface as a 500 and be logged
    if isinstance(exc, Http404):
        exc = drf.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, drf.APIException):
        return response
    if isinstance(exc, drf.ValidationError):
        message, detail = "Invalid input.", exc.detail
    else:
        message, detail = str(exc.detail), None
    response.data = error_body(_drf_code(exc), message, detail)
    return response


def _is_write_conflict(exc: Exception) -> bool:
    """A deadlock or serialization failure (PostgreSQL) or a busy database (SQLite): the
    database is up, this transaction lost a race and retrying it will do."""
    cause = exc.__cause__
    if isinstance(cause, psycopg2.errors.DeadlockDetected | psycopg2.errors.SerializationFailure):
        return True
    return isinstance(cause, sqlite3.OperationalError) and "database is locked" in str(cause)


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
