"""Redis (cache and Celery broker) stopped and restarted under a serving gunicorn and a
training worker.

A private ``redis-server`` that keeps nothing on disk (never the shared one) is the
cache and broker of a multi-worker gunicorn and a Celery worker; the database is the
test database. Serving must keep answering from the loaded models while Redis is down
and still switch versions, through its database poll; starting a run while the broker
is down is a 503 with the error body; a queued run whose message a Redis restart lost
is sent again by the reaper and trains exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
import requests

from recommender.models import ModelVersion, Recommender, Scope
from recommender.services import demo_data_generate
from recommender.services.registry import model_version_promote, model_version_rollback
from tests.private_servers import PrivateRedis, private_redis
from tests.processes import ROOT, Server, Worker
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec
from training.models import RunStatus, TrainingRun

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

WORKERS = 3
POLL_SECONDS = 2


@pytest.fixture
def private(redis_url, tmp_path) -> Iterator[PrivateRedis]:
    """A private Redis; ``redis_url`` only makes the test skip in the SQLite pass."""
    with private_redis(tmp_path / "redis.log") as server:
        yield server


def api_key(make_api_client, scope: str) -> str:
    client = make_api_client(scope)
    return client._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")


@dataclass
class Load:
    """Threads asking for recommendations until stopped; every answer is recorded as
    (time, status, model version, worker pid)."""

    server: Server
    key: str
    answers: list[tuple[float, int, int | None, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                response = self.server.ask(self.key)
            except requests.RequestException as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            version = response.json().get("model_version") if response.ok else None
            worker = response.headers.get("X-Recsite-Worker", "")
            self.answers.append((time.monotonic(), response.status_code, version, worker))

    def switched_at(self, version: int, since: float, pids: set[str]) -> float | None:
        """When the last of ``pids`` first answered with ``version`` after ``since``."""
        first: dict[str, float] = {}
        for at, _, answered, pid in list(self.answers):
            if at >= since and answered == version:
                first.setdefault(pid, at)
        return max(first[pid] for pid in pids) if pids <= first.keys() else None

    def wait_switched(self, version: int, since: float, pids: set[str], within: float) -> float:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            at = self.switched_at(version, since, pids)
            if at is not None:
                return at - since
            time.sleep(0.1)
        pytest.fail(f"not every worker served v{version} within {within} s")


def test_serving_switches_versions_by_the_database_poll_while_redis_is_down(
    private, start_server, make_api_client, settings
):
    spec = default_spec()
    create_catalog(spec)
    v1 = create_version(spec)
    v2 = create_version(default_spec(seed=5), promote=False)
    key = api_key(make_api_client, Scope.RECOMMENDATIONS_READ)
    server = start_server(
        REDIS_URL=private.url(),
        GUNICORN_WORKERS=str(WORKERS),
        RECSITE_SERVING_POLL_SECONDS=str(POLL_SECONDS),
    )
    server.wait_ready()
    pids = server.worker_pids(WORKERS)
    # Promote as an admin process of this deployment would: through the same (dead) cache.
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": private.url()}}

    load = Load(server, key)
    threads = [threading.Thread(target=load.run, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        private.stop()
        time.sleep(1)  # requests keep coming with the cache gone
        promoted = time.monotonic()
        model_version_promote(version=v2, reason="fault test: Redis is down")
        took_down = load.wait_switched(2, promoted, pids, within=POLL_SECONDS * 5)
        answers_down = sum(1 for at, *_ in load.answers if at >= promoted)

        private.start()
        time.sleep(1)
        rolled_back = time.monotonic()
        model_version_rollback(recommender=v1.recommender, reason="fault test: Redis is back")
        took_up = load.wait_switched(1, rolled_back, pids, within=POLL_SECONDS * 5)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=15)

    statuses = Counter(status for _, status, _, _ in load.answers)
    print(
        f"\n{len(load.answers)} answers {dict(statuses)}, {len(load.errors)} connection errors; "
        f"with Redis down every worker served v2 {took_down:.2f} s after the promote "
        f"({answers_down} answers meanwhile); with Redis back, v1 {took_up:.2f} s after the "
        "rollback"
    )
    assert load.errors == []
    assert statuses == Counter({200: len(load.answers)})


def reaper_via_broker(env: dict[str, str]) -> None:
    """Send ``reap_stale_runs`` through the broker, as beat does on its schedule."""
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "recsite", "call", "training.tasks.reap_stale_runs"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def wait_for_run(run_id: int, statuses: set[str], worker: Worker, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = TrainingRun.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.2)
    pytest.fail(f"run {run_id} stayed {run.status} ({run.phase}):\n{worker.output()}")


def test_runs_with_redis_down_and_restarted_are_refused_or_sent_again_and_train_once(
    private, start_server, start_worker, worker_env, make_api_client
):
    demo_data_generate(users=200, items=100, events=12_000, seed=11, days=28)
    for name in ("default", "other"):
        Recommender.objects.update_or_create(
            name=name,
            defaults={
                "algorithm": "lightfm",
                "hyperparameters": {"lightfm": {"epochs": 5, "no_components": 16}},
            },
        )
    key = api_key(make_api_client, Scope.TRAINING_WRITE)
    env = {"REDIS_URL": private.url(), "RECSITE_RUN_REQUEUE_AFTER_SECONDS": "1"}
    server = start_server(**env, GUNICORN_WORKERS="2")
    worker = start_worker(**env)
    server.wait_ready()

    def start_run(recommender: str, **options) -> requests.Response:
        return requests.post(
            f"{server.url}/api/v1/training-runs",
            json={"recommender": recommender, **options},
            headers={"Authorization": f"Api-Key {key}"},
            timeout=30,
        )

    # The broker is down: a clear 503, the run recorded as failed, the slot free.
    private.stop()
    asked = time.monotonic()
    refused = start_run("default")
    refused_in = time.monotonic() - asked
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "broker_unavailable"
    assert TrainingRun.objects.get(pk=error["detail"]["run_id"]).status == RunStatus.FAILED
    private.start()

    # The worker is busy with a long run; the next run's message waits in Redis, which
    # restarts and loses it.
    busy = start_run("default", overrides={"epochs": 150})
    assert busy.status_code == 202, busy.text
    busy_id = busy.json()["id"]
    deadline = time.monotonic() + 60
    while "step 3/" not in TrainingRun.objects.get(pk=busy_id).log:
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.2)
    waiting = start_run("other")
    assert waiting.status_code == 202, waiting.text
    waiting_id = waiting.json()["id"]
    private.stop()
    private.start()
    assert redis.Redis.from_url(private.url()).llen("training") == 0  # the message is gone
    assert TrainingRun.objects.get(pk=busy_id).status == RunStatus.RUNNING  # still busy

    busy_run = wait_for_run(busy_id, {RunStatus.SUCCEEDED, RunStatus.FAILED}, worker)
    assert busy_run.status == RunStatus.SUCCEEDED, busy_run.error
    time.sleep(2)
    assert TrainingRun.objects.get(pk=waiting_id).status == RunStatus.QUEUED  # nobody has it

    requeued = time.monotonic()
    reaper_via_broker({**worker_env, **env})
    run = wait_for_run(waiting_id, {RunStatus.SUCCEEDED, RunStatus.FAILED}, worker)
    trained_in = time.monotonic() - requeued
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "sending it again" in run.log
    assert run.log.count("claimed by") == 1
    assert ModelVersion.objects.filter(recommender__name="other").count() == 1
    print(
        f"\nPOST with the broker down: {refused.status_code} {error['code']} in "
        f"{refused_in:.2f} s; the run whose message was lost trained {trained_in:.1f} s after "
        f"the reaper was sent; the busy run's fit took {busy_run.phase_timings.get('fit')} s"
    )
