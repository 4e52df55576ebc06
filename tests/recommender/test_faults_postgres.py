"""PostgreSQL restarted (crash-stopped, then started) under event ingestion.

A private PostgreSQL cluster (never the shared one) backs a multi-worker gunicorn. A
client posts batches of events with unique ids and, like any client should, resends the
same batch on a 503 or a connection error. While the database is down the API must
answer 503 with the error body (never 500), ``/readyz`` must say not ready and
``/healthz`` stay up; afterwards exactly the unique events are stored: none lost, none
twice (ingestion is idempotent on ``event_id``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
import pytest
import requests

from tests.private_servers import PrivatePostgres, private_postgres
from tests.processes import ROOT, Server, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 100
CLIENTS = 2
DOWN_SECONDS = 4.0


@dataclass
class Cluster:
    postgres: PrivatePostgres
    database_url: str
    key: str


@pytest.fixture
def cluster(server_env) -> Iterator[Cluster]:
    """A private cluster with a migrated ``recsite`` database and an events:write key."""
    with private_postgres() as postgres:
        postgres.create_database("recsite")
        env = {**server_env, "DATABASE_URL": postgres.url("recsite")}
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        created = subprocess.run(
            [*manage, "create_api_key", "faults", "--scopes", "events:write"],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        yield Cluster(postgres, postgres.url("recsite"), created.stdout.strip())


@dataclass
class RetryingClient:
    """Posts batches of new events until stopped, resending a batch until it is stored."""

    server: Server
    key: str
    name: str
    sent_ids: set[str] = field(default_factory=set)
    created: int = 0
    duplicates: int = 0
    # Duplicates reported for a batch on its first attempt: there must be none. A batch
    # resent after an error may find its events stored: PostgreSQL committed it but
    # died before the server learned so (an ambiguous commit), and said 503.
    first_attempt_duplicates: int = 0
    outcomes: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    stored_batches: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def batch(self, number: int) -> list[dict]:
        now = datetime.now(UTC).isoformat()
        return [
            {
                "event_id": f"{self.name}-{number}-{i}",
                "user_id": f"user-{(number * BATCH + i) % 97}",
                "item_id": f"item-{i % 13}",
                "type": "view",
                "timestamp": now,
            }
            for i in range(BATCH)
        ]

    def post_until_stored(self, events: list[dict]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = requests.post(
                    f"{self.server.url}/api/v1/events",
                    json={"events": events},
                    headers={"Authorization": f"Api-Key {self.key}"},
                    timeout=10,
                )
            except requests.RequestException as exc:
                self.outcomes[f"connection error ({type(exc).__name__})"] += 1
                time.sleep(0.1)
                continue
            self.outcomes[response.status_code] += 1
            if response.status_code == 201:
                body = response.json()
                self.created += body["created"]
                self.duplicates += body["duplicates"]
                if attempt == 1:
                    self.first_attempt_duplicates += body["duplicates"]
                self.stored_batches += 1
                return
            body = response.json() if "json" in response.headers.get("Content-Type", "") else {}
            code = body.get("error", {}).get("code")
            if response.status_code != 503 or code != "database_unavailable":
                self.unexpected.append(f"{response.status_code}: {response.text[:300]}")
            time.sleep(0.1)

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            events = self.batch(number)
            self.sent_ids.update(event["event_id"] for event in events)
            self.post_until_stored(events)
            number += 1


def stored_events(database_url: str) -> tuple[int, int]:
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), count(DISTINCT event_id) FROM recommender_event")
            return cursor.fetchone()
    finally:
        connection.close()


def test_a_postgres_restart_during_ingestion_loses_and_duplicates_nothing(cluster, start_server):
    server = start_server(DATABASE_URL=cluster.database_url, GUNICORN_WORKERS="3")
    server.wait_ready()
    clients = [RetryingClient(server, cluster.key, f"client{n}") for n in range(CLIENTS)]
    threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
    for thread in threads:
        thread.start()

    def stored_batches() -> int:
        return sum(client.stored_batches for client in clients)

    try:
        wait_until(lambda: stored_batches() >= 20, 30, "20 batches before the outage")
        cluster.postgres.stop(mode="immediate")
        down_at = time.monotonic()
        health: Counter = Counter()
        while time.monotonic() - down_at < DOWN_SECONDS:
            health["healthz", requests.get(f"{server.url}/healthz", timeout=5).status_code] += 1
            ready = requests.get(f"{server.url}/readyz", timeout=5)
            health["readyz", ready.status_code] += 1
            if ready.status_code == 503:
                assert ready.json()["checks"]["database"]["ok"] is False
            time.sleep(0.3)
        cluster.postgres.start()
        up_at = time.monotonic()
        restarted = stored_batches()
        wait_until(lambda: stored_batches() >= restarted + 20, 30, "20 batches after")
    finally:
        for client in clients:
            client.stop.set()
        for thread in threads:
            thread.join(timeout=30)

    sent = set().union(*(client.sent_ids for client in clients))
    created = sum(client.created for client in clients)
    outcomes = sum((client.outcomes for client in clients), Counter())
    unexpected = [answer for client in clients for answer in client.unexpected]
    count, distinct = stored_events(cluster.database_url)
    print(
        f"\n{len(sent)} unique events sent in {stored_batches()} batches by {CLIENTS} clients; "
        f"stored {count} ({distinct} distinct); reported created {created}, duplicates "
        f"{sum(client.duplicates for client in clients)}; answers "
        f"{dict(outcomes)}; during the {up_at - down_at:.1f} s outage {dict(health)}"
    )
    assert unexpected == []
    assert outcomes[503] > 0, "the outage was never seen"
    assert (count, distinct) == (len(sent), len(sent))
    # Every stored event was reported once, as created or (when the batch was resent
    # after an ambiguous commit) as a duplicate; never a duplicate on a first attempt.
    duplicates = sum(client.duplicates for client in clients)
    assert created + duplicates == count
    assert sum(client.first_attempt_duplicates for client in clients) == 0
    assert health["healthz", 200] > 0 and set(health) <= {("healthz", 200), ("readyz", 503)}
    assert requests.get(f"{server.url}/readyz", timeout=5).status_code == 200
