"""Counting the attribution pass's next batch of served lists into impressions: per
``HourKey`` a list on the row of its first position and an impression per item shown,
and per experiment, arm and user the items shown. Two implementations of the same
counts: on PostgreSQL two ``GROUP BY`` statements over the batch (lists grouped by where
they count and their length, expanded into positions per group: no list's items decoded
in Python); elsewhere (SQLite) the rows are read and counted here.

The batch: the settled lists after the cursor, oldest first, ``limit`` of them, but
never splitting the lists that share a creation time (the cursor is a time)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import Count, Max, QuerySet

from recommender.online.attribution_match import (
    LIST_FIELDS,
    HourKey,
    hour_from_epoch,
    hour_key,
    shown_list,
)
from recommender.online.models import ServedList

# (experiment_id, arm, user)
UserKey = tuple[int, str, str]
LISTS, IMPRESSIONS = 0, 1


@dataclass
class ListsCount:
    lists: int
    done_until: datetime
    hourly: dict[HourKey, list[int]] = field(default_factory=dict)  # [lists, impressions, 0, 0]
    per_user: dict[UserKey, list[int]] = field(default_factory=dict)  # [impressions, 0, 0]


def lists_batch(*, after: datetime | None, until: datetime, limit: int) -> QuerySet:
    """The next batch: lists created in (``after``, ``until``], at most ``limit`` unless
    more share the batch's first creation time."""
    lists = ServedList.objects.filter(created_at__lte=until)
    if after is not None:
        lists = lists.filter(created_at__gt=after)
    last = lists.order_by("created_at").values_list("created_at", flat=True)[limit : limit + 1]
    last = next(iter(last), None)
    if last is None:
        return lists
    before = lists.filter(created_at__lt=last)
    return before if before.exists() else lists.filter(created_at=last)


def lists_count(batch: QuerySet) -> ListsCount | None:
    """The counts of ``batch`` (None when it is empty)."""
    totals = batch.aggregate(lists=Count("pk"), until=Max("created_at"))
    if not totals["lists"]:
        return None
    counted = ListsCount(lists=totals["lists"], done_until=totals["until"])
    if connection.vendor == "postgresql":
        _count_sql(batch, counted)
    else:
        _count_python(batch, counted)
    return counted


# Lists grouped by where they count and their length; the positions are expanded from
# the (few) groups here, not from every list in the database.
_HOURLY_SQL = """
WITH b AS ({batch})
SELECT floor(extract(epoch FROM b.created_at) / 3600)::bigint, b.recommender_id,
       coalesce(b.model_version, 0), coalesce(b.experiment_id, 0), b.arm,
       b.first_position, jsonb_array_length(b.item_ids), count(*)
FROM b
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""

_PER_USER_SQL = """
WITH b AS ({batch})
SELECT b.experiment_id, b.arm, b.user_external_id, sum(jsonb_array_length(b.item_ids))
FROM b
WHERE b.experiment_id IS NOT NULL AND b.experiment_id <> 0 AND b.user_external_id <> ''
GROUP BY 1, 2, 3
"""


def _count_sql(batch: QuerySet, counted: ListsCount) -> None:
    sql, params = batch.values(*LIST_FIELDS).query.sql_with_params()
    hourly: dict[HourKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    with connection.cursor() as cursor:
        # JIT compiling costs more than these statements' per-row work saves.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_HOURLY_SQL.format(batch=sql), params)
        for hour, recommender_id, version, experiment_id, arm, first, length, n in cursor:
            where = (hour_from_epoch(hour), recommender_id, version, experiment_id, arm)
            hourly[(*where, first)][LISTS] += n
            for position in range(first, first + length):
                hourly[(*where, position)][IMPRESSIONS] += n
        cursor.execute(_PER_USER_SQL.format(batch=sql), params)
        for experiment_id, arm, user_id, shown in cursor:
            counted.per_user[(experiment_id, arm, user_id)] = [int(shown), 0, 0]
    counted.hourly = dict(hourly)


def _count_python(batch: QuerySet, counted: ListsCount) -> None:
    hourly: dict[HourKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_user: dict[UserKey, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in batch.values(*LIST_FIELDS):
        shown = shown_list(row)
        hourly[hour_key(shown, shown.first_position)][LISTS] += 1
        for index in range(len(shown.item_ids)):
            hourly[hour_key(shown, shown.first_position + index)][IMPRESSIONS] += 1
        if shown.experiment_id and shown.user_id:
            per_user[(shown.experiment_id, shown.arm, shown.user_id)][0] += len(shown.item_ids)
    counted.hourly = dict(hourly)
    counted.per_user = dict(per_user)
