"""Datasets in: stream a MovieLens or CSV dataset through the ingest services.

Memory stays constant: the readers yield one line at a time and at most one batch is
held. Every batch is its own transaction (the ingest services'), so a failed import
keeps what earlier batches wrote; since event ids are deterministic and items are
upserts, running the import again is safe and completes it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from recommender.datasets import MAX_LINE_BYTES, Dataset, OnMalformed, Record, open_dataset
from recommender.exceptions import (
    DatasetImportFailed,
    DatasetLineInvalid,
    EventBatchInvalid,
    ItemBatchInvalid,
)
from recommender.ingest import MAX_ID_LENGTH
from recommender.models import OPERATOR_CLIENT
from recommender.services.ingest import (
    event_batch_ingest,
    item_batch_upsert,
    user_profiles_upsert,
)

# How many rejection reasons a summary keeps; the counts are always complete.
MAX_REJECTION_REASONS = 10

RowKind = Literal["events", "items", "users"]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each batch (bytes for files, events for demo)."""


@dataclass(slots=True)
class ImportSummary:
    source: str
    events_created: int = 0
    events_duplicate: int = 0
    events_rejected: int = 0
    items_created: int = 0
    items_updated: int = 0
    items_rejected: int = 0
    items_created_from_events: int = 0
    users: int = 0
    users_rejected: int = 0
    rejections: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def reject(self, kind: RowKind, where: str, reason: str) -> None:
        """Count one rejected row; keep the reason if it is among the first few."""
        attribute = f"{kind}_rejected"
        setattr(self, attribute, getattr(self, attribute) + 1)
        if len(self.rejections) < MAX_REJECTION_REASONS:
            self.rejections.append(f"{where}: {reason}")

    @property
    def events_read(self) -> int:
        """Every event row read ends up new, already stored or rejected."""
        return self.events_created + self.events_duplicate + self.events_rejected

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The summary as the management commands print it."""
        lines = [
            f"{self.source}: {self.events_read:,} event rows read in {self.seconds:.1f} s "
            f"({self.events_per_second:,.0f}/s)",
            f"  events: {self.events_created:,} new, {self.events_duplicate:,} already stored, "
            f"{self.events_rejected:,} rejected",
            f"  items:  {self.items_created:,} created, {self.items_updated:,} updated, "
            f"{self.items_rejected:,} rejected"
            + (
                f", {self.items_created_from_events:,} created bare from events"
                if self.items_created_from_events
                else ""
            ),
            f"  users:  {self.users:,} profiles written, {self.users_rejected:,} rejected",
        ]
        if self.rejections:
            rejected = self.events_rejected + self.items_rejected + self.users_rejected
            lines.append(f"  first rejections (of {rejected:,}):")
            lines.extend(f"    {reason}" for reason in self.rejections)
        return lines


def dataset_import(
    *,
    path: Path | str,
    format: str,
    items_path: Path | str | None = None,
    skip_invalid: bool = False,
    batch_size: int = 5000,
    max_line_bytes: int = MAX_LINE_BYTES,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a dataset: items first, then user profiles, then events, in batches.

    Raises ``DatasetSourceInvalid`` when the path or layout is unusable (nothing read)
    and ``DatasetImportFailed`` naming ``file:line`` at the first malformed line or
    invalid row unless ``skip_invalid``, which counts and skips them instead."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.monotonic()
    dataset = open_dataset(
        path, format=format, items_path=items_path, max_line_bytes=max_line_bytes
    )
    summary = ImportSummary(source=dataset.layout)
    total = dataset.total_bytes()

    def report() -> None:
        if progress:
            progress(dataset.bytes_read, total)

    try:
        _import_items(dataset, summary, skip_invalid, batch_size, report)
        _import_users(dataset, summary, skip_invalid, batch_size, report)
        _import_events(dataset, summary, skip_invalid, batch_size, report)
    except DatasetLineInvalid as error:
        raise DatasetImportFailed(
            f"{error.message}\nThe import stopped there. What earlier batches wrote stays "
            f"({summary.events_created:,} new events, {summary.items_created:,} new items); "
            "fix the line or skip invalid rows, then run the import again: it is idempotent, "
            "so nothing already stored is duplicated.",
            file=error.file,
            line=error.line,
            reason=error.reason,
            events_created=summary.events_created,
        ) from error
    summary.seconds = time.monotonic() - started
    return summary


def batched(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def _skipper(summary: ImportSummary, kind: RowKind, skip_invalid: bool) -> OnMalformed | None:
    """``None`` (the reader raises) unless skipping, then a callback counting the line."""
    if not skip_invalid:
        return None

    def skip(error: DatasetLineInvalid) -> None:
        summary.reject(kind, f"{error.file}:{error.line}", error.reason)

    return skip


def _reasons_by_index(errors: list[dict[str, Any]]) -> dict[int, str]:
    reasons: dict[int, list[str]] = {}
    for error in errors:
        text = f"{error['field']} {error['message']}" if error["field"] else error["message"]
        reasons.setdefault(error["index"], []).append(text)
    return {index: "; ".join(texts) for index, texts in reasons.items()}


def _first_invalid(records: list[Record], errors: list[dict[str, Any]]) -> DatasetLineInvalid:
    reasons = _reasons_by_index(errors)
    index = min(reasons)
    more = len(reasons) - 1
    record = records[index]
    return DatasetLineInvalid(
        file=record.file,
        line=record.line,
        reason=reasons[index] + (f" (and {more} more invalid rows in this batch)" if more else ""),
    )


def _import_items(
    dataset: Dataset,
    summary: ImportSummary,
    skip_invalid: bool,
    batch_size: int,
    report: Callable[[], None],
) -> None:
    for batch in batched(dataset.items(_skipper(summary, "items", skip_invalid)), batch_size):
        try:
            result = item_batch_upsert(raw_items=[record.data for record in batch])
        except ItemBatchInvalid as invalid:
            errors = invalid.detail["errors"]
            if not skip_invalid:
                raise _first_invalid(batch, errors) from invalid
            reasons = _reasons_by_index(errors)
            for index, reason in sorted(reasons.items()):
                summary.reject("items", batch[index].where, reason)
            valid = [record.data for index, record in enumerate(batch) if index not in reasons]
            # item_batch_upsert is all or nothing; without the invalid rows it goes through.
            result = item_batch_upsert(raw_items=valid)
        summary.items_created += result.created
        summary.items_updated += result.updated
        report()


def _import_users(
    dataset: Dataset,
    summary: ImportSummary,
    skip_invalid: bool,
    batch_size: int,
    report: Callable[[], None],
) -> None:
    for batch in batched(dataset.users(_skipper(summary, "users", skip_invalid)), batch_size):
        profiles: list[tuple[str, list[str]]] = []
        for record in batch:
            user_id = record.data["user_id"]
            if not user_id or len(user_id) > MAX_ID_LENGTH:
                invalid = DatasetLineInvalid(
                    file=record.file,
                    line=record.line,
                    reason=f"user_id must be 1 to {MAX_ID_LENGTH} characters",
                )
                if not skip_invalid:
                    raise invalid
                summary.reject("users", record.where, invalid.reason)
                continue
            profiles.append((user_id, record.data["features"]))
        summary.users += user_profiles_upsert(profiles=profiles)
        report()


def _import_events(
    dataset: Dataset,
    summary: ImportSummary,
    skip_invalid: bool,
    batch_size: int,
    report: Callable[[], None],
) -> None:
    records = dataset.events(_skipper(summary, "events", skip_invalid))
    for batch in batched(records, batch_size):
        try:
            result = event_batch_ingest(
                raw_events=[record.data for record in batch],
                client=OPERATOR_CLIENT,
                skip_invalid=skip_invalid,
            )
        except EventBatchInvalid as invalid:
            raise _first_invalid(batch, invalid.detail["errors"]) from invalid
        summary.events_created += result.created
        summary.events_duplicate += result.duplicates
        summary.items_created_from_events += result.items_created
        for index, reason in sorted(_reasons_by_index(result.errors).items()):
            summary.reject("events", batch[index].where, reason)
        report()
