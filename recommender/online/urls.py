from django.urls import path

from recommender.online import apis

urlpatterns = [
    path("online-metrics", apis.OnlineMetricsApi.as_view(), name="online-metrics"),
    path("experiments", apis.ExperimentListApi.as_view(), name="experiments"),
    path("experiments/<int:experiment_id>", apis.ExperimentDetailApi.as_view(), name="experiment"),
    path(
        "experiments/<int:experiment_id>/stop",
        apis.ExperimentStopApi.as_view(),
        name="experiment-stop",
    ),
]
