from django.urls import path

from recommender import apis

urlpatterns = [
    path("events", apis.EventBatchApi.as_view(), name="events"),
    path("items", apis.ItemBatchApi.as_view(), name="items"),
    path("model-versions", apis.ModelVersionListApi.as_view(), name="model-versions"),
    path("models/active", apis.ActiveModelApi.as_view(), name="models-active"),
    path(
        "recommendations/<str:user_id>", apis.RecommendationsApi.as_view(), name="recommendations"
    ),
    path("items/<str:item_id>/similar", apis.SimilarItemsApi.as_view(), name="similar-items"),
]
