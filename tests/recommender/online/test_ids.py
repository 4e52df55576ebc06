"""UUIDv7 recommendation ids: layout, order, monotonic within a process."""

import uuid

import pytest

from recommender.online.ids import (
    Uuid7Generator,
    recommendation_id_new,
    recommendation_id_parse,
    uuid7_from_parts,
    uuid7_time_ms,
)


def test_a_uuid7_carries_its_version_variant_and_milliseconds():
    value = uuid7_from_parts(1_700_000_000_123, 0x3FF_FFFF_FFFF_FFFF_FFFF)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert uuid7_time_ms(value) == 1_700_000_000_123


def test_ids_of_later_milliseconds_sort_after_earlier_ones_whatever_their_random_bits():
    early = uuid7_from_parts(1000, (1 << 74) - 1)
    late = uuid7_from_parts(1001, 0)
    assert early < late
    assert str(early) < str(late)


def test_ids_of_one_millisecond_are_strictly_increasing_even_when_the_random_bits_go_down():
    randoms = iter([500, 10, 10, 3])
    make = Uuid7Generator(clock_ms=lambda: 42, random_bits=lambda: next(randoms))
    ids = [make() for _ in range(4)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert {uuid7_time_ms(i) for i in ids} == {42}


def test_a_clock_stepping_back_never_makes_an_earlier_id():
    clock = iter([5000, 4000, 4000])
    make = Uuid7Generator(clock_ms=lambda: next(clock), random_bits=lambda: 7)
    first, second, third = make(), make(), make()
    assert first < second < third


def test_the_random_part_overflowing_carries_into_the_next_millisecond():
    make = Uuid7Generator(clock_ms=lambda: 9, random_bits=lambda: (1 << 74) - 1)
    first, second = make(), make()
    assert uuid7_time_ms(first) == 9 and uuid7_time_ms(second) == 10
    assert first < second


def test_the_process_generator_makes_version_7_ids():
    assert recommendation_id_new().version == 7


@pytest.mark.parametrize(
    "text", ["0190f4d2-7c2e-7a4b-8c3d-1e2f3a4b5c6d", "0190f4d27c2e7a4b8c3d1e2f3a4b5c6d"]
)
def test_an_event_may_name_the_id_with_or_without_hyphens(text):
    assert recommendation_id_parse(text) == uuid.UUID("0190f4d2-7c2e-7a4b-8c3d-1e2f3a4b5c6d")


@pytest.mark.parametrize("text", ["", "abc", "not-a-uuid-at-all-0000000000000000"])
def test_an_id_that_is_no_uuid_parses_to_none(text):
    assert recommendation_id_parse(text) is None
