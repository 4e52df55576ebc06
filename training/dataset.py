"""Reading a recommender's training data out of the database as numpy arrays.

Events are streamed with ``values_list(...).iterator()`` in chunks (no model instance per
event) and turned into columns; the pure pipeline modules take it from there.

Every read here goes to ``training_database()``: the ``training`` alias (a PostgreSQL
streaming replica named by ``RECSITE_TRAINING_DATABASE_URL``) when it is configured, so a
big load never competes with ingest on the primary, else the default database. A replica
lags: the window's end is then the commit time of the last transaction it replayed, so
the run records the data it actually saw (later events are in the next run) and serving
forgets users erased after that moment, not after the run started."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db.models import Max
from django.utils import timezone

from recommender.models import Event, Item, Recommender, UserProfile
from training.event_copy import RawEvents, events_copy
from training.exceptions import TrainingDatabaseUnavailable

_CHUNK = 20_000
TRAINING_DATABASE = "training"
PRIMARY = "primary"
REPLICA = "replica"


def training_database() -> str:
    """The database alias training reads from (see the module docstring)."""
    return TRAINING_DATABASE if TRAINING_DATABASE in connections.databases else DEFAULT_DB_ALIAS


@contextmanager
def _training_reads() -> Iterator[str]:
    """The alias to read from; a replica that does not answer fails the run with
    ``training_database_unavailable`` (the primary's own errors pass through as they are)."""
    alias = training_database()
    try:
        yield alias
    except (OperationalError, InterfaceError) as exc:
        if alias == DEFAULT_DB_ALIAS:
            raise
        connections[alias].close()
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingDatabaseUnavailable(
            f"training_database_unavailable: the training database "
            f"(RECSITE_TRAINING_DATABASE_URL) does not answer: {first_line}"
        ) from exc


def _replayed_until(alias: str) -> datetime | None:
    """On a PostgreSQL standby, a moment up to which it holds everything the primary
    committed: the commit time of the last transaction it replayed or, when it has
    replayed none since it started (its data is the base backup's), the newest event it
    holds (a lower bound). None on a primary or another database."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()")
        in_recovery, replayed = cursor.fetchone()
    if not in_recovery:
        return None
    if replayed is None:
        replayed = Event.objects.using(alias).aggregate(newest=Max("ingested_at"))["newest"]
    return replayed


@dataclass(frozen=True)
class EventColumns:
    """One row per event kept for training, in timestamp order. Users are coded once:
    ``users`` holds each distinct external id (in string order), ``user_codes`` each
    event's index into it, so no string is repeated per event."""

    users: np.ndarray  # distinct external user ids (object), sorted
    user_codes: np.ndarray  # int64, one per event
    item_pks: np.ndarray  # Item primary keys (int64)
    weights: np.ndarray  # effective weights: type weight x the event's own weight
    timestamps: np.ndarray  # Unix seconds (int64)
    window_start: datetime | None
    window_end: datetime
    ignored_types: dict[str, int]
    source: str = PRIMARY  # PRIMARY, or REPLICA when read from RECSITE_TRAINING_DATABASE_URL
    # Rows skipped because their weight is unusable (stored before ingest bounded it, or
    # above a since-lowered RECSITE_EVENT_WEIGHT_MAX): one such row made every run fail.
    invalid_weights: int = 0

    def __len__(self) -> int:
        return len(self.item_pks)

    @property
    def user_ids(self) -> np.ndarray:
        """Each event's external user id (an object array of references, not copies)."""
        return self.users[self.user_codes]


@dataclass(frozen=True)
class CatalogColumns:
    """The items that appear in the events, with their external ids, categories and
    titles."""

    item_pks: np.ndarray
    external_ids: list[str]
    categories: list[list[str]]
    active: np.ndarray
    titles: list[str]


def training_window(*, recommender: Recommender, now: datetime | None = None) -> tuple:
    end = now or timezone.now()
    start = end - timedelta(days=recommender.window_days) if recommender.window_days else None
    return start, end


def events_load(*, recommender: Recommender, now: datetime | None = None) -> EventColumns:
    """The recommender's window of events, with effective weights.

    Event types missing from ``recommender.event_weights`` are left out and counted, and
    so are rows whose own weight breaks the ingest rule (non-finite, <= 0, above
    ``RECSITE_EVENT_WEIGHT_MAX``) or whose effective weight is not a finite float32."""
    with _training_reads() as alias:
        return _events_read(recommender, now, alias)


def _events_read(recommender: Recommender, now: datetime | None, alias: str) -> EventColumns:
    start, end = training_window(recommender=recommender, now=now)
    replayed = _replayed_until(alias)
    if replayed is not None:
        end = min(end, replayed)
    types = list(recommender.event_weights)
    if connections[alias].vendor == "postgresql":
        raw = events_copy(alias=alias, start=start, end=end, event_types=types)
    else:
        raw = events_iterate(alias, start, end, types)
    type_weights = np.asarray([float(recommender.event_weights[t]) for t in types], np.float64)
    own = raw.own_weights
    own_ok = ~raw.has_own_weight | (
        np.isfinite(own) & (own > 0) & (own <= settings.RECSITE_EVENT_WEIGHT_MAX)
    )
    with np.errstate(over="ignore", invalid="ignore"):
        effective = (
            type_weights[raw.type_codes] * np.where(raw.has_own_weight, own, 1.0)
            if len(types)
            else np.zeros(len(own))
        )
    keep = own_ok & np.isfinite(effective) & (np.abs(effective) <= float(np.finfo(np.float32).max))
    users, user_codes = raw.users, raw.user_codes
    if not keep.all():
        used, user_codes = np.unique(user_codes[keep], return_inverse=True)
        users = users[used]
    return EventColumns(
        users=users,
        user_codes=user_codes.astype(np.int64),
        item_pks=raw.item_pks[keep],
        weights=effective[keep].astype(np.float32),
        timestamps=raw.timestamps[keep],
        window_start=start,
        window_end=end,
        ignored_types=raw.ignored_types,
        source=PRIMARY if alias == DEFAULT_DB_ALIAS else REPLICA,
        invalid_weights=int((~keep).sum()),
    )


def events_iterate(
    alias: str, start: datetime | None, end: datetime, types: list[str]
) -> RawEvents:
    """``events_copy``'s result from a row iterator, for databases without binary COPY
    (SQLite: the embedded default, where the data is small)."""
    events = Event.objects.using(alias).filter(timestamp__lte=end)
    if start is not None:
        events = events.filter(timestamp__gt=start)
    code_of_type = {name: code for code, name in enumerate(types)}
    users: list[str] = []
    items: list[int] = []
    type_codes: list[int] = []
    own: list[float] = []
    has_own: list[bool] = []
    stamps: list[float] = []
    ignored: dict[str, int] = {}
    rows = events.order_by("timestamp", "id").values_list(
        "user_external_id", "item_id", "event_type", "weight", "timestamp"
    )
    for user, item, event_type, weight, stamp in rows.iterator(chunk_size=_CHUNK):
        code = code_of_type.get(event_type)
        if code is None:
            ignored[event_type] = ignored.get(event_type, 0) + 1
            continue
        users.append(user)
        items.append(item)
        type_codes.append(code)
        own.append(0.0 if weight is None else weight)
        has_own.append(weight is not None)
        stamps.append(stamp.timestamp())
    distinct, codes = np.unique(np.asarray(users, dtype=object), return_inverse=True)
    return RawEvents(
        users=distinct,
        user_codes=codes.astype(np.int64),
        item_pks=np.asarray(items, dtype=np.int64),
        type_codes=np.asarray(type_codes, dtype=np.int32),
        own_weights=np.asarray(own, dtype=np.float64),
        has_own_weight=np.asarray(has_own, dtype=bool),
        timestamps=np.floor(np.asarray(stamps, dtype=np.float64)).astype(np.int64),
        ignored_types=ignored,
    )


def catalog_load(*, item_pks: np.ndarray) -> CatalogColumns:
    """External ids, categories, the active flag and titles for the given item keys, in
    that order."""
    wanted = np.asarray(item_pks, dtype=np.int64)
    with _training_reads() as alias:
        rows = {
            pk: (external_id, categories or [], active, title)
            for pk, external_id, categories, active, title in Item.objects.using(alias)
            .filter(pk__in=wanted.tolist())
            .values_list("pk", "external_id", "categories", "active", "title")
        }
    return CatalogColumns(
        item_pks=wanted,
        external_ids=[rows[pk][0] for pk in wanted.tolist()],
        categories=[list(rows[pk][1]) for pk in wanted.tolist()],
        active=np.array([rows[pk][2] for pk in wanted.tolist()], dtype=bool),
        titles=[rows[pk][3] for pk in wanted.tolist()],
    )


def user_features_load(*, user_ids: list[str]) -> dict[str, list[str]]:
    """Features of the users that have a profile (others have none)."""
    features: dict[str, list[str]] = {}
    with _training_reads() as alias:
        profiles = UserProfile.objects.using(alias)
        for start in range(0, len(user_ids), _CHUNK):
            chunk = user_ids[start : start + _CHUNK]
            features.update(
                profiles.filter(external_id__in=chunk).values_list("external_id", "features")
            )
    return features
