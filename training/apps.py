from django.apps import AppConfig
from django.conf import settings


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training: runs, pipeline and schedules"

    def ready(self) -> None:
        # Workers import the task modules themselves (``app.autodiscover_tasks()``) and
        # every other process sends tasks by name, so only eager mode, which applies a
        # task in the calling process, registers them here. A web process thus never
        # loads the fitting libraries (scikit-learn, implicit, LightFM, Optuna): they
        # doubled a serving worker's memory. Deferred: tasks import models.
        if settings.CELERY_TASK_ALWAYS_EAGER:
            from training import tasks  # noqa: F401
