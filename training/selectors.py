"""Reads of training runs that more than one caller needs."""

from __future__ import annotations

from recommender.models import Recommender
from training.exceptions import TrainingRunNotFound
from training.models import LIVE_STATUSES, Decision, RunStatus, TrainingRun


def training_run_get(*, run_id: int) -> TrainingRun:
    try:
        return TrainingRun.objects.select_related("recommender", "version").get(pk=run_id)
    except TrainingRun.DoesNotExist:
        raise TrainingRunNotFound(f"No training run #{run_id}.", run_id=run_id)


def training_run_live_get(*, recommender: Recommender) -> TrainingRun | None:
    """The recommender's queued or running run, if any (there is at most one)."""
    return TrainingRun.objects.filter(recommender=recommender, status__in=LIVE_STATUSES).first()


def training_run_last_succeeded_get(*, recommender: Recommender) -> TrainingRun | None:
    """The latest run that trained on real data (dry runs do not count)."""
    return (
        TrainingRun.objects.filter(recommender=recommender, status=RunStatus.SUCCEEDED)
        .exclude(decision=Decision.DRY_RUN)
        .order_by("-created_at", "-id")
        .first()
    )


def training_run_should_stop(*, run_id: int) -> bool:
    """For the pipeline, between phases: True when a cancel was requested or the run is
    no longer running (it was reaped after a long stall)."""
    return not TrainingRun.objects.filter(
        pk=run_id, status=RunStatus.RUNNING, cancel_requested=False
    ).exists()
