"""The one error handler maps every kind of error to the same body."""

import sqlite3

import psycopg2.errors
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError
from django.http import Http404
from rest_framework.exceptions import NotFound

from recommender.exceptions import BatchTooLarge
from recommender.models import Scope
from recsite.api_errors import exception_handler


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (BatchTooLarge("too many", max=1), 413, "batch_too_large"),
        (ValidationError({"field": ["bad"]}), 400, "invalid"),
        (ValidationError("bad"), 400, "invalid"),
        (Http404("nope"), 404, "not_found"),
        (NotFound(), 404, "not_found"),
        (PermissionDenied(), 403, "permission_denied"),
        (OperationalError("connection refused"), 503, "database_unavailable"),
    ],
)
def test_errors_map_to_status_and_code(exc, status, code):
    response = exception_handler(exc, {})
    assert response.status_code == status
    assert response.data["error"]["code"] == code
    assert set(response.data["error"]) == {"code", "message", "detail"}


def caused_by(cause: Exception) -> OperationalError:
    """A Django database error wrapping the driver's, as Django raises it."""
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as exc:
        return exc


@pytest.mark.parametrize(
    ("cause", "code"),
    [
        (psycopg2.errors.DeadlockDetected("deadlock detected"), "database_conflict"),
        (psycopg2.errors.SerializationFailure("could not serialize"), "database_conflict"),
        (sqlite3.OperationalError("database is locked"), "database_conflict"),
        (psycopg2.OperationalError("server closed the connection"), "database_unavailable"),
        (sqlite3.OperationalError("unable to open database file"), "database_unavailable"),
    ],
)
def test_a_lost_write_race_is_told_apart_from_a_database_outage(cause, code):
    response = exception_handler(caused_by(cause), {})
    assert response.status_code == 503
    assert response.data["error"]["code"] == code
    assert response["Retry-After"] == "1"


def test_domain_error_detail_is_kept():
    response = exception_handler(BatchTooLarge("too many", max=5, received=9), {})
    assert response.data["error"] == {
        "code": "batch_too_large",
        "message": "too many",
        "detail": {"max": 5, "received": 9},
    }


@pytest.mark.parametrize("debug", [False, True])
def test_unknown_api_urls_answer_json_404(client, settings, debug):
    """With DEBUG on, Django's handler404 never runs: the JSON body must not depend on it."""
    settings.DEBUG = debug
    for path in ("/api/v1/does-not-exist", "/api/nothing", "/api/v2/recommendations/u"):
        response = client.get(path)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"


def test_a_missing_scope_is_named_as_clients_send_it(make_api_client):
    response = make_api_client(Scope.RECOMMENDATIONS_READ).post(
        "/api/v1/events", {"events": []}, format="json"
    )
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "'events:write'" in message
    assert "Scope." not in message


def test_an_unexpected_exception_is_left_to_django():
    assert exception_handler(RuntimeError("bug"), {}) is None


def test_an_unknown_api_url_is_a_json_404_for_every_method(client):
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/v1/model-versions/not-a-number/rollback")
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "not_found"
