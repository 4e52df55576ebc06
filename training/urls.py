from django.urls import path

from training import apis

urlpatterns = [
    path("training-runs", apis.TrainingRunListApi.as_view(), name="training-runs"),
    path("training-runs/<int:run_id>", apis.TrainingRunDetailApi.as_view(), name="training-run"),
]
