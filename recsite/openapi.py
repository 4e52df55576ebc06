"""What drf-spectacular cannot see by itself: the API-key scheme, and the error answers
every operation can give (bad input, no or a bad key, a missing scope, throttling, an
oversized body, the database down). They are documented once, as shared responses with
the one error body, rather than repeated on every view.

Imported by ``RecommenderConfig.ready`` so the extension is registered before the first
schema is generated."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

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


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "recommender.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Authorization: Api-Key <key>` (keys are created in the admin "
            "or with `manage.py create_api_key`).",
        }


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
