"""Served lists are kept ``RECSITE_SERVED_RETENTION_DAYS``; beat deletes older ones in
batches (short transactions, no long lock on a table the serving path writes to). The
hourly aggregates they were counted into stay."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from recommender.online.models import ServedList

DELETE_BATCH = 10_000


def served_lists_retain(*, now: datetime, batch_size: int = DELETE_BATCH) -> int:
    """Delete served lists created before ``now`` minus the retention; returns how many."""
    cutoff = now - timedelta(days=settings.RECSITE_SERVED_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(
            ServedList.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        count, _ = ServedList.objects.filter(pk__in=ids).delete()
        deleted += count
