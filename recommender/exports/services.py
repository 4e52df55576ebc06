"""Export jobs: create one (the admin's "Export recommendations"), run it (the Celery
task ``training.tasks.export_recommendations``), find its file.

The file goes to ``RECSITE_EXPORT_DIR`` (default ``$RECSITE_DATA_DIR/exports``), not to
the artifact store: the store's API holds verified model artifacts only (its listing
and sweep would report a foreign file as unknown). With several hosts that directory
must be shared for the admin's download link to find a file a worker wrote."""

from __future__ import annotations

import logging
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from recommender.exports.models import ExportJob, ExportStatus
from recommender.models import ModelVersion
from recommender.serving.export import (
    ExportFormat,
    export_state_build,
    recommendations_export_file,
)

logger = logging.getLogger(__name__)

EXPORT_TASK = "training.tasks.export_recommendations"


def export_job_path(job: ExportJob) -> Path:
    """Where job ``job`` writes its file."""
    name = f"export-{job.pk}-v{job.version.number}.{job.format}"
    return Path(settings.RECSITE_EXPORT_DIR) / job.recommender.name / name


@transaction.atomic
def export_job_create(
    *,
    version: ModelVersion,
    actor: AbstractBaseUser | None,
    actor_label: str = "",
    fmt: str = ExportFormat.JSONL,
    limit: int = 50,
) -> ExportJob:
    """Queue an export of ``version``'s recommendations for every user with events; the
    task is sent after commit."""
    if fmt not in ExportFormat.CHOICES:
        raise ValueError(f"unknown export format {fmt!r}")
    job = ExportJob.objects.create(
        recommender_id=version.recommender_id,
        version=version,
        format=fmt,
        limit=limit,
        actor=actor,
        actor_label=actor.get_username() if actor is not None else actor_label,
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    """Send the task by name (this app never imports ``training``). ``send_task``
    ignores eager mode, so there the registered task is applied directly. A broker that
    refuses the message fails the job at once."""
    if current_app.conf.task_always_eager:
        current_app.tasks[EXPORT_TASK].apply(args=[job_id])
        return
    try:
        current_app.send_task(EXPORT_TASK, args=[job_id])
    except Exception as exc:
        logger.exception("could not enqueue export job %s", job_id)
        _finish(
            job_id, ExportStatus.FAILED, error=f"could not enqueue: {type(exc).__name__}: {exc}"
        )


def _finish(job_id: int, status: str, **fields) -> None:
    ExportJob.objects.filter(pk=job_id).update(status=status, finished_at=timezone.now(), **fields)


def export_job_execute(*, job_id: int) -> None:
    """Run a queued job: claim it (a redelivery of a job already claimed does nothing),
    write its file, record the progress per chunk and how it ended."""
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportStatus.QUEUED).update(
        status=ExportStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return
    job = ExportJob.objects.select_related("recommender", "version").get(pk=job_id)

    def progress(done: int, total: int | None) -> None:
        ExportJob.objects.filter(pk=job_id).update(users_done=done, users_total=total)

    path = export_job_path(job)
    try:
        state = export_state_build(recommender=job.recommender, number=job.version.number)
        # One process: a Celery pool process may not fork children of its own.
        result = recommendations_export_file(
            state=state, path=path, fmt=job.format, limit=job.limit, on_progress=progress
        )
    except Exception as exc:
        logger.exception("export job %s failed", job_id)
        _finish(job_id, ExportStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        return
    _finish(
        job_id,
        ExportStatus.SUCCEEDED,
        path=str(path),
        users_done=result.users,
        users_total=result.users,
        fallback_users=result.fallback_users,
    )
