"""Queued runs whose broker message was lost are sent again by the reaper; a broker that
refuses a new run's message is a 503 for the API. (The same against a real Redis that
restarts: ``tests/recsite/test_faults_redis.py``.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from recommender.models import Scope
from tests.factories import RecommenderFactory
from training import services
from training.models import RunStatus, TrainingRun, Trigger
from training.services import training_run_claim, training_run_create, training_runs_requeue
from training.tasks import reap_stale_runs

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """The run ids sent to the broker (instead of a broker)."""
    ids: list[int] = []
    monkeypatch.setattr(services, "_send", ids.append)
    return ids


def queued_run(*, sent_ago: timedelta, enqueue: bool = True) -> TrainingRun:
    run = training_run_create(
        recommender=RecommenderFactory(), trigger=Trigger.API, enqueue=enqueue
    )
    if enqueue:
        TrainingRun.objects.filter(pk=run.pk).update(enqueued_at=timezone.now() - sent_ago)
    return run


def test_a_run_queued_too_long_is_sent_again_once_per_period(sent):
    run = queued_run(sent_ago=timedelta(minutes=11))
    sent.clear()  # the send at creation
    called_at = timezone.now()

    assert training_runs_requeue(queued_for=timedelta(minutes=10)) == 1
    assert training_runs_requeue(queued_for=timedelta(minutes=10)) == 0

    assert sent == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.enqueued_at >= called_at  # the re-send restarts its queued time
    assert "may have been lost); sending it again" in run.log


def test_recent_claimed_and_foreground_runs_are_not_sent_again(sent):
    queued_run(sent_ago=timedelta(minutes=1))
    claimed = queued_run(sent_ago=timedelta(hours=1))
    training_run_claim(run_id=claimed.pk, worker="host:1")
    queued_run(sent_ago=timedelta(hours=1), enqueue=False)  # the CLI claims its own run
    sent.clear()

    assert training_runs_requeue(queued_for=timedelta(minutes=10)) == 0
    assert sent == []


def test_a_send_that_fails_leaves_the_run_queued_for_the_next_round(monkeypatch):
    run = queued_run(sent_ago=timedelta(hours=1))

    def broker_down(run_id: int) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(services, "_send", broker_down)
    assert training_runs_requeue(queued_for=timedelta(minutes=10)) == 0
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_the_reaper_task_sends_lost_runs_again(sent, settings):
    settings.RECSITE_RUN_REQUEUE_AFTER_SECONDS = 60
    run = queued_run(sent_ago=timedelta(minutes=2))
    sent.clear()
    reap_stale_runs()
    assert sent == [run.pk]


@pytest.mark.django_db(transaction=True)  # the run commits, then its message is sent
def test_starting_a_run_while_the_broker_is_down_is_a_503_and_frees_the_slot(
    monkeypatch, make_api_client
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr("recsite.celery.app.send_task", broker_down)
    client = make_api_client(Scope.TRAINING_WRITE)
    RecommenderFactory(name="default")
    response = client.post("/api/v1/training-runs", {}, format="json")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "broker_unavailable"
    run = TrainingRun.objects.get(pk=error["detail"]["run_id"])
    assert run.status == RunStatus.FAILED
    assert "Connection refused" in run.error
    assert training_run_create(recommender=run.recommender, trigger=Trigger.API, enqueue=False)
