"""Abuse at the edges of every API operation, table-driven: bodies and batches over their
limits, malformed JSON, wrong types, odd unicode, very long ids, page parameters out of
range. Each must get its 4xx with the error body — never a 500 — and write nothing.

The per-endpoint tests (``tests/recommender/test_apis_*.py``) cover the usual bad input
with limits lowered in settings; these use the real default limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings as django_settings

from recommender.models import Event, Item, Scope
from tests.factories import EventFactory, ModelVersionFactory, TrainingRunFactory
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec
from training.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db

EVENTS, ITEMS, RUNS = "/api/v1/events", "/api/v1/items", "/api/v1/training-runs"


def event(**overrides: Any) -> dict:
    return {
        "event_id": "limit-1",
        "user_id": "user-0",
        "item_id": "item-0",
        "type": "view",
        "timestamp": "2024-01-02T00:00:00Z",
        **overrides,
    }


def events(*entries: dict) -> str:
    return json.dumps({"events": list(entries)})


def items(*entries: dict) -> str:
    return json.dumps({"items": list(entries)})


def oversized(url: str) -> str:
    """Valid JSON one byte over RECSITE_MAX_BODY_BYTES."""
    key = {EVENTS: "events", ITEMS: "items", RUNS: "pad"}[url]
    shell = json.dumps({key: [""]})
    pad = django_settings.RECSITE_MAX_BODY_BYTES + 1 - len(shell)
    return json.dumps({key: ["x" * pad]})


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# (id, url, body, status, error code)
# Run overrides are checked by the family's hyper-parameter schema (errors on each name).
BAD_OPTIONS = "invalid_training_options"
WRITE_CASES = [
    ("events-body-over-limit", EVENTS, oversized(EVENTS), 413, "body_too_large"),
    ("items-body-over-limit", ITEMS, oversized(ITEMS), 413, "body_too_large"),
    ("runs-body-over-limit", RUNS, oversized(RUNS), 413, "body_too_large"),
    (
        "events-batch-over-limit",
        EVENTS,
        events(*(event(event_id=f"e{i}") for i in range(1001))),
        413,
        "batch_too_large",
    ),
    (
        "items-batch-over-limit",
        ITEMS,
        items(*({"item_id": f"i{i}"} for i in range(1001))),
        413,
        "batch_too_large",
    ),
    # Malformed JSON
    ("events-truncated", EVENTS, '{"events": [{"event_id": "a"', 400, "parse_error"),
    ("items-not-json", ITEMS, "items=1", 400, "parse_error"),
    ("runs-empty-body-brace", RUNS, "{", 400, "parse_error"),
    ("events-invalid-utf8", EVENTS, b'{"events": ["\xff\xfe"]}', 400, "parse_error"),
    ("events-nested-100k-deep", EVENTS, nested(100_000), 400, "parse_error"),
    ("items-nested-100k-deep", ITEMS, '{"items": ' + nested(100_000) + "}", 400, "parse_error"),
    ("events-lone-surrogate", EVENTS, events(event(user_id="\ud800")), 400, "parse_error"),
    ("items-lone-surrogate-id", ITEMS, items({"item_id": "a\udfff"}), 400, "parse_error"),
    (
        "items-lone-surrogate-category",
        ITEMS,
        items({"item_id": "a", "categories": ["\ud800"]}),
        400,
        "parse_error",
    ),
    # Wrong types
    ("events-not-a-list", EVENTS, '{"events": {"0": {}}}', 400, "invalid"),
    ("events-top-level-list", EVENTS, "[]", 400, "invalid"),
    ("events-entries-not-objects", EVENTS, '{"events": [1, "a", null]}', 400, "invalid_events"),
    ("events-id-object", EVENTS, events(event(event_id={"a": 1})), 400, "invalid_events"),
    ("events-timestamp-bool", EVENTS, events(event(timestamp=True)), 400, "invalid_events"),
    ("events-timestamp-year-99999", EVENTS, events(event(timestamp="99999-01-01")), 400, None),
    ("events-timestamp-huge-number", EVENTS, events(event(timestamp=1e300)), 400, None),
    ("events-weight-string", EVENTS, events(event(weight="heavy")), 400, "invalid_events"),
    ("events-weight-nan", EVENTS, events(event(weight=float("nan"))), 400, "invalid_events"),
    ("events-weight-infinity", EVENTS, events(event(weight=float("inf"))), 400, None),
    ("events-type-unknown", EVENTS, events(event(type="teleport")), 400, "invalid_events"),
    ("items-not-a-list", ITEMS, '{"items": "x"}', 400, "invalid"),
    ("items-categories-string", ITEMS, items({"item_id": "a", "categories": "x"}), 400, None),
    ("items-active-string", ITEMS, items({"item_id": "a", "active": "yes"}), 400, None),
    ("items-title-number", ITEMS, items({"item_id": "a", "title": 5}), 400, "invalid_items"),
    ("runs-dry-run-not-bool", RUNS, '{"dry_run": "maybe"}', 400, "invalid"),
    ("runs-overrides-list", RUNS, '{"overrides": [1]}', 400, "invalid"),
    ("runs-epochs-huge", RUNS, '{"overrides": {"epochs": 1e30}}', 400, "invalid_training_options"),
    (
        "runs-learning-rate-nan",
        RUNS,
        '{"overrides": {"learning_rate": NaN}}',
        400,
        "invalid_training_options",
    ),
    ("runs-recommender-list", RUNS, '{"recommender": ["default"]}', 400, "invalid"),
    # Unicode and very long ids
    ("events-id-256-chars", EVENTS, events(event(event_id="é" * 256)), 400, "invalid_events"),
    ("events-item-10k-chars", EVENTS, events(event(item_id="x" * 10_000)), 400, None),
    ("events-user-nul", EVENTS, events(event(user_id="a\x00b")), 400, "invalid_events"),
    ("events-rec-id-65-chars", EVENTS, events(event(recommendation_id="r" * 65)), 400, None),
    ("items-id-256-emoji", ITEMS, items({"item_id": "😀" * 256}), 400, "invalid_items"),
    ("items-category-nul", ITEMS, items({"item_id": "a", "categories": ["c\x00"]}), 400, None),
    ("items-title-501-chars", ITEMS, items({"item_id": "a", "title": "t" * 501}), 400, None),
    ("runs-recommender-nul", RUNS, '{"recommender": "a\\u0000"}', 400, "invalid"),
    ("runs-recommender-65-chars", RUNS, json.dumps({"recommender": "r" * 65}), 400, "invalid"),
]


@pytest.fixture
def api(make_api_client):
    return make_api_client(*Scope.values)


def counts() -> tuple[int, int, int]:
    return Event.objects.count(), Item.objects.count(), TrainingRun.objects.count()


def assert_error(response, status: int, code: str | None) -> None:
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "detail"}
    if code is not None:
        assert error["code"] == code


@pytest.mark.parametrize(
    "url,body,status,code", [case[1:] for case in WRITE_CASES], ids=[c[0] for c in WRITE_CASES]
)
def test_a_bad_write_gets_its_4xx_and_writes_nothing(api, url, body, status, code):
    EventFactory(event_id="already-there", item__external_id="item-0")
    before = counts()
    response = api.post(url, body, content_type="application/json")
    assert_error(response, status, code)
    assert counts() == before


def test_ids_at_the_limit_in_any_script_are_stored_exactly(api):
    """The positive control for the long-id rows: 255 characters of 4-byte UTF-8."""
    item_id, user_id = "😀" * 255, "ユーザー" * 63
    response = api.post(
        EVENTS, events(event(item_id=item_id, user_id=user_id)), content_type="application/json"
    )
    assert response.status_code == 201
    stored = Event.objects.select_related("item").get()
    assert (stored.item.external_id, stored.user_external_id) == (item_id, user_id)


def test_paired_surrogate_escapes_are_one_character(api):
    """``json.dumps``' default ``ensure_ascii`` sends an emoji as a pair of escapes."""
    body = json.dumps({"items": [{"item_id": "pair-😀", "categories": ["🎬"]}]})
    assert "\\ud83d" in body
    assert api.post(ITEMS, body, content_type="application/json").status_code == 200
    assert Item.objects.get(external_id="pair-😀").categories == ["🎬"]


# --- Reads ---------------------------------------------------------------------------

HUGE = str(10**30)
RECS, SIMILAR = "/api/v1/recommendations/user-0", "/api/v1/items/item-0/similar"
READ_CASES = [
    ("recs-limit-0", RECS, {"limit": 0}),
    ("recs-limit-negative", RECS, {"limit": -1}),
    ("recs-limit-101", RECS, {"limit": 101}),
    ("recs-limit-huge", RECS, {"limit": HUGE}),
    ("recs-limit-text", RECS, {"limit": "ten"}),
    ("recs-limit-float", RECS, {"limit": "1.5"}),
    ("recs-offset-negative", RECS, {"offset": -1}),
    ("recs-offset-over-max", RECS, {"offset": 1001}),
    ("recs-offset-huge", RECS, {"offset": HUGE}),
    ("recs-exclude-101-ids", RECS, {"exclude": ",".join(f"i{n}" for n in range(101))}),
    ("recs-exclude-over-30k-chars", RECS, {"exclude": "x" * 30_001}),
    ("recs-category-101-chars", RECS, {"category": "c" * 101}),
    ("recs-category-nul", RECS, {"category": "a\x00"}),
    ("recs-recommender-not-a-slug", RECS, {"recommender": "no such/one"}),
    ("recs-user-256-chars", "/api/v1/recommendations/" + "u" * 256, {}),
    ("recs-exclude-id-256-chars", RECS, {"exclude": "a," + "x" * 256}),
    ("similar-item-256-chars", "/api/v1/items/" + "i" * 256 + "/similar", {}),
    ("similar-item-10k-chars", "/api/v1/items/" + "i" * 10_000 + "/similar", {}),
    ("similar-limit-0", SIMILAR, {"limit": 0}),
    ("similar-limit-huge", SIMILAR, {"limit": HUGE}),
    ("similar-limit-text", SIMILAR, {"limit": "ten"}),
    ("versions-recommender-nul", "/api/v1/model-versions", {"recommender": "a\x00"}),
    ("runs-recommender-65-chars", RUNS, {"recommender": "r" * 65}),
]


@pytest.fixture
def served(settings, tmp_path) -> None:
    """A served model, versions and runs to page through, events for the user."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    version = create_version(spec)
    ModelVersionFactory.create_batch(3, recommender=version.recommender)
    TrainingRunFactory.create_batch(3, recommender=version.recommender, status=RunStatus.SUCCEEDED)
    EventFactory(user_external_id="user-0", item=Item.objects.get(external_id="item-1"))


@pytest.mark.parametrize(
    "url,params", [case[1:] for case in READ_CASES], ids=[c[0] for c in READ_CASES]
)
def test_a_bad_read_gets_a_400_with_the_error_body(api, served, url, params):
    assert_error(api.get(url, params), 400, "invalid")


# Served as a 2xx or the documented 404, never a 500: ids the database or the id index
# might choke on, and list pages far past the end (the list views clamp the page size).
ODD_READS = [
    ("recs-user-nul", "/api/v1/recommendations/a%00b", {}),
    ("recs-user-emoji", "/api/v1/recommendations/%F0%9F%98%80", {}),
    ("recs-user-percent-encoded-slash", "/api/v1/recommendations/a%2Fb", {}),
    ("similar-item-nul", "/api/v1/items/a%00b/similar", {}),
    ("versions-limit-huge", "/api/v1/model-versions", {"limit": HUGE}),
    ("versions-offset-huge", "/api/v1/model-versions", {"offset": HUGE}),
    ("versions-offset-past-bigint", "/api/v1/model-versions", {"offset": str(2**63)}),
    ("runs-limit-negative", RUNS, {"limit": -5}),
    ("runs-offset-huge", RUNS, {"offset": HUGE}),
]


@pytest.mark.parametrize("url,params", [c[1:] for c in ODD_READS], ids=[c[0] for c in ODD_READS])
def test_odd_but_harmless_reads_never_fail(api, served, url, params):
    response = api.get(url, params)
    assert response.status_code in (200, 404), response.content[:500]
    if response.status_code == 404:
        assert set(response.json()["error"]) == {"code", "message", "detail"}
    elif "results" in response.json():
        assert len(response.json()["results"]) <= 100
