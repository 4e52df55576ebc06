"""Training through a real Celery worker process on PostgreSQL + Redis.

Runs in the second pass of ``scripts/test`` (DATABASE_URL and REDIS_URL set). The worker
is a subprocess pointed at the test database; the test talks to it only through the API,
the broker and the database, as production does. Killed workers, redeliveries and two
beats are in ``test_faults_worker.py``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recommender.models import Scope, VersionStatus
from tests.processes import Worker
from training.models import RunStatus, TrainingRun

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(run_id: int, predicate, worker: Worker, timeout: float = 90.0) -> TrainingRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = TrainingRun.objects.get(pk=run_id)
        if predicate(run):
            return run
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited early:\n{worker.output()}")
        time.sleep(0.2)
    pytest.fail(f"run {run_id} never reached the expected state: {run.status} {run.phase}\n"
                f"{worker.output()}")  # fmt: skip


def test_a_run_triggered_through_the_api_ends_in_an_active_version(
    worker_recommender, start_worker, make_api_client
):
    worker = start_worker()
    client = make_api_client(Scope.TRAINING_WRITE)
    response = client.post("/api/v1/training-runs", {}, format="json")
    assert response.status_code == 202
    run_id = response.json()["id"]

    second = client.post("/api/v1/training-runs", {}, format="json")
    assert second.status_code == 409
    assert second.json()["error"]["detail"]["run_id"] == run_id

    run = wait_for(run_id, lambda r: r.status not in ("queued", "running"), worker)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.version.status == VersionStatus.ACTIVE
    assert run.worker  # claimed by the worker process, not this one
    detail = client.get(f"/api/v1/training-runs/{run_id}").json()
    assert (detail["decision"], detail["version"]) == ("promoted", 1)
