from django.urls import path

from recommender import apis

urlpatterns = [
    path("events", apis.EventBatchApi.as_view(), name="events"),
    path("items", apis.ItemBatchApi.as_view(), name="items"),
]
