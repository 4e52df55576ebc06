"""Matching a batch of events to the served lists they are attributed to, by the rules of
``attribution_rules``; two implementations of the same rules:

- ``events_match_sql`` (PostgreSQL): one statement for the whole batch. The events go
  in as arrays (``unnest``); per event, the named list is joined by its key and the
  latest list of that user in the window that holds the item is found by a backward
  scan of the (user, time) index filtered by ``item_ids ? item`` (``LIMIT 1``); the
  item's position is computed in the database for those lists only. Python gets one
  row per event, already reduced to where it counts (``HourKey``): no list's items are
  decoded, no row of a non-matching list read.
- ``events_match_python`` (any database, SQLite in development): reads every list of the
  batch's users in the batch's time span and applies ``attribute`` in memory.

Both give the same answers (``tests/recommender/online/test_attribution_match.py``
compares them on random data with ties, duplicates and window edges). Recommendation
ids are parsed in Python for both (``recommendation_id_parse``), so what counts as a
malformed id does not depend on the database."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Q

from recommender.online.attribution_rules import (
    EventFacts,
    ShownList,
    attribute,
    user_lists_index,
)
from recommender.online.models import ServedList

# Where an impression or an attributed event counts:
# (hour, recommender_id, model_version, experiment_id, arm, position).
HourKey = tuple[datetime, int, int, int, str, int]
# Per event: where it counts (None: attributed to no list), and whether it named a
# recommendation id that matches no list.
Credit = tuple[HourKey | None, bool]

LIST_FIELDS = (
    "id",
    "user_external_id",
    "created_at",
    "item_ids",
    "first_position",
    "recommender_id",
    "model_version",
    "experiment_id",
    "arm",
)


def shown_list(row: Mapping) -> ShownList:
    """A ``ServedList`` row (``values(*LIST_FIELDS)``) for the rules and the aggregates."""
    return ShownList(
        id=row["id"],
        user_id=row["user_external_id"],
        created_at=row["created_at"],
        item_ids=row["item_ids"],
        first_position=row["first_position"],
        recommender_id=row["recommender_id"],
        model_version=row["model_version"] or 0,
        experiment_id=row["experiment_id"] or 0,
        arm=row["arm"],
    )


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@functools.lru_cache(maxsize=4096)
def hour_from_epoch(hours: int) -> datetime:
    """The UTC hour ``hours`` hours after the epoch (what the SQL statements return)."""
    return datetime.fromtimestamp(hours * 3600, UTC)


def hour_key(shown: ShownList, position: int) -> HourKey:
    return (
        hour_of(shown.created_at),
        shown.recommender_id,
        shown.model_version,
        shown.experiment_id,
        shown.arm,
        position,
    )


def events_match(
    facts: Sequence[EventFacts], *, window: timedelta, skew: timedelta
) -> list[Credit]:
    """Per event of ``facts``, in order: where it counts (the list it is attributed to,
    the item's position in it) and whether it named an unknown id."""
    if not facts:
        return []
    if connection.vendor == "postgresql":
        return events_match_sql(facts, window=window, skew=skew)
    return events_match_python(facts, window=window, skew=skew)


# -- PostgreSQL: one statement per batch -------------------------------------------------

# The 1-based ordinal of the event's item in a list's items (jsonb equality: a string).
_ORDINAL = """(SELECT min(t.ord) FROM jsonb_array_elements({list}.item_ids)
                  WITH ORDINALITY AS t(item, ord) WHERE t.item = to_jsonb(ev.item_id))"""

_COLUMNS = ("recommender_id", "model_version", "experiment_id", "arm")

# Rule 1 (``nm``): the named list, if it fits; rule 2 (``l``) only for events rule 1 did
# not place (its condition on ``nm`` is a one-time filter: no index scan otherwise).
_MATCH_SQL = f"""
WITH ev AS (
    SELECT * FROM unnest(%(users)s::text[], %(items)s::text[], %(times)s::timestamptz[],
                         %(named)s::uuid[]) WITH ORDINALITY
        AS ev(user_id, item_id, at, named_id, idx)
)
SELECT n.id IS NOT NULL,
       coalesce(nm.position, l.first_position - 1 + {_ORDINAL.format(list="l")}),
       {", ".join(f"CASE WHEN nm.position IS NULL THEN l.{c} ELSE n.{c} END" for c in _COLUMNS)},
       floor(extract(epoch FROM CASE WHEN nm.position IS NULL THEN l.created_at
                                     ELSE n.created_at END) / 3600)::bigint
FROM ev
LEFT JOIN recommender_servedlist n ON n.id = ev.named_id
LEFT JOIN LATERAL (
    SELECT n.first_position - 1 + {_ORDINAL.format(list="n")} AS position
    WHERE n.user_external_id IN ('', ev.user_id)
      AND n.created_at >= ev.at - %(window)s AND n.created_at <= ev.at + %(skew)s
) nm ON true
LEFT JOIN LATERAL (
    SELECT s.item_ids, s.first_position, s.created_at, {", ".join(f"s.{c}" for c in _COLUMNS)}
    FROM recommender_servedlist s
    WHERE nm.position IS NULL
      AND s.user_external_id = ev.user_id
      AND s.created_at <= ev.at AND s.created_at >= ev.at - %(window)s
      AND s.item_ids ? ev.item_id
    ORDER BY s.created_at DESC, s.id DESC
    LIMIT 1
) l ON true
ORDER BY ev.idx
"""


def events_match_sql(
    facts: Sequence[EventFacts], *, window: timedelta, skew: timedelta
) -> list[Credit]:
    params = {
        "users": [fact.user_id for fact in facts],
        "items": [fact.item_id for fact in facts],
        "times": [fact.timestamp for fact in facts],
        "named": [str(fact.recommendation_id or "") or None for fact in facts],
        "window": window,
        "skew": skew,
    }
    with connection.cursor() as cursor:
        # JIT compiling costs more than this statement's per-row work saves.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(_MATCH_SQL, params)
        rows = cursor.fetchall()
    credits: list[Credit] = []
    for fact, row in zip(facts, rows, strict=True):
        named_found, position, recommender_id, version, experiment_id, arm, hour = row
        unknown = fact.names_a_list and not named_found
        if position is None:
            credits.append((None, unknown))
            continue
        where = (
            hour_from_epoch(hour),
            recommender_id,
            version or 0,
            experiment_id or 0,
            arm,
            position,
        )
        credits.append((where, unknown))
    return credits


# -- Any database: the rules in memory ---------------------------------------------------


def events_match_python(
    facts: Sequence[EventFacts], *, window: timedelta, skew: timedelta
) -> list[Credit]:
    named = _named_lists({fact.recommendation_id for fact in facts} - {None})
    by_user = user_lists_index(_user_lists(facts, window))
    credits: list[Credit] = []
    for fact in facts:
        found = attribute(
            fact,
            named=named.get(fact.recommendation_id) if fact.recommendation_id else None,
            user_lists=by_user.get(fact.user_id),
            window=window,
            skew=skew,
        )
        where = hour_key(found.list, found.position) if found.list is not None else None
        credits.append((where, found.unknown_id))
    return credits


def _named_lists(ids: set[uuid.UUID]) -> dict[uuid.UUID, ShownList]:
    if not ids:
        return {}
    return {
        row["id"]: shown_list(row)
        for row in ServedList.objects.filter(pk__in=ids).values(*LIST_FIELDS)
    }


def _user_lists(facts: Sequence[EventFacts], window: timedelta) -> list[ShownList]:
    """The lists of the batch's users that any of their events could be attributed to."""
    users = sorted({fact.user_id for fact in facts})
    # One range per user would make the query as long as the batch; one range for all
    # users reads a few more rows instead.
    start = min(fact.timestamp for fact in facts) - window
    end = max(fact.timestamp for fact in facts)
    lists: list[ShownList] = []
    for offset in range(0, len(users), 1000):
        rows = ServedList.objects.filter(
            Q(user_external_id__in=users[offset : offset + 1000]),
            created_at__gte=start,
            created_at__lte=end,
        ).values(*LIST_FIELDS)
        lists.extend(shown_list(row) for row in rows)
    return lists
