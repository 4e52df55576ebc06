"""Liveness and readiness for load balancers and monitors (no authentication)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from recommender.artifact_store import artifact_store_health
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
    missing or damaged, or not loaded yet. A database that does not answer is 503.

    ``checks.artifact_store`` says whether the artifact store answers (an S3 store is
    asked at most every few seconds). A store that does not answer is ``degraded``, not
    unready: every host shares it, each keeps serving the models it has loaded, and a
    load balancer dropping them all would answer nothing at all."""
    checks: dict[str, dict] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "not ready", never a 500
        checks["database"] = {"ok": False, "error": str(exc).splitlines()[0][:200]}
    checks["serving"] = registry.health()
    try:
        checks["artifact_store"] = artifact_store_health()
    except Exception as exc:  # a misconfigured store: reported, never a 500
        checks["artifact_store"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    ready = checks["database"]["ok"] and checks["serving"]["ok"]
    degraded = bool(checks["serving"].get("degraded")) or not checks["artifact_store"]["ok"]
    body = {"ready": ready, "degraded": degraded, "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)
