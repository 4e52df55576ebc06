from django.urls import path

from recommender import apis

urlpatterns = [
    path("events", apis.EventBatchApi.as_view(), name="events"),
    path("items", apis.ItemBatchApi.as_view(), name="items"),
    path("model-versions", apis.ModelVersionListApi.as_view(), name="model-versions"),
    path("models/active", apis.ActiveModelApi.as_view(), name="models-active"),
]
