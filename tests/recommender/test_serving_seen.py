"""The serving process's cache of users' recent items (recommender/serving/seen.py): a
cached list is used only while the user's seen token in Redis is the one it was read
under, so an event written after it was cached (through any process) is never missed."""

from __future__ import annotations

import pytest
import redis

from recommender import seen_tokens
from recommender.redis_client import redis_client
from recommender.seen_tokens import KEY_PREFIX, events_written, seen_changed
from recommender.serving.seen import SeenCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Database:
    """Stands in for the events table: what the cache reads, and how often."""

    def __init__(self) -> None:
        self.items: dict[str, list[int]] = {}
        self.reads = 0
        self.during_read = None

    def read(self, user_id: str) -> list[int]:
        self.reads += 1
        snapshot = list(self.items.get(user_id, []))
        if self.during_read is not None:
            self.during_read()
        return snapshot


def write(database: Database, user_id: str, item: int) -> None:
    """An event stored, then announced as ingest does."""
    database.items.setdefault(user_id, []).insert(0, item)
    events_written([user_id])


@pytest.fixture
def redis_db(redis_url, settings):
    settings.REDIS_URL = redis_url
    redis_client.cache_clear()
    client = redis_client()
    for key in client.scan_iter(f"{KEY_PREFIX}*"):
        client.delete(key)
    yield client
    redis_client.cache_clear()


def make_cache(database: Database, clock: Clock | None = None, capacity: int = 100) -> SeenCache:
    return SeenCache(capacity=capacity, max_age=60.0, read=database.read, clock=clock or Clock())


def test_a_cached_list_serves_until_the_users_events_change(redis_db):
    database = Database()
    write(database, "u", 1)
    cache = make_cache(database)

    assert cache.recent_item_pks("u").tolist() == [1]
    assert cache.recent_item_pks("u").tolist() == [1]
    assert database.reads == 1

    write(database, "u", 2)  # through any process: the token in Redis is replaced
    assert cache.recent_item_pks("u").tolist() == [2, 1]
    assert database.reads == 2


def test_a_user_without_a_token_claims_one_and_is_cached(redis_db):
    database = Database()
    database.items["quiet"] = [7]  # stored before the cache existed: no token yet
    cache = make_cache(database)

    assert cache.recent_item_pks("quiet").tolist() == [7]
    assert redis_db.get(f"{KEY_PREFIX}quiet") is not None
    assert cache.recent_item_pks("quiet").tolist() == [7]
    assert database.reads == 1


def test_an_event_committed_while_the_list_is_read_is_seen_by_the_next_request(redis_db):
    database = Database()
    write(database, "u", 1)
    cache = make_cache(database)
    # The read sees the table before the event; its writer announces it after the read.
    database.during_read = lambda: write(database, "u", 2)

    assert cache.recent_item_pks("u").tolist() == [1]
    database.during_read = None
    assert cache.recent_item_pks("u").tolist() == [2, 1]


def test_a_token_lost_with_redis_restarting_costs_a_read_not_a_stale_list(redis_db):
    database = Database()
    write(database, "u", 1)
    cache = make_cache(database)
    cache.recent_item_pks("u")

    redis_db.flushdb()  # Redis keeps nothing on disk: a restart forgets every token
    database.items["u"].insert(0, 2)  # written while the token was gone
    assert cache.recent_item_pks("u").tolist() == [2, 1]


def test_a_cached_list_is_read_again_after_max_age_whatever_its_token(redis_db):
    database = Database()
    write(database, "u", 1)
    clock = Clock()
    cache = make_cache(database, clock)
    cache.recent_item_pks("u")

    database.items["u"].insert(0, 2)  # a write whose token replacement was lost
    clock.now += 59
    assert cache.recent_item_pks("u").tolist() == [1]
    clock.now += 2
    assert cache.recent_item_pks("u").tolist() == [2, 1]


def test_the_least_recently_used_user_leaves_a_full_cache(redis_db):
    database = Database()
    for user in "abc":
        write(database, user, 1)
    cache = make_cache(database, capacity=2)
    cache.recent_item_pks("a")
    cache.recent_item_pks("b")
    cache.recent_item_pks("c")

    assert len(cache) == 2
    reads = database.reads
    cache.recent_item_pks("c")
    assert database.reads == reads
    cache.recent_item_pks("a")
    assert database.reads == reads + 1


def test_without_redis_every_request_reads_the_database(settings):
    settings.REDIS_URL = ""
    redis_client.cache_clear()
    try:
        database = Database()
        database.items["u"] = [1]
        cache = make_cache(database)
        cache.recent_item_pks("u")
        cache.recent_item_pks("u")
        assert database.reads == 2
        seen_changed(["u"])  # a writer without Redis has nothing to announce
    finally:
        redis_client.cache_clear()


def test_an_unreachable_redis_reads_the_database_and_ingest_still_succeeds(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    redis_client.cache_clear()
    try:
        database = Database()
        database.items["u"] = [1]
        cache = make_cache(database)
        assert cache.recent_item_pks("u").tolist() == [1]
        assert cache.recent_item_pks("u").tolist() == [1]
        assert database.reads == 2
        events_written(["u"])  # logged, not raised: the events are stored
        assert "seen tokens not replaced" in caplog.text
    finally:
        redis_client.cache_clear()


def test_a_zero_capacity_turns_the_cache_off(redis_db):
    database = Database()
    write(database, "u", 1)
    cache = make_cache(database, capacity=0)
    cache.recent_item_pks("u")
    cache.recent_item_pks("u")
    assert database.reads == 2


def test_a_broken_token_connection_costs_one_database_read_then_is_replaced(redis_db):
    database = Database()
    write(database, "u", 1)
    cache = make_cache(database)
    cache.recent_item_pks("u")
    assert database.reads == 1
    broken = redis.Connection(host="127.0.0.1", port=1, socket_connect_timeout=1)
    seen_tokens._thread.connection = broken

    assert cache.recent_item_pks("u").tolist() == [1]  # from the database
    assert database.reads == 2
    assert cache.recent_item_pks("u").tolist() == [1]  # a new connection, the cache again
    assert database.reads == 2
