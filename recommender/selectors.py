"""Reads of the model registry that more than one caller needs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.db import InterfaceError, OperationalError, connection
from django.db.models import F, Max, Window
from django.db.models.functions import RowNumber

from recommender.exceptions import ModelVersionNotFound, RecommenderNotFound
from recommender.models import (
    DataErasure,
    ErasureKind,
    Event,
    EventIngestDay,
    ModelVersion,
    PromotionEvent,
    Recommender,
    VersionStatus,
)


def recommender_get(*, name: str) -> Recommender:
    try:
        return Recommender.objects.get(name=name)
    except Recommender.DoesNotExist:
        known = list(Recommender.objects.values_list("name", flat=True)[:20])
        raise RecommenderNotFound(f"No recommender named {name!r}.", name=name, known=known)


def active_version_get(*, recommender: Recommender) -> ModelVersion | None:
    return recommender.versions.filter(status=VersionStatus.ACTIVE).first()


def model_version_get(*, recommender: Recommender, number: int) -> ModelVersion:
    try:
        return recommender.versions.get(number=number)
    except ModelVersion.DoesNotExist:
        raise ModelVersionNotFound(
            f"Recommender {recommender.name!r} has no version {number}.",
            recommender=recommender.name,
            number=number,
        )


def rollback_target_get(*, recommender: Recommender) -> ModelVersion | None:
    """The version that was active before the current one: the ``from_version`` of the
    latest promotion event that made the current version active. None when nothing is
    active or the current version was the first one ever promoted.

    After a rollback from v3 to v2 the target is v3 again (the version active before v2),
    so a second rollback undoes the first. The target may have had its artifact deleted;
    ``model_version_rollback`` checks that."""
    active = active_version_get(recommender=recommender)
    if active is None:
        return None
    event = (
        PromotionEvent.objects.filter(recommender=recommender, to_version=active)
        .select_related("from_version")
        .order_by("-created_at", "-id")
        .first()
    )
    return event.from_version if event else None


def user_recent_item_pks(*, user_id: str, limit: int) -> list[int]:
    """Primary keys of the items in the user's ``limit`` most recent events: one query on
    the (user, -timestamp) index, no join (serving maps the keys to its items itself).
    Serving filters them out, which covers events that arrived after the model was
    trained.

    Plain SQL because it runs on every recommendation request: building the same query
    through the ORM costs more than PostgreSQL takes to answer it.

    No health check: with ``CONN_HEALTH_CHECKS`` Django sends a ``SELECT 1`` before the
    first query of every request, a second round trip that took a third of a serving
    worker's time under load (docs/BENCHMARKS.md). This read is idempotent, so instead it
    runs on the persistent connection as it is and, if that connection turns out dead
    (PostgreSQL restarted, the backend terminated), closes it and runs once more on a
    new one. Inside a transaction (tests, callers holding one) there is no retry: the
    connection cannot be replaced there."""
    if connection.in_atomic_block:
        return _recent_item_pks(user_id, limit)
    connection.health_check_done = True  # read by Django: skip its SELECT 1 this request
    try:
        return _recent_item_pks(user_id, limit)
    except (OperationalError, InterfaceError):
        connection.close()
        return _recent_item_pks(user_id, limit)


def _recent_item_pks(user_id: str, limit: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(_RECENT_ITEMS_SQL, [user_id, limit])
        return [row[0] for row in cursor.fetchall()]


def users_recent_item_pks(*, user_ids: list[str], limit: int) -> dict[str, list[int]]:
    """``user_recent_item_pks`` for many users in ONE query (batch export reads a chunk
    of users at a time): each user's ``limit`` most recent events, newest first, ranked
    by a window over the (user, -timestamp) index. Users without events are absent."""
    if not user_ids:
        return {}
    rows = (
        Event.objects.filter(user_external_id__in=user_ids)
        .annotate(
            n=Window(
                RowNumber(), partition_by=[F("user_external_id")], order_by=F("timestamp").desc()
            )
        )
        .filter(n__lte=limit)
        .order_by("user_external_id", "n")
        .values_list("user_external_id", "item_id")
    )
    seen: dict[str, list[int]] = {}
    for user_id, item_pk in rows:
        seen.setdefault(user_id, []).append(item_pk)
    return seen


def users_with_events_page(*, after: str | None, limit: int) -> list[str]:
    """The next ``limit`` distinct users with events, by id, after ``after`` (keyset
    pagination over the (user, -timestamp) index: each page costs the same)."""
    events = Event.objects.all()
    if after is not None:
        events = events.filter(user_external_id__gt=after)
    return list(
        events.order_by("user_external_id")
        .values_list("user_external_id", flat=True)
        .distinct()[:limit]
    )


def users_with_events_count() -> int:
    return Event.objects.values("user_external_id").distinct().count()


_RECENT_ITEMS_SQL = (
    f"SELECT item_id FROM {Event._meta.db_table} "
    "WHERE user_external_id = %s ORDER BY timestamp DESC LIMIT %s"
)


def events_ingested_per_day(*, days: int, now: datetime) -> list[tuple[date, int]]:
    """Events ingested on each of the last ``days`` days (UTC), oldest first, zero-filled:
    ``days`` rows of ``EventIngestDay``, counted by ingest itself (counting the window's
    events was seconds at 10M events: ``ingested_at`` has no index)."""
    first_day = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    counts = dict(EventIngestDay.objects.filter(day__gte=first_day).values_list("day", "events"))
    return [(day, counts.get(day, 0)) for day in (first_day + timedelta(n) for n in range(days))]


def user_erasures_stamp() -> int | None:
    """Changes when a user is erased (the newest erasure's key: an index lookup)."""
    return DataErasure.objects.filter(kind=ErasureKind.USER).aggregate(last=Max("pk"))["last"]


def users_erased_since(*, since: datetime | None) -> frozenset[str]:
    """Users erased after ``since`` (all of them when None): a model whose data was read
    at ``since`` may still hold them."""
    erasures = DataErasure.objects.filter(kind=ErasureKind.USER)
    if since is not None:
        erasures = erasures.filter(created_at__gte=since)
    return frozenset(erasures.values_list("subject", flat=True))
