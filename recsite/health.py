"""Liveness and readiness for load balancers and monitors (no authentication)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from recommender.serving.registry import registry


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and answering."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready (200) while requests can be answered: the database answers, and this process
    serves every recommender that has an active version with a model or the popularity
    fallback. ``degraded`` (with each recommender's ``degraded_reason`` under
    ``checks.serving``) says when it does not serve an active version: its artifact is
    missing or damaged, or not loaded yet. A database that does not answer is 503."""
    checks: dict[str, dict] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "not ready", never a 500
        checks["database"] = {"ok": False, "error": str(exc).splitlines()[0][:200]}
    checks["serving"] = registry.health()
    ready = all(check["ok"] for check in checks.values())
    body = {"ready": ready, "degraded": bool(checks["serving"].get("degraded")), "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)
