"""The Celery app. Broker and options come from Django settings (``CELERY_*``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")

app = Celery("recsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
