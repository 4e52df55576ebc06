"""Hot swap across a real multi-worker gunicorn on PostgreSQL + Redis.

Runs in the second pass of ``scripts/test``. The server is a subprocess pointed at the
test database and the same Redis; this test promotes and rolls back through the services
(as the admin does) and watches every worker's answers, telling workers apart by the
``X-Recsite-Worker`` header (their pid)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from recommender.models import Item, Scope
from recommender.services.registry import model_version_promote, model_version_rollback
from tests.recommender.serving_helpers import corrupt, create_catalog, create_version, default_spec

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
SWITCH_WITHIN = 3.0
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with ``recsite/gunicorn.conf.py`` in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.log = log_path.open("ab")
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.process = subprocess.Popen(
            [str(gunicorn), "-c", "recsite/gunicorn.conf.py", "recsite.wsgi"],
            cwd=ROOT,
            env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited ({self.process.returncode}):\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"gunicorn never became ready:\n{self.output()}")

    def worker_pids(self, expected: int, timeout: float = 30.0) -> set[str]:
        """Every live worker's pid, from the per-worker ``liveall`` gauge in /metrics."""
        deadline = time.monotonic() + timeout
        pids: set[str] = set()
        while time.monotonic() < deadline:
            text = requests.get(f"{self.url}/metrics", timeout=5).text
            pids = set(re.findall(r'recsite_model_loaded_version\{pid="(\d+)"', text))
            if len(pids) >= expected:
                return pids
            time.sleep(0.3)
        pytest.fail(f"only {len(pids)} of {expected} workers reported:\n{self.output()}")


@pytest.fixture
def server_env(subprocess_env, tmp_path) -> dict[str, str]:
    return {
        **subprocess_env,
        "DEBUG": "false",
        "SECRET_KEY": "integration-test-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GUNICORN_WORKERS": str(WORKERS),
        "GUNICORN_THREADS": "2",
        "GUNICORN_LOG_LEVEL": "warning",
        # A slow database poll: the switch within 3 s must come from the Redis key.
        "RECSITE_SERVING_POLL_SECONDS": "30",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def server(server_env, tmp_path) -> Iterator[Server]:
    started = Server(server_env, tmp_path / "gunicorn.log", free_port())
    try:
        yield started
    finally:
        started.kill()


def ask(server: Server, key: str, user: str = "user-3", **params) -> requests.Response:
    """One request on a new connection, so any worker may take it."""
    return requests.get(
        f"{server.url}/api/v1/recommendations/{user}",
        params=params,
        headers={"Authorization": f"Api-Key {key}", "Connection": "close"},
        timeout=10,
    )


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
    corrupt(v3)
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

    model_version_promote(version=v3, reason="integration: corrupted")
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
