from django.urls import path, register_converter
from django.urls.converters import StringConverter

from recommender import apis


class ExternalIdConverter(StringConverter):
    """A user or item id in a path: anything but "/" and NUL. No stored id holds a NUL
    (ingest refuses it) and PostgreSQL refuses one in a query, so such a URL is a 404."""

    regex = r"[^/\x00]+"


register_converter(ExternalIdConverter, "external_id")

urlpatterns = [
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
    path(
        "recommendations/<external_id:user_id>",
        apis.RecommendationsApi.as_view(),
        name="recommendations",
    ),
    path(
        "items/<external_id:item_id>/similar", apis.SimilarItemsApi.as_view(), name="similar-items"
    ),
]
