from django.urls import path, register_converter

from recommender import apis
from recommender.serving_views import serving_view


class ExternalIdConverter:
    """A user or item id in a path: any non-empty text without NUL, "/" included (ids
    are the client's: ``shop/42`` is a valid item id and is served). ``items/<id>/similar``
    takes everything before its last ``/similar``, so an id may itself contain
    ``/similar``. The length cap (``MAX_ID_LENGTH``) is the view's, which answers 400
    naming the field. No stored id holds a NUL (ingest refuses it) and PostgreSQL
    refuses one in a query, so such a URL is a 404."""

    regex = r"[^\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ExternalIdConverter, "external_id")

# The serving endpoints first: they take most requests, and patterns are tried in order.
urlpatterns = [
    path(
        "recommendations/<external_id:user_id>",
        serving_view(apis.RecommendationsApi),
        name="recommendations",
    ),
    path(
        "items/<external_id:item_id>/similar",
        serving_view(apis.SimilarItemsApi),
        name="similar-items",
    ),
    path("events", apis.EventBatchApi.as_view(), name="events"),
    path("items", apis.ItemBatchApi.as_view(), name="items"),
    path("users/<external_id:user_id>", apis.UserApi.as_view(), name="user"),
    path("model-versions", apis.ModelVersionListApi.as_view(), name="model-versions"),
    path(
        "model-versions/<int:number>/promote",
        apis.ModelVersionPromoteApi.as_view(),
        name="model-version-promote",
    ),
    path(
        "model-versions/<int:number>/rollback",
        apis.ModelVersionRollbackApi.as_view(),
        name="model-version-rollback",
    ),
    path("models/active", apis.ActiveModelApi.as_view(), name="models-active"),
]
