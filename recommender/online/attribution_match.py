"""Matching a batch of events to the served lists they are attributed to, by the rules of
``attribution_rules``; two implementations of the same rules:

- ``events_match_sql`` (PostgreSQL): one statement for the whole batch. The events go
  in as arrays (``unnest``); per event, the named list is joined by its key and the
  latest list of that user in the window that holds the item is found by a backward
  scan of the (user, time) index filtered by ``item_ids ? item`` (``LIMIT 1``); the
  item's position is computed in the database for those lists only. Python sees one
  row per event: no list's items are decoded, no row of a non-matching list read.
- ``events_match_python`` (any database, SQLite in development): reads every list of the
  batch's users in the batch's time span and applies ``attribute`` in memory.

Both give the same answers (``tests/recommender/online/test_attribution_match.py``
compares them on random data with ties, duplicates and window edges). Recommendation
ids are parsed in Python for both (``recommendation_id_parse``), so what counts as a
malformed id does not depend on the database."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta

from django.db import connection
from django.db.models import Q

from recommender.online.attribution_rules import (
    Attribution,
    EventFacts,
    ShownList,
    attribute,
    user_lists_index,
)
from recommender.online.models import ServedList

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


def events_match(
    facts: Sequence[EventFacts], *, window: timedelta, skew: timedelta
) -> list[Attribution]:
    """Per event of ``facts``, in order, the list it is attributed to (if any), the
    item's position in it and whether it named an unknown id."""
    if not facts:
        return []
    if connection.vendor == "postgresql":
        return events_match_sql(facts, window=window, skew=skew)
    return events_match_python(facts, window=window, skew=skew)


# -- PostgreSQL: one statement per batch -------------------------------------------------

_POSITION = """(SELECT min(t.ord) FROM jsonb_array_elements_text({list}.item_ids)
                   WITH ORDINALITY AS t(item, ord) WHERE t.item = ev.item_id)"""

_MATCH_SQL = f"""
WITH ev AS (
    SELECT * FROM unnest(%(users)s::text[], %(items)s::text[], %(times)s::timestamptz[],
                         %(named)s::uuid[]) WITH ORDINALITY
        AS ev(user_id, item_id, at, named_id, idx)
)
SELECT ev.idx,
       n.id IS NOT NULL,
       CASE WHEN n.user_external_id IN ('', ev.user_id)
             AND n.created_at >= ev.at - %(window)s AND n.created_at <= ev.at + %(skew)s
            THEN n.first_position - 1 + {_POSITION.format(list="n")} END,
       n.created_at, n.recommender_id, n.model_version, n.experiment_id, n.arm,
       l.id, l.first_position - 1 + {_POSITION.format(list="l")},
       l.created_at, l.recommender_id, l.model_version, l.experiment_id, l.arm
FROM ev
LEFT JOIN recommender_servedlist n ON n.id = ev.named_id
LEFT JOIN LATERAL (
    SELECT s.id, s.item_ids, s.first_position, s.created_at, s.recommender_id,
           s.model_version, s.experiment_id, s.arm
    FROM recommender_servedlist s
    WHERE s.user_external_id = ev.user_id
      AND s.created_at <= ev.at AND s.created_at >= ev.at - %(window)s
      AND s.item_ids ? ev.item_id
    ORDER BY s.created_at DESC, s.id DESC
    LIMIT 1
) l ON true
ORDER BY ev.idx
"""


def _found(list_id: uuid.UUID, user_id: str, values: Sequence) -> ShownList:
    """The matched list as far as the aggregates need it (its items are not read)."""
    created_at, recommender_id, model_version, experiment_id, arm = values
    return ShownList(
        id=list_id,
        user_id=user_id,
        created_at=created_at,
        item_ids=(),
        recommender_id=recommender_id,
        model_version=model_version or 0,
        experiment_id=experiment_id or 0,
        arm=arm,
    )


def events_match_sql(
    facts: Sequence[EventFacts], *, window: timedelta, skew: timedelta
) -> list[Attribution]:
    params = {
        "users": [fact.user_id for fact in facts],
        "items": [fact.item_id for fact in facts],
        "times": [fact.timestamp for fact in facts],
        "named": [
            str(fact.recommendation_id) if fact.recommendation_id else None for fact in facts
        ],
        "window": window,
        "skew": skew,
    }
    with connection.cursor() as cursor:
        cursor.execute(_MATCH_SQL, params)
        rows = cursor.fetchall()
    results = []
    for fact, row in zip(facts, rows, strict=True):
        named_found, named_position = row[1], row[2]
        unknown = fact.names_a_list and not named_found
        if named_position is not None:
            shown = _found(fact.recommendation_id, fact.user_id, row[3:8])
            results.append(Attribution(shown, named_position, unknown_id=False))
        elif row[8] is not None:
            shown = _found(row[8], fact.user_id, row[10:15])
            results.append(Attribution(shown, row[9], unknown_id=unknown))
        else:
            results.append(Attribution(None, None, unknown_id=unknown))
    return results


# -- Any database: the rules in memory ---------------------------------------------------


def events_match_python(
    facts: Sequence[EventFacts], *, window: timedelta, skew: timedelta
) -> list[Attribution]:
    named = _named_lists({fact.recommendation_id for fact in facts} - {None})
    by_user = user_lists_index(_user_lists(facts, window))
    return [
        attribute(
            fact,
            named=named.get(fact.recommendation_id) if fact.recommendation_id else None,
            user_lists=by_user.get(fact.user_id),
            window=window,
            skew=skew,
        )
        for fact in facts
    ]


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
