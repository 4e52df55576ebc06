"""Faults around the Celery worker and beat (issue #7): a worker killed mid-fit, a run
outliving the broker's visibility timeout, two beat processes started by mistake.

The integration tests run real ``celery worker`` and ``celery beat`` processes on the
test database and Redis (the PostgreSQL + Redis pass) and kill them for real; the unit
tests at the top check the services those faults end in, on any database."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from django.db.models import Count
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from recommender.models import ModelVersion, Scope, VersionStatus
from recommender.services import event_batch_ingest
from recsite.celery import app as celery_app
from tests.factories import RecommenderFactory
from tests.processes import Process
from training.models import LIVE_STATUSES, RunStatus, TrainingRun, Trigger
from training.schedules import SCHEDULED_TASK, periodic_task_name
from training.services import (
    RUN_TRAINING_TASK,
    TRAINING_QUEUE,
    training_run_claim,
    training_run_create,
    training_run_worker_lost,
)

SHORT_VISIBILITY = "tests.training.short_visibility_settings"
STALE_AFTER = 5  # seconds without a heartbeat before the reaper fails a run
REAPER_INTERVAL = 1  # seconds between two reaper passes (beat)
REAPER_ENV = {
    "RECSITE_RUN_STALE_AFTER_SECONDS": str(STALE_AFTER),
    "RECSITE_REAPER_INTERVAL_SECONDS": str(REAPER_INTERVAL),
}
# A replacement worker has to start before it can run the reaper: room for a slow start
# on a loaded machine. The production default for STALE_AFTER alone is 600 s.
WORKER_START_ALLOWANCE = 30
IGNORED_DELIVERY = re.compile(r"delivery to (\S+) ignored: the run is (\w+), not queued")


# --- The services the faults end in ------------------------------------------------


def _claimed(worker: str) -> TrainingRun:
    run = training_run_create(recommender=RecommenderFactory(), trigger=Trigger.CLI, enqueue=False)
    return training_run_claim(run_id=run.pk, worker=worker)


@pytest.mark.django_db
def test_a_lost_pool_process_fails_its_run_at_once_and_frees_the_slot():
    run = _claimed("host:11")

    assert training_run_worker_lost(run_id=run.pk, worker="host:11", error="worker lost: x")

    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.FAILED, "worker lost: x")
    assert run.finished_at is not None and run.log.endswith("failed: worker lost: x\n")
    again = training_run_create(recommender=run.recommender, trigger=Trigger.CLI, enqueue=False)
    assert again.status == RunStatus.QUEUED


@pytest.mark.django_db
def test_a_lost_duplicate_delivery_never_fails_the_run_another_process_holds():
    run = _claimed("host:11")

    assert not training_run_worker_lost(run_id=run.pk, worker="host:22", error="worker lost: x")

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


@pytest.mark.django_db
def test_a_process_lost_before_its_claim_fails_the_queued_run():
    run = training_run_create(recommender=RecommenderFactory(), trigger=Trigger.API, enqueue=False)

    assert training_run_worker_lost(run_id=run.pk, worker="host:11", error="worker lost: x")

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


@pytest.mark.django_db
def test_a_refused_claim_is_recorded_on_the_run():
    run = _claimed("host-a:12")

    assert training_run_claim(run_id=run.pk, worker="host-b:34") is None

    run.refresh_from_db()
    assert IGNORED_DELIVERY.findall(run.log) == [("host-b:34", "running")]
    assert (run.status, run.worker) == (RunStatus.RUNNING, "host-a:12")


# --- Real workers and beats --------------------------------------------------------


class Beat(Process):
    """``celery beat`` with django-celery-beat's DatabaseScheduler and no pid file (two
    of them on one host is the mistake under test)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(
            [
                sys.executable, "-m", "celery", "-A", "recsite", "beat", "-l", "info",
                "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                "--max-interval", "1",
            ],
            env, log_path,
        )  # fmt: skip

    def kill(self, graceful: bool = True) -> None:
        super().kill(graceful=graceful)

    def wait_started(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "beat: Starting..." not in self.output(10**6):
            if not self.alive() or time.monotonic() > deadline:
                pytest.fail(f"beat did not start:\n{self.output()}")
            time.sleep(0.1)

    def sent(self, task: str) -> int:
        """How many times this beat sent ``task``, from its log."""
        return self.log_path.read_text(errors="replace").count(f"({task})")


@pytest.fixture
def start_beat(worker_env, tmp_path) -> Iterator[Callable[..., Beat]]:
    beats: list[Beat] = []

    def start(**env: str) -> Beat:
        beat = Beat({**worker_env, **env}, tmp_path / f"beat-{len(beats)}.log")
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.kill(graceful=False)


def post_run(client, **options) -> int:
    response = client.post("/api/v1/training-runs", options, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def wait_run(
    run_id: int,
    predicate: Callable[[TrainingRun], bool],
    processes: list[Process],
    timeout: float = 90.0,
) -> TrainingRun:
    """Poll the run until ``predicate`` holds; fail early when a process died."""
    deadline = time.monotonic() + timeout
    while True:
        run = TrainingRun.objects.select_related("version").get(pk=run_id)
        if predicate(run):
            return run
        for process in processes:
            if not process.alive():
                pytest.fail(f"{process.log_path.name} exited early:\n{process.output()}")
        if time.monotonic() > deadline:
            logs = "\n".join(process.output() for process in processes)
            pytest.fail(f"run {run_id} stuck at {run.status}/{run.phase}:\n{run.log}\n{logs}")
        time.sleep(0.1)


def finished(run: TrainingRun) -> bool:
    return run.status not in LIVE_STATUSES


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_fit_fails_its_run_and_nothing_trains_twice(
    worker_recommender, start_worker, start_beat, make_api_client
):
    """Three rounds: SIGKILL the pool process, then the whole worker (the replacement
    has a 1 s visibility timeout, so the dead worker's unacknowledged message comes back
    for real), then the pool process again. Each killed run ends failed ("worker
    lost"), the slot frees itself, the next run succeeds, the active version is never
    touched and no run id gets a second version."""
    start_beat(**REAPER_ENV)
    worker = start_worker(**REAPER_ENV)
    client = make_api_client(Scope.TRAINING_WRITE)
    champion = wait_run(post_run(client), finished, [worker]).version
    assert champion.status == VersionStatus.ACTIVE
    doomed_runs: list[int] = []

    for kind in ("pool process", "whole worker", "pool process"):
        doomed = post_run(client, overrides={"epochs": 400})
        doomed_runs.append(doomed)
        wait_run(doomed, lambda r: r.phase == "fit" and "step 3/" in r.log, [worker])
        if kind == "pool process":
            (child,) = worker.pool_children()
            os.kill(child, signal.SIGKILL)
            killed = time.monotonic()
        else:
            worker.kill()
            killed = time.monotonic()
            worker = start_worker(DJANGO_SETTINGS_MODULE=SHORT_VISIBILITY, **REAPER_ENV)
        run = wait_run(doomed, finished, [worker], timeout=STALE_AFTER + 60)
        lost_after = time.monotonic() - killed

        assert run.status == RunStatus.FAILED and run.error.startswith("worker lost"), run.error
        if kind == "pool process":  # failed by the worker's main process, at once
            assert "WorkerLostError" in run.error, run.error
        else:  # failed by the reaper, the only one left to notice
            assert "no heartbeat since" in run.error, run.error
            assert lost_after < STALE_AFTER + REAPER_INTERVAL + WORKER_START_ALLOWANCE
        assert run.version is None
        champion.refresh_from_db()
        assert champion.status == VersionStatus.ACTIVE
        print(f"{kind} killed: run #{doomed} failed {lost_after:.2f} s later: {run.error}")

        after = wait_run(post_run(client), finished, [worker])  # 202: the slot is free
        assert after.status == RunStatus.SUCCEEDED, after.error
        assert after.version.number == champion.number + 1
        champion = after.version
        if kind == "whole worker":
            # The message the dead worker never acknowledged is delivered again: refused.
            again = wait_run(doomed, lambda r: "ignored" in r.log, [worker], timeout=30)
            assert again.status == RunStatus.FAILED and again.version is None

    assert sorted(ModelVersion.objects.values_list("number", flat=True)) == [1, 2, 3, 4]
    produced = TrainingRun.objects.filter(version__isnull=False)
    assert produced.values("version").distinct().count() == produced.count() == 4
    assert not TrainingRun.objects.filter(pk__in=doomed_runs, version__isnull=False).exists()
    for run in TrainingRun.objects.all():
        assert run.log.count("claimed by ") <= 1, run.log  # no run id ever trained twice


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_at_the_hard_time_limit_fails_at_once(
    worker_recommender, start_worker, make_api_client
):
    """The hard limit (here 4 s, no soft limit: ``short_time_limit_settings``) kills the
    pool process: the worker's main process fails the run at once, without waiting for
    the reaper (no beat runs here, and runs go stale only after 600 s).

    The message is sent without limits, so the worker's own apply: ``send_task`` would
    otherwise copy this process's (3 h soft), and a soft limit defers the hard one."""
    worker = start_worker(DJANGO_SETTINGS_MODULE="tests.training.short_time_limit_settings")
    client = make_api_client(Scope.TRAINING_WRITE)
    # Far more epochs than 4 s allow (400 take 4-15 s here; 1000 is the schema's maximum).
    doomed = training_run_create(
        recommender=worker_recommender,
        trigger=Trigger.API,
        options={"overrides": {"epochs": 1000}},
        enqueue=False,
    ).pk
    celery_app.send_task(
        RUN_TRAINING_TASK,
        args=[doomed],
        queue=TRAINING_QUEUE,
        time_limit=None,
        soft_time_limit=None,
    )
    wait_run(doomed, lambda r: r.status == RunStatus.RUNNING, [worker])
    started = time.monotonic()
    run = wait_run(doomed, finished, [worker], timeout=60)
    print(f"failed {time.monotonic() - started:.2f} s after it started running: {run.error}")
    assert run.status == RunStatus.FAILED, run.status
    assert run.error.startswith("worker lost") and "hard time limit (4 s)" in run.error
    assert run.version is None
    assert client.post("/api/v1/training-runs", {}, format="json").status_code == 202


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_outliving_the_visibility_timeout_is_redelivered_but_trains_once(
    worker_recommender, start_worker, make_api_client
):
    """Misconfigured on purpose (the settings refuse it): two workers whose Redis
    visibility timeout (1 s) is far below the time limits. The run's message is handed
    to the second worker while the first still trains it; the claim refuses it."""
    workers = [start_worker(DJANGO_SETTINGS_MODULE=SHORT_VISIBILITY) for _ in range(2)]
    client = make_api_client(Scope.TRAINING_WRITE)
    # Long enough for the redelivery to come while it trains, on a loaded machine too
    # (200 epochs of 16 components finished first once under a parallel suite): wider
    # factors make each epoch slower without more progress lines (1,000 epochs overflowed
    # the run log's 64 KB, dropping the "claimed by" line this test counts).
    run_id = post_run(client, overrides={"epochs": 200, "no_components": 128})

    duplicate = wait_run(run_id, lambda r: "ignored" in r.log, workers, timeout=60)
    assert duplicate.status == RunStatus.RUNNING  # the redelivery came while it trained
    run = wait_run(run_id, finished, workers)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.log.count("claimed by ") == 1
    ignored = IGNORED_DELIVERY.findall(run.log)
    first_worker, first_status = ignored[0]
    assert first_status == "running" and first_worker != run.worker  # the other worker's
    assert any(f"training run {run_id}: delivery to" in w.output(10**6) for w in workers)
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [1]
    assert run.version.number == 1
    claimed, refused = (_logged_at(run.log, text) for text in ("claimed by", "ignored"))
    print(
        f"run #{run_id} ran {run.duration_seconds:.1f} s; redelivered and refused "
        f"{(refused - claimed).total_seconds():.2f} s after its claim; refusals: {ignored}"
    )


def _logged_at(log: str, text: str) -> datetime:
    """The time stamp of the first line of a run's log containing ``text``."""
    line = next(line for line in log.splitlines() if text in line)
    return datetime.fromisoformat(line.split(" ", 1)[0])


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_beats_never_train_twice_at_once_and_record_the_duplicate_triggers(
    worker_recommender, start_worker, start_beat
):
    """Two ``celery beat`` processes fire the same schedule every 2 s for ~12 s while
    new events keep arriving (so every trigger has something to train). Sampled all
    along: never more than one queued-or-running run; every trigger sent is recorded as
    a run or a skipped run, and some are skipped because the other beat's run was live."""
    recommender = worker_recommender
    recommender.hyperparameters = {"lightfm": {"epochs": 3, "no_components": 16}}
    recommender.schedule_enabled = True
    recommender.save()
    every = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name=periodic_task_name(recommender),
        task=SCHEDULED_TASK,
        interval=every,
        args=json.dumps([recommender.pk]),
    )
    start_worker(concurrency=2)
    beats = [start_beat(), start_beat()]
    for beat in beats:
        beat.wait_started()

    most_live = samples = 0
    deadline = time.monotonic() + 12
    next_event = 0.0
    while time.monotonic() < deadline:
        live = (
            TrainingRun.objects.filter(status__in=LIVE_STATUSES)
            .values("recommender")
            .annotate(n=Count("id"))
        )
        most_live = max([most_live, *(row["n"] for row in live)])
        samples += 1
        if time.monotonic() >= next_event:
            event_batch_ingest(raw_events=[_event(samples)])
            next_event = time.monotonic() + 1
        time.sleep(0.05)
    for beat in beats:
        beat.kill()
    sent = [beat.sent(SCHEDULED_TASK) for beat in beats]
    assert min(sent) >= 3, [beat.output() for beat in beats]  # both beats really fired

    triggers = TrainingRun.objects.filter(recommender=recommender, trigger=Trigger.SCHEDULE)
    deadline = time.monotonic() + 60
    while triggers.count() < sum(sent) or triggers.filter(status__in=LIVE_STATUSES).exists():
        assert time.monotonic() < deadline, (sum(sent), list(triggers.values("status")))
        time.sleep(0.2)

    assert most_live == 1
    assert triggers.count() == sum(sent)  # every trigger recorded, none lost
    trained = triggers.exclude(status=RunStatus.SKIPPED)
    duplicates = triggers.filter(status=RunStatus.SKIPPED, decision_reason__contains="already")
    assert trained.exists() and duplicates.exists()
    assert set(trained.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}, list(
        trained.values_list("error", flat=True)
    )
    assert ModelVersion.objects.count() == trained.filter(version__isnull=False).count()
    print(
        f"beats sent {sent}; {samples} samples, at most {most_live} live run; "
        f"{trained.count()} trained, {duplicates.count()} skipped as duplicates, "
        f"{triggers.count() - trained.count() - duplicates.count()} skipped otherwise"
    )


def _event(n: int) -> dict[str, str]:
    return {
        "event_id": f"beat-test-{n}",
        "user_id": f"demo-user-{n % 50 + 1}",
        "item_id": f"demo-item-{n % 40 + 1}",
        "type": "view",
        "timestamp": timezone.now().isoformat(),
    }
