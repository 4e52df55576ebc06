"""Celery tasks of the training app: each takes ids and calls one service."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from training.runner import training_run_execute
from training.services import training_run_scheduled, training_runs_reap


@shared_task(queue="training", acks_late=True, ignore_result=True)
def run_training(run_id: int) -> None:
    """Train one queued run. acks_late: a worker that dies mid-run leaves the message to
    be redelivered, and the claim in ``training_run_execute`` makes that redelivery a
    no-op for a run that already started (the reaper fails it)."""
    training_run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def run_scheduled_training(recommender_id: int) -> None:
    """Fired by beat for a recommender's schedule (see ``training.schedules``)."""
    training_run_scheduled(recommender_id=recommender_id)


@shared_task(ignore_result=True)
def reap_stale_runs() -> None:
    """Fail running runs whose worker stopped heart-beating."""
    training_runs_reap(stale_after=timedelta(seconds=settings.RECSITE_RUN_STALE_AFTER_SECONDS))
