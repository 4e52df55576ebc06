"""Two serving hosts on one S3 artifact store: two gunicorn servers, each with its own
``RECSITE_DATA_DIR`` and artifact cache, sharing PostgreSQL, Redis and a real S3
protocol server on loopback (moto's). A promotion reaches both; with the store stopped
they keep answering from what they loaded, ``/readyz`` says so, and promote is refused."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from recommender.exceptions import ArtifactStoreUnavailable
from recommender.models import Scope
from recommender.services.registry import model_version_promote
from tests.processes import Server, wait_until
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

SWITCH_WITHIN = 3.0
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hosts(start_server, s3_store, tmp_path) -> list[Server]:
    """Two hosts of two workers; a slow database poll, so a switch within 3 s comes from
    the Redis key and a download, not the fallback poll."""
    return [
        start_server(
            **s3_store.env,
            RECSITE_DATA_DIR=str(tmp_path / f"host-{name}"),
            RECSITE_ARTIFACT_CACHE_DIR=str(tmp_path / f"host-{name}" / "artifact-cache"),
            # Each host's own metrics: /metrics lists that host's workers only.
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"host-{name}" / "prometheus"),
            GUNICORN_WORKERS="2",
            RECSITE_SERVING_POLL_SECONDS="30",
        )
        for name in ("a", "b")
    ]


def wait_serving(
    hosts: list[Server], key: str, workers: set[tuple[str, str]], version: int, within: float
) -> float:
    """Ask both hosts concurrently until every worker of each (``(url, pid)``) has
    answered with ``version``; every answer must be a 200. Returns the seconds it took."""
    started = time.monotonic()
    switched: set[tuple[str, str]] = set()
    with ThreadPoolExecutor(max_workers=8) as pool:
        while time.monotonic() - started < within:
            asks = [(host, pool.submit(host.ask, key)) for host in hosts for _ in range(4)]
            for host, future in asks:
                response = future.result()
                assert response.status_code == 200, response.text
                if response.json()["model_version"] == version:
                    switched.add((host.url, response.headers["X-Recsite-Worker"]))
            if switched >= workers:
                return time.monotonic() - started
    pytest.fail(f"after {within} s only {sorted(switched)} of {sorted(workers)} serve v{version}")


def test_both_hosts_switch_on_promote_and_ride_out_a_store_outage(
    hosts, s3_store, make_api_client, settings, tmp_path
):
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    v2 = create_version(default_spec(seed=5), promote=False)
    v3 = create_version(default_spec(seed=6), promote=False)
    client = make_api_client(Scope.RECOMMENDATIONS_READ)
    key = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")
    for host in hosts:
        host.wait_ready()
    workers = {(host.url, pid) for host in hosts for pid in host.worker_pids(2)}
    wait_serving(hosts, key, workers, version=1, within=20)

    model_version_promote(version=v2, reason="two hosts")
    took = wait_serving(hosts, key, workers, version=2, within=SWITCH_WITHIN)
    print(f"promote: every worker of both hosts served v2 after {took:.2f} s")
    for name in ("a", "b"):  # each fetched it into its own cache
        assert (tmp_path / f"host-{name}" / "artifact-cache" / v2.artifact_sha256).is_dir()

    s3_store.server.stop()
    failed = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for response in pool.map(lambda i: hosts[i % 2].ask(key), range(80)):
            failed += response.status_code != 200 or response.json()["model_version"] != 2
    assert failed == 0

    # Promote is refused (503) although this process has v3 in its own cache: no host
    # could fetch it.
    with pytest.raises(ArtifactStoreUnavailable) as caught:
        model_version_promote(version=v3, reason="store down")
    assert caught.value.status == 503
    v2.refresh_from_db()
    assert v2.status == "active"

    def store_reported_down() -> bool:
        nonlocal ready
        ready = requests.get(f"{hosts[0].url}/readyz", timeout=10)
        return not ready.json()["checks"]["artifact_store"]["ok"]

    ready = None
    # each host probes the store at most every 5 s
    wait_until(store_reported_down, 15, "/readyz to report the store down")
    body = ready.json()
    assert ready.status_code == 200  # still answering: degraded, not unready
    assert body["degraded"] is True
    assert body["checks"]["artifact_store"]["kind"] == "s3"
    assert all(host.ask(key).status_code == 200 for host in hosts)
