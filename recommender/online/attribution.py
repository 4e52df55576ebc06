"""The attribution pass: new served lists and new events into the hourly aggregates
(``OnlineHourly``) and the per-user experiment counts (``ExperimentUserStat``).

Incremental and resumable: the ``AttributionCursor`` row says what is done (served lists
up to a creation time, events up to a primary key). Each batch updates the aggregates
and advances the cursor in one transaction under the cursor's row lock, so a pass that
dies loses nothing and counts nothing twice, and two passes never overlap. An event is
read once, by its key: an event replayed by its client is stored once at ingest (the
``(event_id, client)`` constraint) and so counted once.

Rows still being written are not read yet: a pass takes lists created, and events
ingested, at least ``SETTLE`` before ``now``. Within that time a serving process has
flushed the lists an event may point at (``RECSITE_SERVED_FLUSH_SECONDS``), and an
ingest transaction that took lower keys has committed; a row committed later than that
with a lower key than a row already read would be missed.

Counts go to the hour the list was shown (a click at 00:10 on a list of 23:55 counts for
23:00), so each hour's CTR is clicks on that hour's impressions. Which event types are
clicks and conversions is the list's recommender's setting (``click_event_types``,
``conversion_event_types``); other attributed events count in no rate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from recommender.models import Event, Recommender
from recommender.online.attribution_match import HourKey, events_match
from recommender.online.attribution_rules import EventFacts
from recommender.online.ids import recommendation_id_parse
from recommender.online.impressions import UserKey, lists_batch, lists_count
from recommender.online.metrics import EVENTS_ATTRIBUTED
from recommender.online.models import (
    AttributionCursor,
    Experiment,
    ExperimentUserStat,
    OnlineHourly,
)

SETTLE = timedelta(seconds=60)
CURSOR_NAME = "default"
LISTS_PER_BATCH = 20_000
EVENTS_PER_BATCH = 10_000

CLICKS, CONVERSIONS = 2, 3  # in the hourly counts [lists, impressions, clicks, conversions]
_COUNT_FIELDS = ("lists", "impressions", "clicks", "conversions")


@dataclass
class AttributionResult:
    lists: int = 0
    events: int = 0
    attributed: int = 0
    unattributed: int = 0
    unknown_ids: int = 0

    def summary(self) -> str:
        return (
            f"{self.lists} served lists and {self.events} events read: {self.attributed} "
            f"attributed, {self.unattributed} not, {self.unknown_ids} naming an unknown "
            "recommendation_id"
        )


def attribution_run(*, now: datetime) -> AttributionResult:
    """One pass: every settled list and event not read yet, batch by batch."""
    AttributionCursor.objects.get_or_create(name=CURSOR_NAME)
    result = AttributionResult()
    while _lists_batch(now=now, result=result):
        pass
    while _events_batch(now=now, result=result):
        pass
    return result


@transaction.atomic
def _lists_batch(*, now: datetime, result: AttributionResult) -> bool:
    """Count the impressions of the next settled lists; False when none was left."""
    cursor = AttributionCursor.objects.select_for_update().get(name=CURSOR_NAME)
    batch = lists_batch(after=cursor.lists_done_until, until=now - SETTLE, limit=LISTS_PER_BATCH)
    counted = lists_count(batch)
    if counted is None:
        return False
    _hourly_add(counted.hourly)
    _user_stats_add(counted.per_user)
    cursor.lists_done_until = counted.done_until
    cursor.save(update_fields=["lists_done_until", "updated_at"])
    result.lists += counted.lists
    return True


@transaction.atomic
def _events_batch(*, now: datetime, result: AttributionResult) -> bool:
    """Attribute the next settled events; False when none was left."""
    cursor = AttributionCursor.objects.select_for_update().get(name=CURSOR_NAME)
    rows = list(
        Event.objects.filter(pk__gt=cursor.last_event_id)
        .order_by("pk")
        .values(
            "pk",
            "user_external_id",
            "item__external_id",
            "event_type",
            "timestamp",
            "recommendation_id",
            "ingested_at",
        )[:EVENTS_PER_BATCH]
    )
    settled_until = now - SETTLE
    for index, row in enumerate(rows):
        if row["ingested_at"] > settled_until:
            rows = rows[:index]
            break
    if not rows:
        return False
    facts = [
        EventFacts(
            user_id=row["user_external_id"],
            item_id=row["item__external_id"],
            timestamp=row["timestamp"],
            recommendation_id=recommendation_id_parse(row["recommendation_id"]),
            names_a_list=bool(row["recommendation_id"]),
        )
        for row in rows
    ]
    window = timedelta(seconds=settings.RECSITE_ATTRIBUTION_WINDOW_SECONDS)
    skew = timedelta(seconds=settings.RECSITE_EVENT_FUTURE_TOLERANCE_SECONDS)
    matches = events_match(facts, window=window, skew=skew)
    kinds = _event_kinds({where[1] for where, _ in matches if where is not None})
    hourly: dict[HourKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_user: dict[UserKey, list[int]] = defaultdict(lambda: [0, 0, 0])
    attributed = unknown = 0
    for fact, row, (where, unknown_id) in zip(facts, rows, matches, strict=True):
        unknown += unknown_id
        if where is None:
            continue
        attributed += 1
        _, recommender_id, _, experiment_id, arm, _ = where
        clicks, conversions = kinds.get(recommender_id, ((), ()))
        counts = hourly[where]
        is_click, is_conversion = row["event_type"] in clicks, row["event_type"] in conversions
        counts[CLICKS] += is_click
        counts[CONVERSIONS] += is_conversion
        if experiment_id and (is_click or is_conversion):
            stat = per_user[(experiment_id, arm, fact.user_id)]
            stat[1] += is_click
            stat[2] += is_conversion
    _hourly_add({key: counts for key, counts in hourly.items() if any(counts)})
    _user_stats_add(per_user)
    cursor.last_event_id = rows[-1]["pk"]
    cursor.events_attributed += attributed
    cursor.events_unattributed += len(rows) - attributed
    cursor.unknown_ids += unknown
    cursor.save(
        update_fields=[
            "last_event_id",
            "events_attributed",
            "events_unattributed",
            "unknown_ids",
            "updated_at",
        ]
    )
    transaction.on_commit(lambda: _count(attributed, len(rows) - attributed))
    result.events += len(rows)
    result.attributed += attributed
    result.unattributed += len(rows) - attributed
    result.unknown_ids += unknown
    return True


def _count(attributed: int, unattributed: int) -> None:
    EVENTS_ATTRIBUTED.labels("attributed").inc(attributed)
    EVENTS_ATTRIBUTED.labels("unattributed").inc(unattributed)


def _event_kinds(recommender_ids: set[int]) -> dict[int, tuple[frozenset, frozenset]]:
    return {
        pk: (frozenset(clicks or ()), frozenset(conversions or ()))
        for pk, clicks, conversions in Recommender.objects.filter(
            pk__in=recommender_ids
        ).values_list("pk", "click_event_types", "conversion_event_types")
    }


def _hourly_add(deltas: Mapping[HourKey, list[int]]) -> None:
    """Add ``deltas`` to the hourly rows (created when missing). The caller holds the
    cursor lock, so no other writer changes these rows meanwhile."""
    if not deltas:
        return
    existing = {
        (
            row.hour,
            row.recommender_id,
            row.model_version,
            row.experiment_id,
            row.arm,
            row.position,
        ): row
        for row in OnlineHourly.objects.filter(
            recommender_id__in={key[1] for key in deltas}, hour__in={key[0] for key in deltas}
        )
    }
    changed, created = [], []
    for key, counts in deltas.items():
        row = existing.get(key)
        if row is None:
            hour, recommender_id, version, experiment_id, arm, position = key
            row = OnlineHourly(
                hour=hour,
                recommender_id=recommender_id,
                model_version=version,
                experiment_id=experiment_id,
                arm=arm,
                position=position,
            )
            created.append(row)
        else:
            changed.append(row)
        for name, value in zip(_COUNT_FIELDS, counts, strict=True):
            setattr(row, name, getattr(row, name) + value)
    OnlineHourly.objects.bulk_create(created, batch_size=1000)
    OnlineHourly.objects.bulk_update(changed, _COUNT_FIELDS, batch_size=1000)


def _user_stats_add(deltas: Mapping[UserKey, list[int]]) -> None:
    """Like ``_hourly_add``, per experiment, arm and user. A list naming an experiment
    that does not exist counts in the hourly rows only."""
    experiments = set(
        Experiment.objects.filter(pk__in={key[0] for key in deltas}).values_list("pk", flat=True)
    )
    deltas = {key: counts for key, counts in deltas.items() if key[0] in experiments}
    if not deltas:
        return
    existing = {
        (row.experiment_id, row.arm, row.user_external_id): row
        for row in _user_stats_of(deltas.keys())
    }
    changed, created = [], []
    for key, (impressions, clicks, conversions) in deltas.items():
        row = existing.get(key)
        if row is None:
            row = ExperimentUserStat(experiment_id=key[0], arm=key[1], user_external_id=key[2])
            created.append(row)
        else:
            changed.append(row)
        row.impressions += impressions
        row.clicks += clicks
        row.conversions += conversions
    ExperimentUserStat.objects.bulk_create(created, batch_size=1000)
    ExperimentUserStat.objects.bulk_update(
        changed, ["impressions", "clicks", "conversions"], batch_size=1000
    )


def _user_stats_of(keys: Iterable[UserKey]) -> list[ExperimentUserStat]:
    keys = list(keys)
    rows: list[ExperimentUserStat] = []
    for offset in range(0, len(keys), 1000):
        chunk = keys[offset : offset + 1000]
        rows.extend(
            ExperimentUserStat.objects.filter(
                experiment_id__in={key[0] for key in chunk},
                user_external_id__in={key[2] for key in chunk},
            )
        )
    return rows
