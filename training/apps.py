from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training: runs, pipeline and schedules"

    def ready(self) -> None:
        # Registers the Celery tasks in every process, so ``CELERY_TASK_ALWAYS_EAGER`` can
        # apply one by name in the web process; deferred: tasks import models.
        from training import tasks  # noqa: F401
