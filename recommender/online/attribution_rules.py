"""Which served list an event is attributed to: the rules, on data in memory (plain
Python, no Django), so each case is a unit test.

An event (user, item, time, optional recommendation id) is attributed to:

1. the list its ``recommendation_id`` names, when that list is real and fits: it showed
   the event's item, it was shown to the event's user (or to no user: similar items),
   and the event lies within the window after it (an event up to ``skew`` before the
   list counts too: the event's time is the client's clock);
2. otherwise the list that showed that item to that user most recently at or before the
   event, at most ``window`` before it (both edges included);
3. otherwise none (an event before any list, a list too old, an item never shown).

The position is the item's position in that list. A recommendation id that matches no
stored list is reported as unknown (and rule 2 still applies)."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class ShownList:
    id: uuid.UUID
    user_id: str
    created_at: datetime
    item_ids: Sequence[str]
    first_position: int = 1
    # Where it counts (carried for the aggregates; the rules do not read them).
    recommender_id: int = 0
    model_version: int = 0  # 0: the popularity fallback
    experiment_id: int = 0  # 0: no experiment
    arm: str = ""
    _positions: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def position_of(self, item_id: str) -> int | None:
        if not self._positions and self.item_ids:
            self._positions.update(
                (item, self.first_position + index)
                for index, item in reversed(list(enumerate(self.item_ids)))
            )
        return self._positions.get(item_id)


@dataclass(frozen=True, slots=True)
class EventFacts:
    user_id: str
    item_id: str
    timestamp: datetime
    recommendation_id: uuid.UUID | None  # None: none sent, or not a UUID
    names_a_list: bool = False  # the event sent a recommendation_id (UUID or not)


@dataclass(frozen=True, slots=True)
class Attribution:
    list: ShownList | None
    position: int | None
    unknown_id: bool  # the event named a list that does not exist


class UserLists:
    """One user's lists sorted by time, for "the latest list at or before t"."""

    def __init__(self, lists: Sequence[ShownList]) -> None:
        self.lists = sorted(lists, key=lambda shown: (shown.created_at, shown.id))
        self._times = [shown.created_at for shown in self.lists]

    def latest_showing(
        self, item_id: str, at: datetime, window: timedelta
    ) -> tuple[ShownList, int] | None:
        end = bisect.bisect_right(self._times, at)
        for index in range(end - 1, -1, -1):
            shown = self.lists[index]
            if at - shown.created_at > window:
                return None
            position = shown.position_of(item_id)
            if position is not None:
                return shown, position
        return None


def attribute(
    event: EventFacts,
    *,
    named: ShownList | None,
    user_lists: UserLists | None,
    window: timedelta,
    skew: timedelta,
) -> Attribution:
    """``named``: the stored list the event's id names (None when it names none or an
    unknown one); ``user_lists``: the event user's lists around the event."""
    unknown = event.names_a_list and named is None
    if named is not None and named.user_id in ("", event.user_id):
        position = named.position_of(event.item_id)
        elapsed = event.timestamp - named.created_at
        if position is not None and -skew <= elapsed <= window:
            return Attribution(named, position, unknown_id=False)
    found = (
        user_lists.latest_showing(event.item_id, event.timestamp, window) if user_lists else None
    )
    if found is None:
        return Attribution(None, None, unknown_id=unknown)
    return Attribution(found[0], found[1], unknown_id=unknown)


def user_lists_index(lists: Sequence[ShownList]) -> Mapping[str, UserLists]:
    by_user: dict[str, list[ShownList]] = {}
    for shown in lists:
        by_user.setdefault(shown.user_id, []).append(shown)
    return {user: UserLists(user_lists) for user, user_lists in by_user.items()}
