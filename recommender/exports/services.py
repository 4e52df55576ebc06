"""Export jobs: create one (the admin's "Export recommendations"), run it (the Celery
task ``training.tasks.export_recommendations``), hand its file out.

The file goes to the artifact store under ``exports/<recommender>/`` (``store_objects``:
a directory or a bucket), streamed as it is ranked (one S3 part, 8 MiB, in memory at a
time) and visible only once complete, so any web host can serve the download link of a
file any worker wrote. With an ``s3://`` store the link redirects to a presigned URL
valid ``DOWNLOAD_URL_SECONDS``: the browser fetches the bytes from the store, and no web
worker is held for the minutes a large file takes (``RECSITE_EXPORT_PROXY_DOWNLOAD``
streams through the web host instead, for a store browsers cannot reach). Retention:
``recommender.exports.retention``."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from celery import current_app
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from recommender.artifact_store import EXPORTS_PREFIX, store_objects
from recommender.exceptions import ExportFileGone
from recommender.exports.models import ExportJob, ExportStatus
from recommender.models import ModelVersion
from recommender.serving.export import (
    ExportFormat,
    export_state_build,
    recommendations_export,
)

logger = logging.getLogger(__name__)

EXPORT_TASK = "training.tasks.export_recommendations"
# How long a presigned download URL stays valid: long enough to start the download,
# short enough that a copied link soon stops working.
DOWNLOAD_URL_SECONDS = 300


def export_job_key(job: ExportJob) -> str:
    """The key of job ``job``'s file in the artifact store."""
    name = f"export-{job.pk}-v{job.version.number}.{job.format}"
    return f"{EXPORTS_PREFIX}/{job.recommender.name}/{name}"


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

    key = export_job_key(job)
    try:
        state = export_state_build(recommender=job.recommender, number=job.version.number)
        with store_objects().writer(key) as raw:
            out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            # One process: a Celery pool process may not fork children of its own.
            result = recommendations_export(
                state=state, out=out, fmt=job.format, limit=job.limit, on_progress=progress
            )
            out.flush()
            out.detach()  # the writer, not the wrapper, finishes the upload
    except Exception as exc:
        logger.exception("export job %s failed", job_id)
        _finish(job_id, ExportStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        return
    _finish(
        job_id,
        ExportStatus.SUCCEEDED,
        path=key,
        users_done=result.users,
        users_total=result.users,
        fallback_users=result.fallback_users,
    )


@dataclass(frozen=True)
class ExportDownload:
    """How to hand a job's file out: a URL to redirect to, or a stream of its bytes."""

    filename: str
    url: str | None = None
    stream: BinaryIO | None = None
    size: int | None = None


def export_job_download(*, job: ExportJob) -> ExportDownload:
    """The file of a succeeded job; ``ExportFileGone`` when the store no longer has it."""
    if job.file_deleted_at is not None or not job.path:
        raise ExportFileGone(job=job.pk)
    objects = store_objects()
    filename = PurePosixPath(job.path).name
    try:
        if not settings.RECSITE_EXPORT_PROXY_DOWNLOAD:
            url = objects.url(job.path, filename=filename, expires=DOWNLOAD_URL_SECONDS)
            if url is not None:
                return ExportDownload(filename=filename, url=url)
        stream, size = objects.open(job.path)
    except (FileNotFoundError, ValueError) as exc:  # gone, or a key of no store (a path)
        raise ExportFileGone(job=job.pk) from exc
    return ExportDownload(filename=filename, stream=stream, size=size)
