"""Training through a real Celery worker process on PostgreSQL + Redis.

Runs in the second pass of ``scripts/test`` (DATABASE_URL and REDIS_URL set). The worker
is a subprocess pointed at the test database; the test talks to it only through the API,
the broker and the database, as production does."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from recommender.models import ModelVersion, Recommender, Scope, VersionStatus
from recommender.services import demo_data_generate
from tests.processes import Worker
from training.models import RunStatus, TrainingRun
from training.services import training_runs_reap

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def recommender(worker_env) -> Recommender:
    demo_data_generate(users=200, items=100, events=12_000, seed=11, days=28)
    # get_or_create: a transactional test's flush also removes the migration's row.
    recommender, _ = Recommender.objects.get_or_create(name="default")
    recommender.epochs = 5
    recommender.no_components = 16
    recommender.save()
    return recommender


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
    recommender, start_worker, make_api_client
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


def test_a_worker_killed_mid_fit_is_reaped_and_the_next_run_works(
    recommender, start_worker, make_api_client
):
    client = make_api_client(Scope.TRAINING_WRITE)
    worker = start_worker()
    first = client.post("/api/v1/training-runs", {}, format="json").json()["id"]
    champion = wait_for(first, lambda r: r.status == RunStatus.SUCCEEDED, worker).version

    doomed = client.post(
        "/api/v1/training-runs", {"overrides": {"epochs": 400}}, format="json"
    ).json()["id"]
    wait_for(doomed, lambda r: r.phase == "fit" and "epoch 3/" in r.log, worker)
    worker.kill()

    run = TrainingRun.objects.get(pk=doomed)
    assert run.status == RunStatus.RUNNING  # nobody knows yet
    time.sleep(1.5)
    assert training_runs_reap(stale_after=timedelta(seconds=1)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("worker lost")
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [1]
    champion.refresh_from_db()
    assert champion.status == VersionStatus.ACTIVE

    worker = start_worker()
    response = client.post("/api/v1/training-runs", {}, format="json")
    assert response.status_code == 202  # the slot freed itself
    run = wait_for(response.json()["id"], lambda r: r.status == RunStatus.SUCCEEDED, worker)
    assert run.version.number == 2
    # The killed run's message may be redelivered to the new worker: it must not train.
    assert TrainingRun.objects.get(pk=doomed).status == RunStatus.FAILED
    assert ModelVersion.objects.filter(number__gt=2).count() == 0
