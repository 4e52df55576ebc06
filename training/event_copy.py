"""The training window of events out of PostgreSQL as numpy columns, in bounded memory.

``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` streams fixed-width rows that are parsed
a buffer at a time with one ``np.frombuffer`` each: no Python object per event. Each
event's user crosses as a 64-bit hash of its id (``hashtextextended``), read with the
distinct ids first (in byte order, which is Python's string order) and coded to their
positions in numpy, so the only strings that cross are the distinct users. (A hash join
against the id list in PostgreSQL did the same, but its 100k-entry table outgrew the CPU
caches: 0.3 s at 1M events, 6 s at 10M.) Hashes that collide among the window's users
are retried with another seed. All queries read one REPEATABLE READ snapshot. Rows
arrive unordered and are put in (timestamp, id) order by numpy. Event types are coded by
a ``CASE`` over the recommender's weighted types; the weights are checked in numpy
(``training.dataset``) by the same rule as ingest, so a stored row that breaks it is
skipped and counted, never fatal.

At 1M events this reads in a fraction of the time of a row iterator and keeps ~40 bytes
per event (the columns) plus one buffer; see docs/BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connections, transaction

from recommender.models import Event
from training.pipeline.matrices import distinct

# One row of the binary COPY: the field count, then (length, value) per field, big-endian.
_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("user_len", ">i4"), ("user", ">i8"),
        ("item_len", ">i4"), ("item", ">i8"),
        ("type_len", ">i4"), ("type", ">i4"),
        ("null_len", ">i4"), ("weight_is_null", "?"),
        ("weight_len", ">i4"), ("weight", ">f8"),
        ("ts_len", ">i4"), ("ts", ">i8"),
        ("pk_len", ">i4"), ("pk", ">i8"),
    ]
)  # fmt: skip
_FIELDS = 7
_COLUMNS = {
    "user": np.int64,
    "item": np.int64,
    "type": np.int32,
    "weight_is_null": np.bool_,
    "weight": np.float64,
    "ts": np.int64,
    "pk": np.int64,
}
_HEADER = b"PGCOPY\n\xff\r\n\x00"
_HEADER_SIZE = len(_HEADER) + 8  # signature, flags (int32), header extension length (int32)
_TRAILER = b"\xff\xff"
_PARSE_BYTES = 4 << 20
_HASH_SEEDS = 8  # each a fresh chance when two user ids' hashes collide


@dataclass(frozen=True)
class RawEvents:
    """The window's events with a weighted type, in timestamp order, before the weight
    rule: ``user_codes`` index ``users``; ``type_codes`` index the given type list."""

    users: np.ndarray  # distinct external user ids (object), in byte order
    user_codes: np.ndarray  # int64
    item_pks: np.ndarray  # int64
    type_codes: np.ndarray  # int32
    own_weights: np.ndarray  # float64, the event's own weight (undefined where it has none)
    has_own_weight: np.ndarray  # bool
    timestamps: np.ndarray  # int64 Unix seconds (floored)
    ignored_types: dict[str, int]


class _Columns:
    """A file-like sink for ``copy_expert``, which writes one row per call: the rows are
    collected and parsed ``_PARSE_BYTES`` at a time with one ``np.frombuffer``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._header_seen = False
        self._chunks: list[dict[str, np.ndarray]] = []

    def write(self, data: bytes) -> int:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= _PARSE_BYTES:
            self._parse()
        return len(data)

    def _parse(self) -> None:
        buffer = b"".join(self._parts)
        if not self._header_seen:
            if len(buffer) < _HEADER_SIZE:
                self._parts, self._size = [buffer], len(buffer)
                return
            if not buffer.startswith(_HEADER):
                raise ValueError("not a PostgreSQL binary COPY stream")
            buffer = buffer[_HEADER_SIZE:]
            self._header_seen = True
        whole = len(buffer) // _ROW.itemsize
        if whole:
            rows = np.frombuffer(buffer, dtype=_ROW, count=whole)
            if (
                np.any(rows["fields"] != _FIELDS)
                or np.any(rows["user_len"] != 8)
                or np.any(rows["weight_len"] != 8)
            ):
                raise ValueError("binary COPY rows are not of the expected layout")
            self._chunks.append({name: rows[name].astype(kind) for name, kind in _COLUMNS.items()})
        rest = buffer[whole * _ROW.itemsize :]
        self._parts, self._size = [rest], len(rest)

    def columns(self) -> dict[str, np.ndarray]:
        """Every row's values, one native-endian array per column."""
        self._parse()
        rest = b"".join(self._parts)
        if rest not in (b"", _TRAILER):
            raise ValueError(f"binary COPY ended inside a row ({len(rest)} bytes left)")
        chunks, self._chunks = self._chunks, []
        # A column at a time, its chunks released as it is joined: one copy at the peak.
        return {
            name: np.concatenate([chunk.pop(name) for chunk in chunks])
            if chunks
            else np.zeros(0, dtype=kind)
            for name, kind in _COLUMNS.items()
        }


def events_copy(
    *,
    alias: str,
    start: datetime | None,
    end: datetime,
    event_types: Sequence[str],
) -> RawEvents:
    """The events of ``(start, end]`` whose type is one of ``event_types``, plus the count
    of the others by type, from one snapshot of database ``alias`` (PostgreSQL)."""
    meta = Event._meta
    table = connections[alias].ops.quote_name(meta.db_table)

    def column(name: str) -> str:
        return connections[alias].ops.quote_name(meta.get_field(name).column)

    user, item, kind = column("user_external_id"), column("item"), column("event_type")
    weight, stamp, pk = column("weight"), column("timestamp"), column("id")
    where = f"{stamp} <= %s" + (f" AND {stamp} > %s" if start is not None else "")
    window = [end] + ([start] if start is not None else [])
    types = list(event_types)
    type_case = (
        "CASE " + " ".join(f"WHEN {kind} = %s THEN {i}" for i in range(len(types))) + " END"
        if types
        else "0"
    )
    weighted = f"{kind} IN ({', '.join(['%s'] * len(types))})" if types else "false"
    sink = _Columns()
    # One snapshot for the three queries; inside a caller's transaction (tests), its own.
    own_transaction = not connections[alias].in_atomic_block
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        if own_transaction:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for seed in range(_HASH_SEEDS):
            cursor.execute(
                f'SELECT DISTINCT {user} COLLATE "C" AS u, hashtextextended({user}, %s) '
                f"FROM {table} WHERE {where} AND {weighted} ORDER BY u",
                [seed, *window, *types],
            )
            rows = cursor.fetchall()
            hashes = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
            if distinct(hashes).size == hashes.size:
                break
        else:
            raise ValueError(f"user id hashes collided under {_HASH_SEEDS} seeds")
        users = np.fromiter((row[0] for row in rows), dtype=object, count=len(rows))
        del rows
        # Sorting in numpy spares PostgreSQL a sort of the window.
        select = cursor.mogrify(
            f"SELECT hashtextextended({user}, %s), {item}, ({type_case})::integer, "
            f"{weight} IS NULL, coalesce({weight}, 'NaN'::float8), "
            f"floor(extract(epoch FROM {stamp}))::bigint, {pk} FROM {table} "
            f"WHERE {where} AND {weighted}",
            [seed, *types, *window, *types],
        ).decode()
        cursor.cursor.copy_expert(f"COPY ({select}) TO STDOUT (FORMAT binary)", sink)
        cursor.execute(
            f"SELECT {kind}, count(*) FROM {table} WHERE {where} AND NOT ({weighted}) "
            f"GROUP BY {kind}",
            [*window, *types],
        )
        ignored = {name: int(count) for name, count in cursor.fetchall()}
    columns = sink.columns()
    order = np.lexsort((columns.pop("pk"), columns["ts"]))  # by timestamp, then primary key
    user_codes = hash_positions(hashes, columns.pop("user"))

    def ordered(values: np.ndarray) -> np.ndarray:
        return values[order]

    # Each column reordered and its unordered copy dropped before the next one.
    return RawEvents(
        users=users,
        user_codes=ordered(user_codes),
        item_pks=ordered(columns.pop("item")),
        type_codes=ordered(columns.pop("type")),
        own_weights=ordered(columns.pop("weight")),
        has_own_weight=~ordered(columns.pop("weight_is_null")),
        timestamps=ordered(columns.pop("ts")),
        ignored_types=ignored,
    )


def hash_positions(hashes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each of ``values``' position in ``hashes`` (distinct; every value is one of them)."""
    by_hash = np.argsort(hashes)
    sorted_hashes = hashes[by_hash]
    found = np.minimum(np.searchsorted(sorted_hashes, values), max(hashes.size - 1, 0))
    if values.size and not np.array_equal(sorted_hashes[found], values):
        raise ValueError("an event's user is not among the window's distinct users")
    return by_hash[found].astype(np.int64)
