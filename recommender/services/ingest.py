"""Events and catalog in.

One code path for the API, ``import_dataset`` and ``generate_demo_data``."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from recommender.exceptions import EventBatchInvalid, ItemBatchInvalid
from recommender.ingest import (
    BatchErrors,
    EventIn,
    EventRules,
    ItemIn,
    parse_events,
    parse_items,
)
from recommender.metrics import ingest_count
from recommender.models import OPERATOR_CLIENT, Event, EventIngestDay, Item, UserProfile
from recommender.pgcopy import COPY_NULL, copy_text
from recommender.seen_tokens import events_written

# Rows per INSERT statement: a full API batch in one statement; 10 parameters a row stay
# below both SQLite's 32,766 and PostgreSQL's 65,535 parameter limits.
_INSERT_CHUNK = 1000


@dataclass(slots=True)
class EventIngestResult:
    received: int = 0
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    items_created: int = 0

    def add(self, other: EventIngestResult) -> None:
        self.received += other.received
        self.created += other.created
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.items_created += other.items_created
        self.errors.extend(other.errors)


@dataclass(slots=True)
class ItemUpsertResult:
    received: int = 0
    created: int = 0
    updated: int = 0


def event_rules(*, now: datetime | None = None) -> EventRules:
    return EventRules(
        event_types=settings.RECSITE_EVENT_TYPES,
        now=now or timezone.now(),
        future_tolerance=timedelta(seconds=settings.RECSITE_EVENT_FUTURE_TOLERANCE_SECONDS),
        earliest=settings.RECSITE_EVENT_MIN_TIMESTAMP,
        weight_max=settings.RECSITE_EVENT_WEIGHT_MAX,
    )


def event_batch_ingest(
    *,
    raw_events: Sequence[Any],
    client: str = OPERATOR_CLIENT,
    skip_invalid: bool = False,
    strict_catalog: bool | None = None,
    now: datetime | None = None,
) -> EventIngestResult:
    """Validate and store a batch of events, idempotent on ``(client, event_id)``: a
    replay by the same client stores nothing twice, another client's equal id is its own
    event (``api_key_client`` for API keys, ``OPERATOR_CLIENT`` for imports).

    All or nothing by default: any invalid event raises ``EventBatchInvalid`` listing
    every problem, and nothing is written. With ``skip_invalid`` the valid events are
    stored and the others counted as rejected. Unknown items are an error under a strict
    catalog; otherwise they are created as bare catalog entries (title empty, active)."""
    strict = settings.RECSITE_STRICT_CATALOG if strict_catalog is None else strict_catalog
    parsed, errors = parse_events(raw_events, event_rules(now=now))
    with transaction.atomic():
        item_pks, created_items = _resolve_items(parsed, errors, strict=strict)
        if errors and not skip_invalid:
            ingest_count(client=client, refused=len(raw_events), code=EventBatchInvalid.code)
            raise EventBatchInvalid(errors=errors.entries)
        bad = errors.indexes()
        valid = [event for index, event in enumerate(parsed) if event and index not in bad]
        created = _insert_events(valid, item_pks, client) if valid else 0
    if created:
        events_written(event.user_id for event in valid)
    ingest_count(
        client=client,
        accepted=created,
        duplicates=len(valid) - created,
        refused=len(bad),
        code=EventBatchInvalid.code,
    )
    return EventIngestResult(
        received=len(raw_events),
        created=created,
        duplicates=len(valid) - created,
        rejected=len(bad),
        errors=errors.entries,
        items_created=created_items,
    )


def _resolve_items(
    parsed: Sequence[EventIn | None], errors: BatchErrors, *, strict: bool
) -> tuple[dict[str, int], int]:
    wanted = {event.item_id for event in parsed if event}
    pks = dict(Item.objects.filter(external_id__in=wanted).values_list("external_id", "pk"))
    missing = wanted - pks.keys()
    if not missing:
        return pks, 0
    if strict:
        for index, event in enumerate(parsed):
            if event and event.item_id in missing:
                errors.add(index, "item_id", f"unknown item {event.item_id!r} (strict catalog)")
        return pks, 0
    Item.objects.bulk_create(
        [Item(external_id=external_id) for external_id in sorted(missing)],
        ignore_conflicts=True,
    )
    pks.update(Item.objects.filter(external_id__in=missing).values_list("external_id", "pk"))
    return pks, len(missing)


_EVENT_COLUMNS = (
    "client",
    "event_id",
    "user_external_id",
    "item",
    "event_type",
    "weight",
    "timestamp",
    "recommendation_id",
    "position",
    "ingested_at",
)


_CONFLICT = 'ON CONFLICT ("event_id", "client") DO NOTHING RETURNING "event_id"'


def _insert_events(events: Sequence[EventIn], item_pks: dict[str, int], client: str) -> int:
    """Insert with ``ON CONFLICT (event_id, client) DO NOTHING RETURNING``: an exact count of
    new rows even when concurrent requests send the same events. On PostgreSQL the rows go
    in by ``COPY`` into a session temp table and one ``INSERT ... SELECT`` (no per-value
    parameter adaptation, no 8,000-parameter statement to parse); elsewhere by one
    multi-row ``INSERT ... VALUES`` per chunk. The new rows are added to the day's
    ``EventIngestDay`` count."""
    ingested_at = timezone.now()
    rows = [
        (
            client,
            event.event_id,
            event.user_id,
            item_pks[event.item_id],
            event.event_type,
            event.weight,
            event.timestamp,
            event.recommendation_id or "",
            event.position,
            ingested_at,
        )
        for event in events
    ]
    columns = [Event._meta.get_field(name).column for name in _EVENT_COLUMNS]
    column_sql = ", ".join(connection.ops.quote_name(column) for column in columns)
    table = connection.ops.quote_name(Event._meta.db_table)
    if connection.vendor == "postgresql":
        created = _copy_events(rows, table, column_sql)
    else:
        created = _insert_rows(rows, table, column_sql, len(columns))
    _count_ingested(day=ingested_at.astimezone(UTC).date(), events=created)
    return created


def _count_ingested(*, day: date, events: int) -> None:
    """Add ``events`` to ``day``'s ``EventIngestDay`` row (created at the day's first
    batch), in the batch's transaction: one upsert per batch."""
    if not events:
        return
    table = connection.ops.quote_name(EventIngestDay._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} ("day", "events") VALUES (%s, %s) ON CONFLICT ("day") '
            f'DO UPDATE SET "events" = {table}."events" + excluded."events"',
            [day, events],
        )


def _insert_rows(rows: list[tuple], table: str, column_sql: str, n_columns: int) -> int:
    adapt = connection.ops.adapt_datetimefield_value
    row_sql = "(" + ", ".join(["%s"] * n_columns) + ")"
    created = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[start : start + _INSERT_CHUNK]
            params: list[Any] = []
            for row in chunk:
                params.extend((*row[:6], adapt(row[6]), row[7], row[8], adapt(row[9])))
            cursor.execute(
                f"INSERT INTO {table} ({column_sql}) VALUES "
                + ", ".join([row_sql] * len(chunk))
                + f" {_CONFLICT}",
                params,
            )
            created += len(cursor.fetchall())
    return created


# Named for its columns: a connection that still holds an older shape's table gets a new one.
_COPY_TABLE = "recsite_event_load_v3"


def _copy_line(row: tuple, ingested_at: str) -> str:
    client, event_id, user_id, item_pk, event_type, weight, timestamp, recommendation_id = row[:8]
    position = row[8]
    weight_text = COPY_NULL if weight is None else repr(weight)
    position_text = COPY_NULL if position is None else str(position)
    return (
        f"{copy_text(client)}\t{copy_text(event_id)}\t{copy_text(user_id)}\t{item_pk}\t{copy_text(event_type)}\t"
        f"{weight_text}\t{timestamp.isoformat()}\t"
        f"{copy_text(recommendation_id)}\t{position_text}\t{ingested_at}\n"
    )


def _copy_events(rows: list[tuple], table: str, column_sql: str) -> int:
    ingested_at = rows[0][9].isoformat() if rows else ""
    body = "".join(_copy_line(row, ingested_at) for row in rows)
    with connection.cursor() as cursor:
        # A temp table lives as long as the connection; it is emptied after each batch
        # (and a failed batch's rows roll back with its transaction).
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_COPY_TABLE} ("
            "client varchar(64), event_id varchar(255), user_external_id varchar(255), "
            "item_id bigint, "
            "event_type varchar(32), weight double precision, timestamp timestamptz, "
            "recommendation_id varchar(64), position integer, ingested_at timestamptz)"
        )
        cursor.cursor.copy_expert(
            f"COPY {_COPY_TABLE} ({column_sql}) FROM STDIN", io.StringIO(body)
        )
        # In key order (one batch has one client): two requests inserting the same ids in
        # different orders would each wait for the other's uncommitted rows (a deadlock).
        cursor.execute(
            f"INSERT INTO {table} ({column_sql}) SELECT {column_sql} FROM {_COPY_TABLE} "
            f'ORDER BY "event_id" COLLATE "C" {_CONFLICT}'
        )
        created = len(cursor.fetchall())
        cursor.execute(f"TRUNCATE {_COPY_TABLE}")
    return created


def item_batch_upsert(*, raw_items: Sequence[Any]) -> ItemUpsertResult:
    """Create or update catalog items; fields a client leaves out keep their value.

    All or nothing: any invalid item raises ``ItemBatchInvalid`` and nothing is written.
    When an id appears twice in one batch, the last entry wins."""
    parsed, errors = parse_items(raw_items)
    if errors:
        raise ItemBatchInvalid(errors=errors.entries)
    latest: dict[str, ItemIn] = {item.item_id: item for item in parsed if item}
    with transaction.atomic():
        existing = {
            item.external_id: item
            for item in Item.objects.select_for_update().filter(external_id__in=latest)
        }
        new_items = [
            Item(
                external_id=item.item_id,
                title=item.title or "",
                categories=item.categories or [],
                active=True if item.active is None else item.active,
            )
            for item_id, item in latest.items()
            if item_id not in existing
        ]
        Item.objects.bulk_create(
            new_items,
            update_conflicts=True,
            unique_fields=["external_id"],
            update_fields=["title", "categories", "active", "updated_at"],
        )
        changed: list[Item] = []
        fields: set[str] = set()
        now = timezone.now()
        for item_id, row in existing.items():
            update = latest[item_id]
            provided = update.provided_fields()
            if not any(getattr(row, name) != getattr(update, name) for name in provided):
                continue
            for name in provided:
                setattr(row, name, getattr(update, name))
            row.updated_at = now
            fields |= provided
            changed.append(row)
        if changed:
            Item.objects.bulk_update(changed, sorted(fields | {"updated_at"}), batch_size=500)
    return ItemUpsertResult(received=len(raw_items), created=len(new_items), updated=len(changed))


def user_profiles_upsert(*, profiles: Iterable[tuple[str, list[str]]]) -> int:
    """Create or replace user features, e.g. from a dataset's user file. Returns the count."""
    rows = [
        UserProfile(external_id=external_id, features=features)
        for external_id, features in profiles
    ]
    UserProfile.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["external_id"],
        update_fields=["features", "updated_at"],
    )
    return len(rows)
