"""The attribution rules on lists in memory, one case per test."""

import uuid
from datetime import UTC, datetime, timedelta

from recommender.online.attribution_rules import EventFacts, ShownList, UserLists, attribute

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
SKEW = timedelta(minutes=5)


def shown(at: timedelta, items=("a", "b", "c"), user="u", first_position=1) -> ShownList:
    return ShownList(
        id=uuid.uuid4(),
        user_id=user,
        created_at=T0 + at,
        item_ids=list(items),
        first_position=first_position,
    )


def event(at: timedelta, item="b", user="u", names: uuid.UUID | None = None, sent=None):
    return EventFacts(
        user_id=user,
        item_id=item,
        timestamp=T0 + at,
        recommendation_id=names,
        names_a_list=sent if sent is not None else names is not None,
    )


def run(fact, lists=(), named=None):
    return attribute(fact, named=named, user_lists=UserLists(list(lists)), window=WINDOW, skew=SKEW)


def test_the_latest_list_showing_the_item_before_the_event_wins():
    older, newer = shown(timedelta(0)), shown(timedelta(hours=1))
    found = run(event(timedelta(hours=2)), [newer, older])
    assert (found.list, found.position) == (newer, 2)


def test_a_later_list_without_the_item_does_not_take_it():
    with_item, without = shown(timedelta(0)), shown(timedelta(hours=1), items=("x",))
    assert run(event(timedelta(hours=2)), [with_item, without]).list == with_item


def test_a_list_shown_after_the_event_is_not_credited():
    assert run(event(timedelta(0)), [shown(timedelta(seconds=1))]).list is None


def test_an_event_at_the_same_instant_as_the_list_is_attributed():
    assert run(event(timedelta(0)), [shown(timedelta(0))]).position == 2


def test_the_window_includes_its_edge_and_nothing_beyond():
    lists = [shown(timedelta(0))]
    assert run(event(WINDOW), lists).list is not None
    assert run(event(WINDOW + timedelta(microseconds=1)), lists).list is None


def test_an_event_before_any_list_is_not_attributed():
    found = run(event(timedelta(0)), [])
    assert (found.list, found.unknown_id) == (None, False)


def test_positions_count_from_the_lists_first_position():
    assert (
        run(event(timedelta(hours=1), item="c"), [shown(timedelta(0), first_position=21)]).position
        == 23
    )


def test_the_named_list_wins_over_a_later_one():
    named, later = shown(timedelta(0)), shown(timedelta(hours=1))
    found = run(event(timedelta(hours=2), names=named.id), [named, later], named=named)
    assert found.list == named and not found.unknown_id


def test_a_named_list_is_credited_for_an_event_slightly_before_it_by_the_clients_clock():
    named = shown(timedelta(0))
    assert run(event(-SKEW, names=named.id), [named], named=named).list == named
    found = run(event(-SKEW - timedelta(seconds=1), names=named.id), [named], named=named)
    assert found.list is None


def test_a_named_list_of_another_user_is_not_credited_and_the_users_own_list_is():
    other = shown(timedelta(hours=1), user="someone-else")
    own = shown(timedelta(0))
    found = run(event(timedelta(hours=2), names=other.id), [own], named=other)
    assert found.list == own and not found.unknown_id


def test_a_named_list_of_similar_items_has_no_user_and_is_credited():
    similar = shown(timedelta(0), user="")
    assert run(event(timedelta(hours=1), names=similar.id), [], named=similar).list == similar


def test_a_named_list_without_the_item_falls_back_to_the_rule():
    named = shown(timedelta(hours=1), items=("x",))
    own = shown(timedelta(0))
    assert run(event(timedelta(hours=2), names=named.id), [own, named], named=named).list == own


def test_an_unknown_id_is_reported_and_the_rule_still_applies():
    own = shown(timedelta(0))
    found = run(event(timedelta(hours=1), names=uuid.uuid4()), [own], named=None)
    assert found.unknown_id and found.list == own


def test_a_recommendation_id_that_is_no_uuid_is_unknown():
    found = run(event(timedelta(hours=1), sent=True), [], named=None)
    assert found.unknown_id and found.list is None
