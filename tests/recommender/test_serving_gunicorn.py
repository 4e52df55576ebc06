"""Hot swap across a real multi-worker gunicorn on PostgreSQL + Redis.

Runs in the second pass of ``scripts/test``. The server is a subprocess pointed at the
test database and the same Redis; this test promotes and rolls back through the services
(as the admin does) and watches every worker's answers, telling workers apart by the
``X-Recsite-Worker`` header (their pid)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import transaction

from recommender.models import Item, Scope
from recommender.services.registry import model_version_promote, model_version_rollback
from tests.processes import Server
from tests.recommender.serving_helpers import corrupt, create_catalog, create_version, default_spec

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
SWITCH_WITHIN = 3.0
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(start_server) -> Server:
    # A slow database poll: the switch within 3 s must come from the Redis key.
    return start_server(GUNICORN_WORKERS=str(WORKERS), RECSITE_SERVING_POLL_SECONDS="30")


def ask(server: Server, key: str, user: str = "user-3", **params) -> requests.Response:
    return server.ask(key, user=user, **params)


def wait_all_workers_serve(
    server: Server, key: str, pids: set[str], version: int, within: float
) -> float:
    """Ask concurrently until every worker has answered with ``version``; every answer
    must be a 200. Returns the seconds it took."""
    started = time.monotonic()
    switched: set[str] = set()
    with ThreadPoolExecutor(max_workers=6) as pool:
        while time.monotonic() - started < within:
            for response in pool.map(lambda _: ask(server, key), range(6)):
                assert response.status_code == 200, response.text
                if response.json()["model_version"] == version:
                    switched.add(response.headers["X-Recsite-Worker"])
            if switched >= pids:
                return time.monotonic() - started
    pytest.fail(
        f"after {within} s only workers {sorted(switched)} of {sorted(pids)} serve v{version}"
    )


def load_failures(server: Server) -> float:
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    found = re.search(r'recsite_model_load_failures_total\{recommender="default"\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def test_every_worker_switches_on_promote_and_rollback_and_refuses_a_corrupt_version(
    server, make_api_client
):
    spec = default_spec()
    create_catalog(spec)
    v1 = create_version(spec)
    v2 = create_version(default_spec(seed=5), promote=False)
    v3 = create_version(default_spec(seed=6), promote=False)
    client = make_api_client(Scope.RECOMMENDATIONS_READ)
    key = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")

    server.wait_ready()
    pids = server.worker_pids(WORKERS)
    wait_all_workers_serve(server, key, pids, version=1, within=10)

    model_version_promote(version=v2, reason="integration")
    took = wait_all_workers_serve(server, key, pids, version=2, within=SWITCH_WITHIN)
    print(f"promote: every worker served v2 after {took:.2f} s")

    model_version_rollback(recommender=v1.recommender, reason="integration")
    took = wait_all_workers_serve(server, key, pids, version=1, within=SWITCH_WITHIN)
    print(f"rollback: every worker served v1 after {took:.2f} s")

    with transaction.atomic():  # promote verifies the artifact: damage it before the commit
        model_version_promote(version=v3, reason="integration: corrupted")
        corrupt(v3)
    deadline = time.monotonic() + SWITCH_WITHIN
    while load_failures(server) < WORKERS:  # every worker tried v3 and refused it
        if time.monotonic() > deadline:
            pytest.fail(
                f"{load_failures(server)} of {WORKERS} workers refused v3:\n{server.output()}"
            )
        time.sleep(0.2)
    wait_all_workers_serve(server, key, pids, version=1, within=SWITCH_WITHIN)
    ready = requests.get(f"{server.url}/readyz", timeout=5).json()["checks"]["serving"]
    default = ready["recommenders"]["default"]
    assert (default["active_version"], default["loaded_version"]) == (3, 1)
    assert default["last_load_error"]["code"] == "checksum_mismatch"


def test_the_served_api_filters_pages_and_validates(server, make_api_client):
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    Item.objects.filter(external_id="item-20").update(active=False)
    client = make_api_client(Scope.RECOMMENDATIONS_READ)
    key = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")
    server.wait_ready()

    full = ask(server, key, user="user-0", limit=100, exclude="item-21").json()
    returned = [item["item_id"] for item in full["items"]]
    assert not {"item-0", "item-1", "item-2", "item-20", "item-21"} & set(returned)  # seen
    paged = []
    for offset in range(0, 30, 8):
        paged += [
            item["item_id"]
            for item in ask(
                server, key, user="user-0", limit=8, offset=offset, exclude="item-21"
            ).json()["items"]
        ]
    assert paged == returned

    unknown = ask(server, key, user="nobody").json()
    assert unknown["fallback"] == "unknown_user"
    bad = ask(server, key, limit=500)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid"


def test_an_event_posted_through_one_worker_is_filtered_by_every_worker_at_once(
    server, make_api_client
):
    """Every worker caches the user's recent items (serving/seen.py); the event's ingest
    replaces the user's seen token, so no worker answers from its stale list."""
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    read = make_api_client(Scope.RECOMMENDATIONS_READ)
    key = read._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")
    write = make_api_client(Scope.EVENTS_WRITE)
    write_key = write._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")
    server.wait_ready()
    pids = server.worker_pids(WORKERS)

    def ask_every_worker() -> list[dict]:
        answered: dict[str, dict] = {}
        for _ in range(200):
            response = ask(server, key, user="user-3", limit=5)
            assert response.status_code == 200, response.text
            answered.setdefault(response.headers["X-Recsite-Worker"], response.json())
            if answered.keys() >= pids:
                return list(answered.values())
        pytest.fail(f"only workers {sorted(answered)} of {sorted(pids)} answered")

    before = ask_every_worker()
    top = before[0]["items"][0]["item_id"]
    assert all(body["items"][0]["item_id"] == top for body in before)
    ask_every_worker()  # each worker now answers from its cached list
    posted = requests.post(
        f"{server.url}/api/v1/events",
        json={
            "events": [
                {
                    "event_id": "just-now",
                    "user_id": "user-3",
                    "item_id": top,
                    "type": "view",
                    "timestamp": "2025-06-01T12:00:00Z",
                }
            ]
        },
        headers={"Authorization": f"Api-Key {write_key}", "Connection": "close"},
        timeout=10,
    )
    assert posted.status_code == 201, posted.text

    after = ask_every_worker()
    assert all(top not in [item["item_id"] for item in body["items"]] for body in after)
    metrics = requests.get(f"{server.url}/metrics", timeout=5).text
    from_cache = re.search(r'recsite_seen_reads_total\{source="cache"\} (\S+)', metrics)
    assert from_cache and float(from_cache.group(1)) >= len(pids)
