"""Event ingestion replayed concurrently against a real multi-worker gunicorn on PostgreSQL.

Clients retry: the same batch can arrive several times at once on different workers, and
batches a client re-cuts after a failure overlap. ``POST /api/v1/events`` is idempotent on
``event_id`` (``INSERT ... ON CONFLICT DO NOTHING RETURNING``), so whatever the
interleaving every event must be stored exactly once, and the ``created`` / ``duplicates``
counts in the responses must add up to exactly that."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from recommender.models import Event, Scope
from recommender.services import api_key_create
from tests.processes import Server

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BATCHES = 30
BATCH_SIZE = 500
COPIES = 3
CLIENT_THREADS = 6
# The overlapping variant needs many batches and threads in flight to make two requests
# meet on the same ids often: without the ordered insert, 2 to 7 of the 100 failed (deadlock).
OVERLAP_BATCHES = 100
OVERLAP_THREADS = 12
ITEMS = 300  # unknown to the catalog: concurrent batches also create the same items


@pytest.fixture
def server(start_server) -> Iterator[tuple[Server, str]]:
    _, key = api_key_create(name="replay", scopes=[Scope.EVENTS_WRITE])
    server = start_server()
    server.wait_ready()
    yield server, key


def make_events(prefix: str, count: int, seed: int) -> list[dict]:
    """``count`` events with unique ids, random users, items and types."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "event_id": f"{prefix}-{n}",
            "user_id": f"user-{rng.randrange(2000)}",
            "item_id": f"item-{rng.randrange(ITEMS)}",
            "type": rng.choice(["view", "click", "like", "purchase"]),
            "timestamp": (start + timedelta(seconds=rng.randrange(10**6))).isoformat(),
        }
        for n in range(count)
    ]


class Poster:
    """POSTs batches from a thread pool, one keep-alive session per thread."""

    def __init__(self, server: Server, key: str) -> None:
        self.url = f"{server.url}/api/v1/events"
        self.headers = {"Authorization": f"Api-Key {key}"}
        self.local = threading.local()

    def post(self, events: list[dict]) -> tuple[int, dict]:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        response = session.post(self.url, json={"events": events}, headers=self.headers, timeout=60)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.status_code, response.json()
        return response.status_code, {"body": response.text[:500]}

    def post_all(self, batches: list[list[dict]], threads: int) -> list[tuple[int, dict]]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(self.post, batches))


def assert_stored_exactly(events: dict[str, dict]) -> None:
    """The events table holds exactly these events, each with the content sent."""
    stored = {
        event_id: (user, item, event_type, timestamp)
        for event_id, user, item, event_type, timestamp in Event.objects.values_list(
            "event_id", "user_external_id", "item__external_id", "event_type", "timestamp"
        )
    }
    assert len(stored) == Event.objects.count() == len(events)
    assert stored == {
        e["event_id"]: (
            e["user_id"],
            e["item_id"],
            e["type"],
            datetime.fromisoformat(e["timestamp"]),
        )
        for e in events.values()
    }


def test_each_batch_posted_three_times_at_once_is_stored_exactly_once(server):
    server, key = server
    batches = [make_events(f"replay-{b}", BATCH_SIZE, seed=b) for b in range(BATCHES)]
    # Consecutive submissions: the 3 copies of a batch are in flight together (6 threads).
    posts = [batch for batch in batches for _ in range(COPIES)]

    started = time.perf_counter()
    results = Poster(server, key).post_all(posts, CLIENT_THREADS)
    seconds = time.perf_counter() - started

    unique = BATCHES * BATCH_SIZE
    assert [status for status, _ in results if status != 201] == [], results[:3]
    created = sum(body["created"] for _, body in results)
    duplicates = sum(body["duplicates"] for _, body in results)
    print(
        f"{len(posts)} POSTs of {BATCH_SIZE} events ({unique:,} unique, each sent {COPIES}x) "
        f"in {seconds:.1f} s: created {created:,}, duplicates {duplicates:,}, "
        f"stored {Event.objects.count():,}"
    )
    assert sum(body["received"] for _, body in results) == COPIES * unique
    assert (created, duplicates) == (unique, (COPIES - 1) * unique)
    for index in range(BATCHES):  # per batch, the copies split its events between them
        copies = results[index * COPIES : (index + 1) * COPIES]
        assert sum(body["created"] for _, body in copies) == BATCH_SIZE
    assert_stored_exactly({e["event_id"]: e for batch in batches for e in batch})


def test_overlapping_batches_in_any_order_are_stored_exactly_once(server):
    """Batch k shares half its events with batch k+1, each batch in its own random order,
    all posted concurrently: the inserts of two requests meet on the same ids in opposite
    orders."""
    server, key = server
    half = BATCH_SIZE // 2
    events = make_events("overlap", half * (OVERLAP_BATCHES + 1), seed=99)
    rng = random.Random(7)
    batches = []
    for b in range(OVERLAP_BATCHES):
        batch = events[b * half : b * half + BATCH_SIZE]
        batches.append(rng.sample(batch, len(batch)))

    started = time.perf_counter()
    results = Poster(server, key).post_all(batches, OVERLAP_THREADS)
    seconds = time.perf_counter() - started

    sent = OVERLAP_BATCHES * BATCH_SIZE
    assert [(status, body) for status, body in results if status != 201] == []
    created = sum(body["created"] for _, body in results)
    duplicates = sum(body["duplicates"] for _, body in results)
    print(
        f"{OVERLAP_BATCHES} overlapping batches ({sent:,} events sent, {len(events):,} unique) in "
        f"{seconds:.1f} s: created {created:,}, duplicates {duplicates:,}, "
        f"stored {Event.objects.count():,}"
    )
    assert (created, duplicates) == (len(events), sent - len(events))
    assert_stored_exactly({e["event_id"]: e for e in events})
