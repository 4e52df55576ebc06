"""The one API error answer: which status, body and headers an exception gets.

Every error leaves as ``{"error": {"code": ..., "message": ..., "detail": ...}}``.
``recsite.api_errors.exception_handler`` (DRF's ``EXCEPTION_HANDLER``) wraps
:func:`error_answer` in a DRF ``Response``; the plain serving views
(``recommender.serving_views``) write the same answer themselves, so an error is the
same bytes whichever stack raised it. It lives here, not in ``recsite``, because the
apps never import the composition root."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import psycopg2.errors
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf

from recommender.exceptions import RecsiteError, RequestBodyTooLarge

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, detail: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "detail": detail}}


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


def _drf_code(exc: drf.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return {
        drf.ValidationError: "invalid",
        drf.ParseError: "parse_error",
    }.get(type(exc), getattr(exc, "default_code", "error"))


def _drf_answer(exc: drf.APIException) -> ErrorAnswer:
    """DRF's own exception answer (status, ``WWW-Authenticate``, ``Retry-After``) with
    the error body."""
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # DRF writes "%d" % wait
    if isinstance(exc, drf.ValidationError):
        message, detail = "Invalid input.", exc.detail
    else:
        message, detail = str(exc.detail), None
    return ErrorAnswer(exc.status_code, error_body(_drf_code(exc), message, detail), headers)


def error_answer(exc: Exception) -> ErrorAnswer | None:
    """The answer to ``exc``, or None for an unexpected one (a bug: let it be a 500)."""
    if isinstance(exc, RequestDataTooBig):
        # DRF reads JSON through ``request.body``, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        # (= RECSITE_MAX_BODY_BYTES) refuses an oversized body before our parser sees it.
        exc = RequestBodyTooLarge(max_bytes=settings.RECSITE_MAX_BODY_BYTES)
    if isinstance(exc, RecsiteError):
        return ErrorAnswer(exc.status, error_body(exc.code, exc.message, exc.detail))
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return ErrorAnswer(400, error_body("invalid", "Invalid input.", detail))
    if isinstance(exc, (OperationalError, InterfaceError)):
        if _is_write_conflict(exc):
            logger.warning("concurrent write conflict: %s", exc)
            code, message = "database_conflict", "A concurrent write conflicted; retry."
        else:
            logger.warning("database unavailable: %s", exc)
            code, message = "database_unavailable", "The database is unavailable; retry later."
        return ErrorAnswer(503, error_body(code, message), {"Retry-After": "1"})
    if isinstance(exc, DatabaseError):
        return None
    if isinstance(exc, Http404):
        exc = drf.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied(str(exc) or None)
    if isinstance(exc, drf.APIException):
        return _drf_answer(exc)
    return None


def _is_write_conflict(exc: Exception) -> bool:
    """A deadlock or serialization failure (PostgreSQL) or a busy database (SQLite): the
    database is up, this transaction lost a race and retrying it will do."""
    cause = exc.__cause__
    if isinstance(cause, psycopg2.errors.DeadlockDetected | psycopg2.errors.SerializationFailure):
        return True
    return isinstance(cause, sqlite3.OperationalError) and "database is locked" in str(cause)
