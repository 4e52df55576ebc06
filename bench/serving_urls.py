"""recsite's URLs plus ``/bench/bare/<user_id>``: a plain Django view doing the same numpy
scoring as ``GET /api/v1/recommendations/<user_id>`` (the same loaded state, seen-item
and inactive masking, top-20) with no DRF, no API key, no database query. The gap
between the two is what the API layer costs; this view is the framework's limit."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from recommender.serving import registry
from recsite.urls import handler404, handler500
from recsite.urls import urlpatterns as recsite_urlpatterns

__all__ = ["handler404", "handler500", "urlpatterns"]


def bare_recommendations(request: HttpRequest, user_id: str) -> JsonResponse:
    state = registry.state("default")
    ranking = state.rank(user_id=user_id, seen=[], exclude=[], category=None, offset=0, limit=20)
    return JsonResponse(
        {
            "model_version": state.version_number,
            "items": [
                {"item_id": item_id, "score": float(score)}
                for item_id, score in zip(ranking.ids, ranking.page.scores, strict=True)
            ],
        }
    )


urlpatterns = [*recsite_urlpatterns, path("bench/bare/<str:user_id>", bare_recommendations)]
