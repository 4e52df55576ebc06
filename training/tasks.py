"""Celery tasks of the training app: each takes ids and calls one service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from celery import shared_task
from celery.exceptions import WorkerLostError
from celery.worker.request import Request
from django.conf import settings
from django.db import connection
from django.utils import timezone

from recommender.exports.retention import exports_retain
from recommender.exports.services import export_job_execute
from recommender.online.attribution import attribution_run
from recommender.online.retention import served_lists_retain
from recommender.services import artifacts_retain, events_prune
from training.runner import default_worker_name, training_run_execute
from training.services import (
    training_run_scheduled,
    training_run_worker_lost,
    training_runs_reap,
    training_runs_requeue,
)

logger = logging.getLogger(__name__)


class RunTrainingRequest(Request):
    """A ``run_training`` delivery as the worker's main process sees it.

    When the pool process running it dies (SIGKILL, the OOM killer) or is killed at the
    hard time limit, Celery acknowledges the message and reports it here, and nothing
    else would touch the run until the reaper, up to ``RECSITE_RUN_STALE_AFTER_SECONDS``
    later: failing it here frees the slot at once."""

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        exc = getattr(exc_info.exception, "exc", exc_info.exception)  # ExceptionWithTraceback
        # SystemExit / KeyboardInterrupt: billiard's report of a process that exited.
        if isinstance(exc, WorkerLostError | SystemExit | KeyboardInterrupt):
            self._fail_run(lambda worker: f"pool process {worker} ended with "
                                          f"{type(exc).__name__}: {exc}")  # fmt: skip

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:  # the soft limit is the run's own clean failure (SoftTimeLimitExceeded)
            self._fail_run(lambda worker: f"pool process {worker} killed at the hard time "
                                          f"limit ({timeout:g} s)")  # fmt: skip

    def _fail_run(self, describe: Callable[[str], str]) -> None:
        run_id = self.args[0] if self.args else self.kwargs.get("run_id")
        if run_id is None or not self.worker_pid:
            return
        worker = default_worker_name(self.worker_pid)
        try:
            training_run_worker_lost(
                run_id=run_id, worker=worker, error=f"worker lost: {describe(worker)}"
            )
        except Exception:  # the reaper remains the fallback; never break the worker loop
            logger.exception("could not fail training run %s after losing %s", run_id, worker)
        finally:
            connection.close()  # the main process keeps no connection the next fork inherits


@shared_task(queue="training", acks_late=True, ignore_result=True, Request=RunTrainingRequest)
def run_training(run_id: int) -> None:
    """Train one queued run. acks_late: a worker that dies mid-run leaves the message to
    be redelivered, and the claim in ``training_run_execute`` makes that redelivery a
    no-op for a run that already started (the reaper fails it). A pool process killed,
    or stopped at the hard time limit, while its main process lives is handled at once
    by ``RunTrainingRequest``."""
    training_run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def export_recommendations(job_id: int) -> None:
    """Write a queued export job's file to the artifact store
    (``recommender.exports.services``)."""
    export_job_execute(job_id=job_id)


@shared_task(ignore_result=True)
def run_scheduled_training(recommender_id: int) -> None:
    """Fired by beat for a recommender's schedule (see ``training.schedules``)."""
    training_run_scheduled(recommender_id=recommender_id)


@shared_task(ignore_result=True)
def reap_stale_runs() -> None:
    """Fail running runs whose worker stopped heart-beating, and send again queued runs
    whose message the broker may have lost."""
    training_runs_reap(stale_after=timedelta(seconds=settings.RECSITE_RUN_STALE_AFTER_SECONDS))
    training_runs_requeue(queued_for=timedelta(seconds=settings.RECSITE_RUN_REQUEUE_AFTER_SECONDS))


@shared_task(ignore_result=True)
def retain_artifacts() -> None:
    """Fired by beat every ``RECSITE_RETENTION_INTERVAL_SECONDS``: artifact retention for
    every recommender and the sweep of partial artifacts of killed writers (none lives
    longer than the hard time limit). Training runs also apply it when they finish."""
    result = artifacts_retain()
    log = logger.warning if result.errors else logger.info
    log("%s", result.summary())


@shared_task(ignore_result=True)
def retain_exports() -> None:
    """Fired by beat every ``RECSITE_RETENTION_INTERVAL_SECONDS``: delete batch export
    files past ``RECSITE_EXPORT_RETENTION_DAYS`` and sweep killed jobs' partial uploads."""
    result = exports_retain(now=timezone.now())
    log = logger.warning if result.errors else logger.info
    log("%s", result.summary())


@shared_task(ignore_result=True)
def attribute_events() -> None:
    """Fired by beat every minute: one attribution pass (``manage.py attribute_events``)."""
    logger.info("attribution: %s", attribution_run(now=timezone.now()).summary())


@shared_task(ignore_result=True)
def retain_served_lists() -> None:
    """Fired by beat every hour: delete served lists past RECSITE_SERVED_RETENTION_DAYS."""
    logger.info("served lists deleted: %d", served_lists_retain(now=timezone.now()))


@shared_task(ignore_result=True)
def prune_events() -> None:
    """Fired by beat every ``RECSITE_EVENT_RETENTION_INTERVAL_SECONDS``: delete events
    past retention (``manage.py prune_events``); a no-op while retention is unset."""
    logger.info("%s", events_prune(now=timezone.now()).summary())
