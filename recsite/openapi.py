"""What drf-spectacular cannot see by itself: the error answers every operation can give
(bad input, no or a bad key, a missing scope, throttling, an oversized body, the database
down). They are documented once, as shared responses with the one error body, rather
than repeated on every view. (The API-key scheme is ``recommender.auth.ApiKeyScheme``,
next to the authentication class.)"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA_REF = "#/components/schemas/Error"

# (status, component name, description); 413 only where there is a request body.
COMMON_ERRORS = [
    ("400", "BadRequest", "Invalid input (`invalid`, `parse_error`, ...)."),
    ("401", "Unauthorized", "No API key, or an invalid, revoked or expired one."),
    ("403", "Forbidden", "The API key lacks the scope this operation needs."),
    ("429", "TooManyRequests", "Throttled (`RECSITE_API_THROTTLE_RATE`); see `Retry-After`."),
    ("503", "ServiceUnavailable", "The database is unavailable (`database_unavailable`)."),
]
BODY_ERRORS = [
    ("413", "PayloadTooLarge", "The body or the batch is over its limit."),
]


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """A drf-spectacular postprocessing hook: every ``/api/`` operation answers the
    common errors; a view's own annotation of the same status wins."""
    responses = result.setdefault("components", {}).setdefault("responses", {})
    for _, name, description in COMMON_ERRORS + BODY_ERRORS:
        responses[name] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}},
        }
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            errors = COMMON_ERRORS + (BODY_ERRORS if "requestBody" in operation else [])
            for status, name, _ in errors:
                operation["responses"].setdefault(
                    status, {"$ref": f"#/components/responses/{name}"}
                )
    return result
