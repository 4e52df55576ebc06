"""The plain validators behind POST /events and POST /items (no database)."""

from datetime import UTC, datetime, timedelta

from recommender.ingest import EventRules, parse_events, parse_items, parse_timestamp

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
RULES = EventRules(
    event_types={"view": 1.0, "like": 3.0}, now=NOW, future_tolerance=timedelta(minutes=5)
)


def event(**overrides):
    base = {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "type": "view",
        "timestamp": "2025-06-01T10:00:00Z",
    }
    base.update(overrides)
    return base


def test_a_valid_event_is_parsed_to_utc():
    parsed, errors = parse_events([event(timestamp="2025-06-01T12:00:00+02:00")], RULES)
    assert not errors
    assert parsed[0].timestamp == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def test_numeric_ids_are_accepted_as_strings():
    parsed, errors = parse_events([event(user_id=42, item_id=7)], RULES)
    assert not errors
    assert (parsed[0].user_id, parsed[0].item_id) == ("42", "7")


def test_every_problem_is_reported_with_its_index_and_field():
    raw = [event(), {"event_id": "e2", "type": "teleport"}, "not an object"]
    parsed, errors = parse_events(raw, RULES)
    assert parsed[0] is not None and parsed[1] is None and parsed[2] is None
    found = {(entry["index"], entry["field"]) for entry in errors.entries}
    assert found == {(1, "user_id"), (1, "item_id"), (1, "type"), (1, "timestamp"), (2, "")}
    type_error = next(e for e in errors.entries if e["field"] == "type")
    assert "teleport" in type_error["message"] and "like, view" in type_error["message"]


def test_a_timestamp_beyond_the_future_tolerance_is_rejected():
    ok = (NOW + timedelta(minutes=4)).isoformat()
    late = (NOW + timedelta(minutes=6)).isoformat()
    parsed, errors = parse_events([event(timestamp=ok), event(timestamp=late)], RULES)
    assert parsed[0] is not None
    assert errors.indexes() == {1}


def test_bad_weights_and_ids_are_rejected():
    raw = [
        event(weight=-1),
        event(weight=True),
        event(weight=float("nan")),
        event(event_id=""),
        event(user_id="x" * 256),
        event(item_id=["list"]),
        event(type=["view"]),
        event(recommendation_id="r" * 65),
    ]
    _, errors = parse_events(raw, RULES)
    assert errors.indexes() == set(range(len(raw)))


def test_naive_and_unix_timestamps_mean_utc():
    assert parse_timestamp("2025-01-01T00:00:00") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_timestamp(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_items_validate_fields_and_deduplicate_categories():
    parsed, errors = parse_items(
        [
            {"item_id": "a", "title": "A", "categories": ["x", "x", " y "], "active": False},
            {"item_id": "b", "categories": "x"},
            {"title": "no id"},
            {"item_id": "c", "active": "yes"},
        ]
    )
    assert parsed[0].categories == ["x", "y"] and parsed[0].active is False
    assert errors.indexes() == {1, 2, 3}
    assert parsed[0].provided_fields() == {"title", "categories", "active"}


def test_a_weight_above_the_maximum_or_not_positive_is_rejected_naming_the_field():
    rules = EventRules(
        event_types={"view": 1.0}, now=NOW, future_tolerance=timedelta(minutes=5), weight_max=100
    )
    raw = [
        event(weight=100),
        event(weight=1e39),
        event(weight=1e9),
        event(weight=0),
        event(weight=10**400),
    ]
    parsed, errors = parse_events(raw, rules)
    assert parsed[0] is not None and parsed[0].weight == 100
    assert errors.indexes() == {1, 2, 3, 4}
    assert {entry["field"] for entry in errors.entries} == {"weight"}
    messages = [entry["message"] for entry in errors.entries]
    assert "at most 100" in messages[0] and "greater than 0" in messages[2]
    assert messages[3] == "must be finite"


def test_a_timestamp_before_the_minimum_is_rejected():
    rules = EventRules(
        event_types={"view": 1.0},
        now=NOW,
        future_tolerance=timedelta(minutes=5),
        earliest=datetime(1990, 1, 1, tzinfo=UTC),
    )
    raw = [event(timestamp="1990-01-01T00:00:00Z"), event(timestamp=86_400)]
    parsed, errors = parse_events(raw, rules)
    assert parsed[0] is not None
    assert [(entry["index"], entry["field"]) for entry in errors.entries] == [(1, "timestamp")]
    assert "1990-01-01" in errors.entries[0]["message"]


def test_an_event_id_repeated_with_other_content_is_an_error_identical_is_not():
    raw = [event(), event(), event(item_id="i2"), event(event_id="e2")]
    parsed, errors = parse_events(raw, RULES)
    assert [(entry["index"], entry["field"]) for entry in errors.entries] == [(2, "event_id")]
    assert "index 0" in errors.entries[0]["message"]
    assert parsed[1] == parsed[0] and parsed[2] is None and parsed[3] is not None
