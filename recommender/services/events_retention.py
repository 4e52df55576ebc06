"""Event retention: the events table stays bounded.

The rule (``event_retention_plan``), decided afresh at every pass:

- ``RECSITE_EVENT_RETENTION_DAYS`` unset: nothing is deleted (the default).
- Never an event a recommender's training still reads: the cutoff is ``now`` minus the
  longest of the retention and every recommender's ``window_days``. A recommender with
  no window trains on all history and so blocks deletion, unless
  ``RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY`` is true (it then trains on what
  retention keeps).
- Never an event the attribution pass has not read: only keys up to the
  ``AttributionCursor``'s ``last_event_id`` go (the pass reads keys above it, so rows
  below it can disappear without it skipping or failing). No cursor yet: nothing goes.

``events_prune`` deletes in batches of ``batch_size`` keys, each batch one short
transaction (row locks on those rows only, so ingest keeps inserting): the keys are read
in timestamp order through the timestamp index, each batch starting where the last one
stopped, then deleted by key. The pass's audit row (a ``DataErasure`` of kind
``expired``) is created by the first batch that deletes and updated by every later one,
in the batch's own transaction: it always says exactly what is gone. A pass that stops
half-way (a crash, ``max_batches``) leaves the rest to the next one: the rule is
stateless, so a pass resumes by running again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from recommender.metrics import EVENT_RETENTION_PASSES, EVENTS_EXPIRED
from recommender.models import DataErasure, ErasureKind, Event, Recommender
from recommender.online.attribution import CURSOR_NAME
from recommender.online.models import AttributionCursor

DELETE_BATCH = 10_000


class RetentionOutcome:
    OFF = "off"  # RECSITE_EVENT_RETENTION_DAYS unset
    BLOCKED = "blocked"  # a recommender on all history, or no attribution cursor yet
    NOTHING = "nothing"  # nothing old enough
    DELETED = "deleted"
    DRY_RUN = "dry_run"


@dataclass(frozen=True)
class RetentionPlan:
    """What a pass may delete: events before ``cutoff`` with keys up to
    ``up_to_event_id``; ``cutoff`` is None when nothing may go (``why`` says why)."""

    cutoff: datetime | None
    up_to_event_id: int
    retention_days: int | None
    longest_window_days: int | None
    why: str


@dataclass
class RetentionResult:
    plan: RetentionPlan
    outcome: str
    deleted: int = 0
    batches: int = 0
    erasure_id: int | None = None
    complete: bool = True  # False: stopped at max_batches with old events left

    def summary(self) -> str:
        if self.plan.cutoff is None:
            return f"event retention: nothing deleted ({self.plan.why})"
        head = f"event retention: {self.plan.why}"
        if self.outcome == RetentionOutcome.DRY_RUN:
            return f"{head}; dry run: {self.deleted:,} events would be deleted"
        tail = "" if self.complete else " (stopped at the batch limit; the next pass goes on)"
        return f"{head}; {self.deleted:,} events deleted in {self.batches} batches{tail}"


def event_retention_plan(*, now: datetime) -> RetentionPlan:
    """The cutoff and key bound for a pass at ``now`` (see the module's docstring)."""
    days = settings.RECSITE_EVENT_RETENTION_DAYS
    if days is None:
        return RetentionPlan(None, 0, None, None, "RECSITE_EVENT_RETENTION_DAYS is unset")
    windows = dict(Recommender.objects.values_list("name", "window_days"))
    all_history = sorted(name for name, window in windows.items() if window is None)
    if all_history and not settings.RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY:
        return RetentionPlan(
            None,
            0,
            days,
            None,
            f"recommender(s) {', '.join(all_history)} train on all history (no window_days); "
            "set their window or RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY=true",
        )
    longest_window = max((w for w in windows.values() if w is not None), default=None)
    kept_days = max(days, longest_window or 0)
    up_to = (
        AttributionCursor.objects.filter(name=CURSOR_NAME)
        .values_list("last_event_id", flat=True)
        .first()
    )
    if not up_to:
        return RetentionPlan(
            None, 0, days, longest_window, "the attribution pass has not read any event yet"
        )
    cutoff = now - timedelta(days=kept_days)
    return RetentionPlan(
        cutoff,
        up_to,
        days,
        longest_window,
        f"events before {cutoff.isoformat()} ({kept_days} days: retention {days}, longest "
        f"training window {longest_window or '-'}) up to key {up_to} (attribution cursor)",
    )


def _expired(plan: RetentionPlan):
    return Event.objects.filter(timestamp__lt=plan.cutoff, pk__lte=plan.up_to_event_id)


def events_prune(
    *,
    now: datetime,
    dry_run: bool = False,
    batch_size: int = DELETE_BATCH,
    max_batches: int | None = None,
    actor_label: str = "beat",
) -> RetentionResult:
    """One retention pass at ``now``: delete the expired events batch by batch (or, with
    ``dry_run``, count them). Never fails for a blocked rule: the result says why."""
    plan = event_retention_plan(now=now)
    if plan.cutoff is None:
        outcome = RetentionOutcome.OFF if plan.retention_days is None else RetentionOutcome.BLOCKED
        EVENT_RETENTION_PASSES.labels(outcome).inc()
        return RetentionResult(plan=plan, outcome=outcome)
    if dry_run:
        return RetentionResult(
            plan=plan, outcome=RetentionOutcome.DRY_RUN, deleted=_expired(plan).count()
        )
    result = RetentionResult(plan=plan, outcome=RetentionOutcome.NOTHING)
    resume_at: datetime | None = None
    while max_batches is None or result.batches < max_batches:
        resume_at = _batch_delete(
            plan=plan, result=result, batch_size=batch_size, after=resume_at, actor=actor_label
        )
        if resume_at is None:
            break
    else:
        result.complete = not _expired(plan).exists()
    if result.deleted:
        result.outcome = RetentionOutcome.DELETED
    EVENT_RETENTION_PASSES.labels(result.outcome).inc()
    return result


@transaction.atomic
def _batch_delete(
    *,
    plan: RetentionPlan,
    result: RetentionResult,
    batch_size: int,
    after: datetime | None,
    actor: str,
) -> datetime | None:
    """Delete up to ``batch_size`` expired events, oldest first from ``after``, and
    account for them in the pass's audit row, in one transaction. Returns where the next
    batch starts (None: none is left).

    The keys are read first, in timestamp order from where the last batch stopped (an
    index range that never walks again over the rows deleted before), then deleted by
    key (``id = ANY(...)``: index lookups). A single ``DELETE ... WHERE id IN (SELECT
    ... LIMIT n)`` lets PostgreSQL hash-join the whole table on every batch."""
    expired = _expired(plan)
    if after is not None:
        expired = expired.filter(timestamp__gte=after)
    keys = list(expired.order_by("timestamp").values_list("pk", "timestamp")[:batch_size])
    if not keys:
        return None
    deleted = _delete_keys([pk for pk, _ in keys])
    result.batches += 1
    result.deleted += deleted
    if result.erasure_id is None:
        result.erasure_id = DataErasure.objects.create(
            kind=ErasureKind.EXPIRED,
            events_deleted=deleted,
            actor_label=actor,
            reason=f"event retention: {plan.why}",
            detail={
                "cutoff": plan.cutoff.isoformat(),
                "up_to_event_id": plan.up_to_event_id,
                "retention_days": plan.retention_days,
                "longest_window_days": plan.longest_window_days,
            },
        ).pk
    else:
        DataErasure.objects.filter(pk=result.erasure_id).update(
            events_deleted=F("events_deleted") + deleted
        )
    transaction.on_commit(lambda: EVENTS_EXPIRED.inc(deleted))
    return keys[-1][1] if len(keys) == batch_size else None


def _delete_keys(keys: list[int]) -> int:
    """On PostgreSQL one array parameter (Django would compile 10,000 placeholders, a
    third of the batch's time); elsewhere the ORM's ``IN``."""
    if connection.vendor != "postgresql":
        return Event.objects.filter(pk__in=keys).delete()[0]
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE id = ANY(%s)", [keys])
        return cursor.rowcount
