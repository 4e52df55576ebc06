"""Export retention: batch export files are deleted from the artifact store
``RECSITE_EXPORT_RETENTION_DAYS`` after they were written (beat, hourly:
``training.tasks.retain_exports``), and their jobs marked ``file_deleted_at`` (the job
page then says so instead of offering the link). Deciding by the objects' own age also
removes files whose job row is gone (its recommender deleted). What killed export
jobs left (a hidden partial file, an unfinished multipart upload) is swept once older
than the hard task time limit, which no live job outlasts."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from recommender.artifact_store import EXPORTS_PREFIX, store_objects
from recommender.exports.models import ExportJob, ExportStatus

logger = logging.getLogger(__name__)

MARK_BATCH = 1000


@dataclass
class ExportRetentionResult:
    deleted: list[str] = field(default_factory=list)  # keys of files deleted
    marked: int = 0  # jobs marked file_deleted_at
    swept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.deleted)} export file(s) deleted, {self.marked} job(s) marked"]
        if self.swept:
            parts.append(f"{len(self.swept)} partial upload(s) swept")
        if self.errors:
            parts.append(f"{len(self.errors)} error(s): " + "; ".join(self.errors))
        return "export retention: " + ", ".join(parts)


def exports_retain(*, now: datetime) -> ExportRetentionResult:
    """One pass at ``now``; never raises for a file it could not delete (see the
    result's ``errors``). ``RECSITE_EXPORT_RETENTION_DAYS=0`` keeps every file (the
    sweep of partial uploads still runs)."""
    result = ExportRetentionResult()
    objects = store_objects()
    days = settings.RECSITE_EXPORT_RETENTION_DAYS
    if days > 0:
        cutoff = now - timedelta(days=days)
        try:
            for obj in objects.list(EXPORTS_PREFIX):
                if obj.mtime < cutoff.timestamp() and objects.delete(obj.key):
                    result.deleted.append(obj.key)
        except Exception as exc:  # the store down, a permission
            result.errors.append(f"deleting old exports failed: {exc}")
            logger.warning("export retention: %s", exc)
        # Jobs whose file went now; and, after a complete pass, every job that old (its
        # file deleted by an earlier pass that died before marking, or by hand).
        gone = [
            Q(path__in=result.deleted[n : n + MARK_BATCH])
            for n in range(0, len(result.deleted), MARK_BATCH)
        ]
        if not result.errors:
            gone.append(Q(finished_at__lt=cutoff))
        for condition in gone:
            result.marked += ExportJob.objects.filter(
                condition, status=ExportStatus.SUCCEEDED, file_deleted_at__isnull=True
            ).update(file_deleted_at=now)
    try:
        result.swept = objects.sweep(
            EXPORTS_PREFIX, older_than=settings.CELERY_TASK_TIME_LIMIT, now=now.timestamp()
        )
    except Exception as exc:
        result.errors.append(f"sweeping partial exports failed: {exc}")
        logger.warning("export retention: sweep: %s", exc)
    return result
