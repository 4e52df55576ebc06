"""Batch recommendations: every user's top N from one version, as JSON lines or CSV,
with the API's filtering and fallbacks because every line is ``ServingState.rank`` of a
state built as the registry builds it (the model and the catalogue: inactive and deleted
items blocked, new items scored through their categories; unknown and erased users, or no
model at all, ranked by popularity) and the user's recent events as ``seen``.

Streaming: users are read in chunks (keyset pages of the users with events, or the lines
of a file), each chunk's seen items with one query, and at most ``2 × workers`` chunks
are in flight, so memory stays flat whatever the number of users. With ``workers > 1`` a
fork pool ranks the chunks (the state is inherited, its arrays memory-mapped and shared);
the parent alone talks to the database and writes, in the users' order.

Users in a running experiment get the exported version's list, not their arm's."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import TextIO

import numpy as np
from django.conf import settings
from threadpoolctl import threadpool_limits

from recommender.exceptions import NoModel
from recommender.models import ModelVersion, Recommender
from recommender.selectors import (
    active_version_get,
    model_version_get,
    users_erased_since,
    users_recent_item_pks,
    users_with_events_count,
    users_with_events_page,
)
from recommender.serving.catalog import Catalog, catalog_stamp
from recommender.serving.fallback import popularity_state_build
from recommender.serving.model import LoadedModel, versions_get
from recommender.serving.state import ServingState, model_state_build


class ExportFormat:
    JSONL = "jsonl"
    CSV = "csv"
    CHOICES = (JSONL, CSV)


CHUNK_USERS = 1000
# Scores are written as the API writes them.
SCORE_DECIMALS = 6

ProgressCallback = Callable[[int, int | None], None]  # (users done, users in all or None)


@dataclass(frozen=True)
class ExportResult:
    users: int
    fallback_users: int  # lines ranked by popularity (unknown users, or no model)
    model_version: int | None


def export_state_build(*, recommender: Recommender, number: int | None) -> ServingState:
    """The state the API would serve for ``recommender`` with version ``number`` (None:
    the active one) active: ``ModelVersionNotFound`` for an unknown number, ``NoModel``
    with no version and no events, ``ArtifactError`` when the artifact cannot load."""
    version: ModelVersion | None = (
        active_version_get(recommender=recommender)
        if number is None
        else model_version_get(recommender=recommender, number=number)
    )
    stamp = catalog_stamp()
    if version is None:
        state = popularity_state_build(recommender.name, stamp)
        if state is None:
            raise NoModel(
                f"Recommender {recommender.name!r} has no active version and there are no "
                "events yet to rank by popularity.",
                recommender=recommender.name,
            )
        return state
    loaded = versions_get({version.pk}, {recommender.pk: recommender.name})[version.pk]
    state = model_state_build(LoadedModel.load(loaded), Catalog.read(stamp))
    return replace(state, forgotten_users=users_erased_since(since=loaded.data_read_at))


def user_chunks(*, users: Iterable[str] | None, size: int = CHUNK_USERS) -> Iterator[list[str]]:
    """``users`` (stripped, blank lines skipped) in chunks; without them every user with
    events, by id, one keyset page per chunk."""
    if users is None:
        after = None
        while page := users_with_events_page(after=after, limit=size):
            yield page
            after = page[-1]
        return
    chunk: list[str] = []
    for raw in users:
        user_id = raw.strip()
        if user_id:
            chunk.append(user_id)
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def users_total(users: Iterable[str] | None) -> int:
    """How many users an export of ``users`` writes (for the progress bar)."""
    if users is None:
        return users_with_events_count()
    return sum(1 for raw in users if raw.strip())


def header(fmt: str, limit: int) -> str:
    """What the file starts with: the CSV header row, nothing for JSON lines."""
    if fmt != ExportFormat.CSV:
        return ""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(
        ["user_id", "model_version", "fallback", *(f"item_{n}" for n in range(1, limit + 1))]
    )
    return out.getvalue()


# The state the pool's processes rank with: set before they fork, inherited.
_state: ServingState | None = None


def _rank_chunk(
    state: ServingState, fmt: str, limit: int, chunk: list[tuple[str, list[int]]]
) -> tuple[str, int]:
    """The chunk's lines and how many of them fell back to popularity."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n") if fmt == ExportFormat.CSV else None
    version = state.version_number
    fallbacks = 0
    for user_id, seen in chunk:
        ranking = state.rank(
            user_id=user_id, seen=seen, exclude=[], category=None, offset=0, limit=limit
        )
        fallbacks += ranking.fallback is not None
        if writer is not None:
            version_cell = "" if version is None else version
            writer.writerow([user_id, version_cell, ranking.fallback or "", *ranking.ids])
            continue
        scores = np.round(ranking.page.scores.astype(np.float64), SCORE_DECIMALS).tolist()
        line = {
            "user_id": user_id,
            "model_version": version,
            "fallback": ranking.fallback,
            "items": [
                {"item_id": item_id, "score": score}
                for item_id, score in zip(ranking.ids, scores, strict=True)
            ],
        }
        out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
    return out.getvalue(), fallbacks


def _rank_inherited(fmt: str, limit: int, chunk: list[tuple[str, list[int]]]) -> tuple[str, int]:
    assert _state is not None  # set by recommendations_export before the fork
    return _rank_chunk(_state, fmt, limit, chunk)


def recommendations_export(
    *,
    state: ServingState,
    out: TextIO,
    fmt: str,
    limit: int,
    users_path: Path | None = None,
    workers: int = 1,
    on_progress: ProgressCallback | None = None,
) -> ExportResult:
    """Write one line per user of the file ``users_path`` (None: every user with events)
    to ``out``. ``workers > 1`` ranks in a fork pool of that many processes; the output
    is in the users' order either way."""
    if fmt not in ExportFormat.CHOICES:
        raise ValueError(f"unknown export format {fmt!r}")
    users = None if users_path is None else users_file_lines(users_path)
    total = users_total(None if users_path is None else users_file_lines(users_path))
    seen_max = settings.RECSITE_SEEN_EVENTS_MAX
    out.write(header(fmt, limit))
    done = fallbacks = 0

    def write(lines: str, chunk_fallbacks: int, n: int) -> None:
        nonlocal done, fallbacks
        out.write(lines)
        done += n
        fallbacks += chunk_fallbacks
        if on_progress is not None:
            on_progress(done, total)

    def chunks() -> Iterator[list[tuple[str, list[int]]]]:
        for user_ids in user_chunks(users=users):
            seen = users_recent_item_pks(user_ids=user_ids, limit=seen_max)
            yield [(user_id, seen.get(user_id, [])) for user_id in user_ids]

    # One BLAS thread (inherited by the pool): the processes are the parallelism, and
    # BLAS threads spinning beside them made scoring ~20x slower on a busy 2-core host.
    with threadpool_limits(limits=1, user_api="blas"):
        _rank_all(state, fmt, limit, chunks(), workers, write)
    return ExportResult(users=done, fallback_users=fallbacks, model_version=state.version_number)


def _rank_all(
    state: ServingState,
    fmt: str,
    limit: int,
    chunks: Iterator[list[tuple[str, list[int]]]],
    workers: int,
    write: Callable[[str, int, int], None],
) -> None:
    """Rank the chunks here or in a fork pool, writing them in order; at most
    ``2 × workers`` chunks are in flight."""
    if workers <= 1:
        for chunk in chunks:
            write(*_rank_chunk(state, fmt, limit, chunk), len(chunk))
    else:
        global _state
        _state = state
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                pending: deque[tuple[AsyncResult, int]] = deque()
                for chunk in chunks:
                    pending.append(
                        (pool.apply_async(_rank_inherited, (fmt, limit, chunk)), len(chunk))
                    )
                    if len(pending) >= 2 * workers:
                        result, n = pending.popleft()
                        write(*result.get(), n)
                while pending:
                    result, n = pending.popleft()
                    write(*result.get(), n)
        finally:
            _state = None


def users_file_lines(path: Path) -> Iterator[str]:
    """The lines of a ``--users`` file, read as they are needed."""
    with path.open(encoding="utf-8") as lines:
        yield from lines


def recommendations_export_file(
    *,
    state: ServingState,
    path: Path,
    fmt: str,
    limit: int,
    users_path: Path | None = None,
    workers: int = 1,
    on_progress: ProgressCallback | None = None,
) -> ExportResult:
    """``recommendations_export`` into ``path``, written beside it first and renamed when
    complete: a reader never sees half a file, and a failure leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            result = recommendations_export(
                state=state,
                out=out,
                fmt=fmt,
                limit=limit,
                users_path=users_path,
                workers=workers,
                on_progress=on_progress,
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return result
