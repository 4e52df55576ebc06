"""External ids in memory: one UTF-8 blob + offsets, and a hash index over them. No Django.

A fixed-width numpy unicode array costs ``4 x longest id`` bytes per id: one 255-character
id made every id of a catalogue cost 1,020 bytes, and looking up a query longer than the
array's width made numpy copy the whole array at the query's width (3.2 GB for a
4,000-character item id against 200k ids). Here memory follows the ids' real total
length, and no lookup copies the index:

- :class:`IdArray` holds ``n`` ids as one ``uint8`` blob (their UTF-8 bytes, one after the
  other) and ``n + 1`` int64 offsets (id ``i`` is ``blob[offsets[i]:offsets[i + 1]]``).
  Both are plain numeric arrays: an artifact stores them as two ``.npy`` files loaded
  with ``allow_pickle=False`` and memory-mapped, so every worker shares one copy.
- :class:`IdIndex` maps an id to its position: every id's 64-bit hash (FNV-1a over its
  UTF-8 bytes from a per-process random start, computed for all ids at once by numpy),
  sorted, with each one's position; a lookup hashes the query, binary-searches the
  hashes and compares the one candidate. Per id that is 8 + 8 bytes besides the
  blob. A query longer than the longest indexed id is "not found" before anything is
  hashed or searched.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MAX_ID_LENGTH = 255
"""The longest external id (user, item, event) in characters: the models' column width,
checked at every entry point (ingest, import, the API's paths and ``exclude``)."""

_ENCODING = "utf-8"
# Lone surrogates (possible in JSON input) round-trip instead of raising; such an id never
# equals a valid stored one.
_ERRORS = "surrogatepass"
# From this many ids on, ``strings_at`` copies the blob once instead of slicing per id.
_BULK = 64
_EMPTY_OFFSETS = np.zeros(1, dtype=np.int64)
# FNV-1a (64 bit) from a random offset basis drawn once per process: nobody outside can
# aim ids at one hash value (a shared hash only costs a dict entry, never a wrong answer).
_FNV_PRIME = 0x100000001B3
_FNV_BASIS = secrets.randbits(64)
_MASK64 = (1 << 64) - 1


class IdArray:
    """``n`` strings as one UTF-8 blob (uint8) + ``n + 1`` int64 offsets. Immutable."""

    __slots__ = ("blob", "offsets", "max_bytes")

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        """Wrap ``blob`` and ``offsets`` as they are (memory-mapped arrays stay mapped);
        :func:`id_array_check` validates untrusted ones first."""
        self.blob = blob
        self.offsets = offsets
        self.max_bytes = int(np.diff(offsets).max()) if offsets.size > 1 else 0

    @classmethod
    def from_strings(cls, ids: Iterable[Any]) -> IdArray:
        encoded = [str(i).encode(_ENCODING, _ERRORS) for i in ids]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        if encoded:
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        return cls(blob, offsets)

    @classmethod
    def empty(cls) -> IdArray:
        return cls(np.zeros(0, dtype=np.uint8), _EMPTY_OFFSETS)

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    def __getitem__(self, position: int) -> str:
        n = len(self)
        if not -n <= position < n:
            raise IndexError(f"id position {position} out of range for {n} ids")
        position %= n
        start, end = int(self.offsets[position]), int(self.offsets[position + 1])
        return bytes(self.blob[start:end]).decode(_ENCODING, _ERRORS)

    def __iter__(self):
        return iter(self.tolist())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """A fixed-width unicode copy, for code that needs one (training's ``IdMap``)."""
        return np.asarray(self.tolist(), dtype=dtype or np.str_)

    @property
    def nbytes(self) -> int:
        return int(self.blob.nbytes + self.offsets.nbytes)

    def lengths(self) -> np.ndarray:
        """Each id's length in bytes."""
        return np.diff(self.offsets)

    def tolist(self) -> list[str]:
        return self.strings_at(np.arange(len(self)))

    def strings_at(self, positions: np.ndarray | Sequence[int]) -> list[str]:
        """The ids at ``positions`` as Python strings."""
        at = np.asarray(positions, dtype=np.int64)
        starts = self.offsets[at].tolist()
        ends = self.offsets[at + 1].tolist()
        if at.size < _BULK:
            # Slices of a memoryview, not of the array: slicing a memory-mapped array
            # builds a ``memmap`` object each time (Python-level ``__array_finalize__``).
            blob = memoryview(self.blob)
            return [str(blob[a:b], _ENCODING, _ERRORS) for a, b in zip(starts, ends, strict=True)]
        # Many: slice one bytes copy of the blob (a str when it is ASCII: byte offsets
        # are then character offsets), which is ~10x faster than a numpy slice per id.
        raw = np.asarray(self.blob).tobytes()
        if raw.isascii():
            text = raw.decode("ascii")
            return [text[a:b] for a, b in zip(starts, ends, strict=True)]
        return [raw[a:b].decode(_ENCODING, _ERRORS) for a, b in zip(starts, ends, strict=True)]

    def take(self, positions: np.ndarray) -> IdArray:
        """A new array of the ids at ``positions`` (vectorised; copies only those bytes)."""
        positions = np.asarray(positions, dtype=np.int64)
        starts = self.offsets[positions]
        lengths = self.offsets[positions + 1] - starts
        offsets = np.zeros(positions.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return IdArray(np.asarray(self.blob)[_gather(starts, lengths, offsets)], offsets)

    def concat(self, other: IdArray) -> IdArray:
        """This array followed by ``other``."""
        if not len(other):
            return self
        blob = np.concatenate([np.asarray(self.blob), np.asarray(other.blob)])
        offsets = np.concatenate([self.offsets[:-1], other.offsets + self.offsets[-1]])
        return IdArray(blob, offsets.astype(np.int64))


def id_array_check(blob: np.ndarray, offsets: np.ndarray) -> str | None:
    """Why ``blob`` + ``offsets`` are not a valid :class:`IdArray` (None when they are):
    dtypes, monotonic offsets spanning the blob, valid UTF-8 cut at character boundaries."""
    if blob.dtype != np.uint8 or blob.ndim != 1:
        return "the id blob must be a one-dimensional uint8 array"
    if offsets.dtype != np.int64 or offsets.ndim != 1 or offsets.size < 1:
        return "id offsets must be a non-empty one-dimensional int64 array"
    if int(offsets[0]) != 0 or int(offsets[-1]) != blob.size:
        return "id offsets must start at 0 and end at the blob's size"
    if (np.diff(offsets) < 0).any():
        return "id offsets must not decrease"
    try:
        bytes(blob).decode(_ENCODING)
    except UnicodeDecodeError as exc:
        return f"the id blob is not valid UTF-8 ({exc.reason} at byte {exc.start})"
    inner = offsets[(offsets > 0) & (offsets < blob.size)]
    if ((np.asarray(blob[inner]) & 0xC0) == 0x80).any():
        return "an id offset cuts a UTF-8 character"
    return None


def _gather(starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Blob indices of segments ``[starts[i], starts[i] + lengths[i])``, concatenated
    (``offsets`` is the exclusive cumulative sum of ``lengths``)."""
    total = int(offsets[-1])
    return np.repeat(starts - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)


class IdIndex:
    """External id -> position in an :class:`IdArray`, without a Python dict of every id.

    Holds each id's hash (:func:`ids_hash`: keyed per process, so nobody can aim at
    collisions) sorted, and each one's position: 16 bytes per id besides the ids
    themselves (which a model keeps memory-mapped from its artifact). A lookup hashes the
    query, binary-searches the hashes and compares the one candidate. Ids whose hash is
    shared (equal ids, or a 64-bit collision: in practice never) go to a small dict; for
    equal ids the first position wins."""

    __slots__ = ("ids", "_hashes", "_positions", "_shared")

    def __init__(self, ids: IdArray | Sequence[str] | np.ndarray) -> None:
        self.ids = ids if isinstance(ids, IdArray) else IdArray.from_strings(ids)
        n = len(self.ids)
        hashes = ids_hash(self.ids)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        shared = np.zeros(n, dtype=bool)
        if n > 1:
            repeated = hashes[1:] == hashes[:-1]
            shared[1:] |= repeated
            shared[:-1] |= repeated
        self._shared: dict[str, int] = {}
        for position in np.sort(order[shared]).tolist():
            self._shared.setdefault(self.ids[position], position)
        self._hashes = hashes[~shared]
        self._positions = order[~shared].astype(np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """What this index holds privately (hashes and positions; not the ids)."""
        return int(self._hashes.nbytes + self._positions.nbytes)

    def positions(self, queries: IdArray | Sequence[str] | np.ndarray) -> np.ndarray:
        """The position of each query id; -1 for ids not in the index.

        A query of more characters than the longest id has bytes cannot match: it is
        dropped before it is hashed or searched for (no work, no copy)."""
        n_queries = len(queries)
        found = np.full(n_queries, -1, dtype=np.int64)
        if n_queries == 0 or len(self.ids) == 0:
            return found
        limit = self.ids.max_bytes
        if isinstance(queries, IdArray):
            wanted = np.flatnonzero(queries.lengths() <= limit)
            texts = queries.strings_at(wanted)
        else:
            texts = [str(q) for q in queries]
            wanted = np.asarray([i for i, q in enumerate(texts) if len(q) <= limit], np.int64)
            if wanted.size < n_queries:
                texts = [texts[i] for i in wanted.tolist()]
        if not texts:
            return found
        if self._hashes.size:
            hashes = ids_hash(IdArray.from_strings(texts))
            at = np.minimum(np.searchsorted(self._hashes, hashes), self._hashes.size - 1)
            hit = np.flatnonzero(self._hashes[at] == hashes)
            candidates = self._positions[at[hit]]
            stored = self.ids.strings_at(candidates)
            for i, candidate, text in zip(hit.tolist(), candidates.tolist(), stored, strict=True):
                if text == texts[i]:
                    found[wanted[i]] = candidate
        if self._shared:
            for i, text in enumerate(texts):
                position = self._shared.get(text)
                if position is not None:
                    found[wanted[i]] = position
        return found

    def position(self, query: str) -> int | None:
        """One id's position (None: not in the index); the request path's lookup."""
        if len(query) > self.ids.max_bytes:
            return None
        if self._hashes.size:
            hashed = id_hash(query)
            at = int(np.searchsorted(self._hashes, hashed))
            if at < self._hashes.size and int(self._hashes[at]) == hashed:
                candidate = int(self._positions[at])
                if self.ids[candidate] == query:
                    return candidate
        return self._shared.get(query) if self._shared else None


def ids_hash(ids: IdArray) -> np.ndarray:
    """Every id's :func:`id_hash` (int64), computed over the blob by numpy: one pass per
    byte position over the ids at least that long (longest first), so the work follows
    the blob's size and no Python string is made (1M ids: ~0.1 s instead of ~0.6 s for
    Python's ``hash`` over decoded strings)."""
    lengths = ids.lengths()
    by_length = np.argsort(-lengths, kind="stable")
    starts = ids.offsets[:-1][by_length]
    remaining = lengths[by_length]
    blob = np.asarray(ids.blob)
    hashes = np.full(lengths.size, _FNV_BASIS, dtype=np.uint64)
    prime = np.uint64(_FNV_PRIME)
    with np.errstate(over="ignore"):
        for byte in range(int(remaining[0]) if remaining.size else 0):
            alive = int(np.count_nonzero(remaining > byte))
            part = hashes[:alive]
            part ^= blob[starts[:alive] + byte].astype(np.uint64)
            part *= prime
    out = np.empty(lengths.size, dtype=np.int64)
    out[by_length] = hashes.view(np.int64)
    return out


def id_hash(text: str) -> int:
    """One id's 64-bit FNV-1a hash of its UTF-8 bytes (as a signed int64), from this
    process's random basis: what :func:`ids_hash` computes for each id of an array."""
    value = _FNV_BASIS
    for byte in text.encode(_ENCODING, _ERRORS):
        value = ((value ^ byte) * _FNV_PRIME) & _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value
