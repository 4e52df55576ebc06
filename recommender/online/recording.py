"""Recording what was served, off the request path.

The serving path calls ``served_list_record(...)``: it appends one record to this
process's bounded buffer (``RECSITE_SERVED_BUFFER_MAX``) under a lock held for an
append, never waits for the database and never raises. A flusher thread
(``recording_start``, every ``RECSITE_SERVED_FLUSH_SECONDS``) takes everything
buffered and writes it in one batch: ``COPY`` on PostgreSQL, ``bulk_create``
elsewhere. A full buffer drops the new record; a batch the database refuses is dropped
whole (no retry: a retry would hold memory while the database is down). Drops are
counted in ``recsite_served_lists_dropped_total`` by reason; a request never fails
because of recording.

``flush()`` writes what is buffered in the calling thread: tests call it, and the
flusher calls it at exit."""

from __future__ import annotations

import atexit
import io
import logging
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from recommender.models import Recommender
from recommender.online.metrics import SERVED_LISTS, SERVED_LISTS_DROPPED
from recommender.online.models import ServedList, ServedListKind
from recommender.pgcopy import COPY_NULL, copy_text

logger = logging.getLogger(__name__)

# Rows per COPY / bulk_create.
_WRITE_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class ServedListRecord:
    id: uuid.UUID
    recommender: str
    model_version: int | None
    experiment_id: int | None
    arm: str
    user_id: str
    kind: str
    first_position: int
    item_ids: tuple[str, ...]
    sources: tuple[str, ...]
    created_at: datetime


class ServedListBuffer:
    """A bounded, thread-safe FIFO of records waiting to be written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: deque[ServedListRecord] = deque()
        self._flush_lock = threading.Lock()  # one writer at a time (flusher, flush())
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: ServedListRecord, max_size: int) -> bool:
        with self._lock:
            if len(self._records) >= max_size:
                return False
            self._records.append(record)
            return True

    def take(self) -> list[ServedListRecord]:
        with self._lock:
            records = list(self._records)
            self._records.clear()
        return records

    def clear(self) -> None:
        self.take()

    def flush(self) -> int:
        """Write everything buffered; returns how many lists were written."""
        with self._flush_lock:
            records = self.take()
            written = 0
            for start in range(0, len(records), _WRITE_CHUNK):
                written += _write(records[start : start + _WRITE_CHUNK])
            return written

    def start(self, interval: float) -> None:
        """Start the flusher thread (once per process)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="served-list-flusher", daemon=True
        )
        self._thread.start()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the flusher and write what is left."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._flush_quietly()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._flush_quietly()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception:  # never let the flusher die; _write counts its own drops
            logger.exception("served-list flush failed")
        finally:
            connection.close()  # this thread's connection: a fresh one after any error


buffer = ServedListBuffer()


def served_list_record(
    *,
    recommendation_id: uuid.UUID,
    recommender: str,
    model_version: int | None,
    user_id: str,
    item_ids: Sequence[str],
    sources: Sequence[str] | str = "model",
    kind: str = ServedListKind.RECOMMENDATIONS,
    first_position: int = 1,
    experiment_id: int | None = None,
    arm: str = "",
    created_at: datetime | None = None,
) -> bool:
    """Buffer one served list for writing; False when it was dropped (counted) or
    recording is off (``RECSITE_SERVED_RECORDING``, not counted). Never raises and never
    touches the database: safe on the request path.

    ``sources``: what ranked each item (one per item, or one for all), e.g. ``"model"``,
    ``"popularity"``. ``user_id`` is empty for similar items."""
    if not settings.RECSITE_SERVED_RECORDING:
        return False
    try:
        items = tuple(item_ids)
        per_item = (sources,) * len(items) if isinstance(sources, str) else tuple(sources)
        if len(per_item) != len(items):
            raise ValueError(f"{len(per_item)} sources for {len(items)} items")
        record = ServedListRecord(
            id=recommendation_id,
            recommender=recommender,
            model_version=model_version,
            experiment_id=experiment_id,
            arm=arm,
            user_id=user_id,
            kind=str(kind),
            first_position=first_position,
            item_ids=items,
            sources=per_item,
            created_at=created_at or timezone.now(),
        )
    except Exception:
        logger.exception("served list not recorded: invalid record")
        SERVED_LISTS_DROPPED.labels("invalid").inc()
        return False
    try:
        SERVED_LISTS.labels(recommender, record.kind).inc()
        if buffer.add(record, settings.RECSITE_SERVED_BUFFER_MAX):
            return True
        SERVED_LISTS_DROPPED.labels("buffer_full").inc()
    except Exception:
        logger.exception("served list not recorded")
        SERVED_LISTS_DROPPED.labels("invalid").inc()
    return False


def recording_start() -> None:
    """Start this process's flusher thread (a serving process calls it once, after its
    fork); without it nothing is written until ``flush()``. Nothing to start when
    recording is off."""
    if settings.RECSITE_SERVED_RECORDING:
        buffer.start(settings.RECSITE_SERVED_FLUSH_SECONDS)


def recording_reset() -> None:
    """Forget what is buffered and the recommender keys cached (tests)."""
    buffer.clear()
    _recommender_pks.clear()


def flush() -> int:
    """Write what this process has buffered, now, in the calling thread."""
    return buffer.flush()


_recommender_pks: dict[str, int] = {}


def _recommender_pk_map(names: set[str]) -> dict[str, int]:
    missing = names - _recommender_pks.keys()
    if missing:
        _recommender_pks.update(
            Recommender.objects.filter(name__in=missing).values_list("name", "pk")
        )
    return {name: _recommender_pks[name] for name in names if name in _recommender_pks}


_COLUMNS = (
    "id",
    "recommender",
    "model_version",
    "experiment",
    "arm",
    "user_external_id",
    "kind",
    "first_position",
    "item_ids",
    "sources",
    "created_at",
)


def _write(records: list[ServedListRecord]) -> int:
    """One batch in one transaction; a refused batch is dropped and counted."""
    try:
        pks = _recommender_pk_map({record.recommender for record in records})
        known = [record for record in records if record.recommender in pks]
        if len(known) < len(records):
            SERVED_LISTS_DROPPED.labels("unknown_recommender").inc(len(records) - len(known))
        if not known:
            return 0
        with transaction.atomic():
            if connection.vendor == "postgresql":
                _copy(known, pks)
            else:
                ServedList.objects.bulk_create([_row(record, pks) for record in known])
        return len(known)
    except Exception:  # the database's errors, COPY's (raw driver errors) included
        logger.exception("%d served lists not recorded: the database refused them", len(records))
        SERVED_LISTS_DROPPED.labels("database_error").inc(len(records))
        _recommender_pks.clear()  # a recommender deleted and re-created gets a new key
        return 0


def _row(record: ServedListRecord, pks: dict[str, int]) -> ServedList:
    return ServedList(
        id=record.id,
        recommender_id=pks[record.recommender],
        model_version=record.model_version,
        experiment_id=record.experiment_id,
        arm=record.arm,
        user_external_id=record.user_id,
        kind=record.kind,
        first_position=record.first_position,
        item_ids=list(record.item_ids),
        sources=list(record.sources),
        created_at=record.created_at,
    )


def _nullable(value: int | None) -> str:
    return COPY_NULL if value is None else str(value)


def _json_text(values: tuple[str, ...]) -> str:
    """A JSON array in COPY's text format (orjson: a sixth of ``json.dumps``'s CPU, which
    was most of the flusher's)."""
    return copy_text(orjson.dumps(values).decode())


def _copy(records: list[ServedListRecord], pks: dict[str, int]) -> None:
    body = "".join(
        f"{record.id}\t{pks[record.recommender]}\t{_nullable(record.model_version)}\t"
        f"{_nullable(record.experiment_id)}\t{copy_text(record.arm)}\t"
        f"{copy_text(record.user_id)}\t{record.kind}\t{record.first_position}\t"
        f"{_json_text(record.item_ids)}\t{_json_text(record.sources)}\t"
        f"{record.created_at.isoformat()}\n"
        for record in records
    )
    columns = ", ".join(
        connection.ops.quote_name(ServedList._meta.get_field(name).column) for name in _COLUMNS
    )
    table = connection.ops.quote_name(ServedList._meta.db_table)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO(body))
