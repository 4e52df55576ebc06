"""The training run lifecycle: the one-live-run slot, claim, report, finish, cancel, reap,
and the scheduled trigger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommender.families import FAMILIES
from recommender.models import Event, Recommender
from tests.factories import EventFactory, ModelVersionFactory, RecommenderFactory
from training.exceptions import (
    InvalidTrainingOptions,
    TrainingAlreadyRunning,
    TrainingRunNotCancellable,
    TrainingRunNotQueued,
    TrainingRunNotRunning,
)
from training.models import LOG_MAX_CHARS, RunStatus, TrainingRun, Trigger
from training.selectors import training_run_should_stop
from training.services import (
    LOG_TRUNCATED_MARKER,
    training_run_cancel,
    training_run_claim,
    training_run_create,
    training_run_fail,
    training_run_finish_cancelled,
    training_run_heartbeat,
    training_run_report,
    training_run_scheduled,
    training_run_succeed,
    training_runs_reap,
)
from training.tasks import run_scheduled_training

pytestmark = pytest.mark.django_db


def _create(recommender, **kwargs) -> TrainingRun:
    kwargs.setdefault("enqueue", False)
    return training_run_create(recommender=recommender, trigger=Trigger.CLI, **kwargs)


def _running(recommender=None) -> TrainingRun:
    run = _create(recommender or RecommenderFactory())
    return training_run_claim(run_id=run.pk, worker="host:1")


# --- Create and the slot -------------------------------------------------------------


def test_create_queues_the_run_and_enqueues_it_only_after_commit(
    django_capture_on_commit_callbacks,
):
    recommender = RecommenderFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = training_run_create(
            recommender=recommender, trigger=Trigger.API, actor_label="api-key:abc"
        )
    assert run.status == RunStatus.QUEUED
    assert run.triggered_by_label == "api-key:abc"
    assert len(callbacks) == 1


def test_create_without_enqueue_sends_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _create(RecommenderFactory(), enqueue=False)
    assert callbacks == []


def test_a_run_that_cannot_be_enqueued_fails_frees_the_slot_and_raises_a_503(
    monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr("recsite.celery.app.send_task", broker_down)
    recommender = RecommenderFactory()
    with pytest.raises(TrainingRunNotQueued) as exc:
        with django_capture_on_commit_callbacks(execute=True):
            run = training_run_create(recommender=recommender, trigger=Trigger.ADMIN)

    assert (exc.value.status, exc.value.code) == (503, "broker_unavailable")
    assert exc.value.detail == {"run_id": run.pk}
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "broker unreachable" in run.error
    assert _create(recommender).status == RunStatus.QUEUED


def test_a_second_create_raises_training_already_running_with_the_run_id():
    recommender = RecommenderFactory()
    first = _create(recommender)

    with pytest.raises(TrainingAlreadyRunning) as exc:
        _create(recommender)

    assert exc.value.status == 409
    assert exc.value.detail["run_id"] == first.pk
    assert TrainingRun.objects.filter(recommender=recommender).count() == 1
    # the slot is per recommender
    assert _create(RecommenderFactory()).status == RunStatus.QUEUED


def test_the_second_create_is_refused_while_the_first_runs_too():
    recommender = RecommenderFactory()
    first = _running(recommender)
    with pytest.raises(TrainingAlreadyRunning) as exc:
        _create(recommender)
    assert exc.value.detail == {
        "run_id": first.pk,
        "status": "running",
        "recommender": recommender.name,
    }


def test_the_database_refuses_two_live_runs_of_one_recommender():
    recommender = RecommenderFactory()
    TrainingRun.objects.create(recommender=recommender, trigger="cli", status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(recommender=recommender, trigger="cli", status="queued")
    # finished runs do not hold the slot
    TrainingRun.objects.create(recommender=recommender, trigger="cli", status="failed")
    TrainingRun.objects.create(recommender=recommender, trigger="cli", status="skipped")


def test_create_cleans_the_options():
    run = _create(
        RecommenderFactory(), options={"dry_run": True, "overrides": {"epochs": 5.0, "loss": "bpr"}}
    )
    assert run.options == {
        "dry_run": True,
        "no_promote": False,
        "overrides": {"epochs": 5, "loss": "bpr"},
    }
    assert run.hyperparameters == {
        **FAMILIES["lightfm"].defaults(),
        "family": "lightfm",
        "epochs": 5,
        "loss": "bpr",
        "num_threads": 2,
        "random_seed": 42,
    }


def test_create_records_another_family_with_the_recommenders_stored_values():
    recommender = RecommenderFactory(hyperparameters={"ease": {"lambda": 50.0}})
    run = _create(recommender, options={"algorithm": "ease", "overrides": {"top_k": 20}})
    assert run.options["algorithm"] == "ease"
    assert run.hyperparameters == {
        "family": "ease",
        "lambda": 50.0,
        "top_k": 20,
        "binary": True,
        "recency_half_life": 0.0,
        "num_threads": 2,
        "random_seed": 42,
    }


def test_create_records_an_auto_run_with_its_budget():
    recommender = RecommenderFactory(tuning_budget_seconds=45)
    run = _create(recommender, options={"algorithm": "auto", "overrides": {"random_seed": 3}})
    assert run.options["algorithm"] == "auto"
    assert run.hyperparameters == {
        "family": "auto",
        "tuning_budget_seconds": 45,
        "num_threads": 2,
        "random_seed": 3,
    }


def test_create_refuses_an_unknown_algorithm():
    with pytest.raises(InvalidTrainingOptions) as exc:
        _create(RecommenderFactory(), options={"algorithm": "deep"})
    assert "'deep' is not an algorithm" in exc.value.detail["algorithm"][0]


def test_a_recommender_created_without_choosing_is_auto_with_the_demo_budget():
    recommender = Recommender.objects.create(name="fresh")
    assert (recommender.algorithm, recommender.tuning_budget_seconds) == ("auto", 10)


def test_create_refuses_another_familys_parameter_under_its_name():
    with pytest.raises(InvalidTrainingOptions) as exc:
        _create(RecommenderFactory(), options={"overrides": {"lambda": 300}})
    message = exc.value.detail["overrides"]["lambda"][0]
    assert "'lambda' is not a hyper-parameter of lightfm" in message


@pytest.mark.parametrize(
    "options",
    [
        {"turbo": True},
        {"overrides": {"name": "x"}},
        {"overrides": {"loss": "hinge"}},
        {"overrides": {"epochs": -1}},
        {"overrides": ["epochs"]},
    ],
)
def test_create_refuses_bad_options_and_writes_nothing(options):
    recommender = RecommenderFactory()
    with pytest.raises(InvalidTrainingOptions) as exc:
        _create(recommender, options=options)
    assert exc.value.status == 400
    assert not TrainingRun.objects.filter(recommender=recommender).exists()


# --- Claim, heartbeat, report --------------------------------------------------------


def test_claiming_twice_trains_once():
    run = _create(RecommenderFactory())

    claimed = training_run_claim(run_id=run.pk, worker="host-a:12")
    again = training_run_claim(run_id=run.pk, worker="host-b:34")

    assert again is None
    assert claimed.status == RunStatus.RUNNING
    assert claimed.worker == "host-a:12"
    assert claimed.started_at is not None and claimed.heartbeat_at is not None
    run.refresh_from_db()
    assert run.worker == "host-a:12"


def test_a_run_cancelled_while_queued_is_never_claimed():
    run = _create(RecommenderFactory())
    training_run_cancel(run=run, actor_label="cli")
    assert training_run_claim(run_id=run.pk, worker="host:1") is None


def test_report_records_phase_progress_and_heartbeat():
    run = _running()
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    assert training_run_report(run_id=run.pk, phase="fit", progress=1.7, log="epoch 1/20")

    run.refresh_from_db()
    assert (run.phase, run.progress) == ("fit", 1.0)
    assert run.heartbeat_at > timezone.now() - timedelta(minutes=1)
    last_line = run.log.splitlines()[-1]
    assert last_line.endswith("Z epoch 1/20")


def test_report_caps_the_log_at_its_last_64_kb():
    run = _running()
    line = "x" * 999
    for number in range(100):
        training_run_report(run_id=run.pk, log=f"{number:03d} {line}")

    run.refresh_from_db()
    assert len(run.log) <= LOG_MAX_CHARS
    assert run.log.startswith(LOG_TRUNCATED_MARKER)
    assert run.log.splitlines()[-1].split(" ")[1] == "099"
    assert "000 x" not in run.log
    # every kept line is whole: "<timestamp> <number> x..."
    assert all(len(row.split(" ")[2]) == 999 for row in run.log.splitlines()[1:])


def test_a_reaped_run_ignores_late_reports_and_heartbeats():
    run = _running()
    training_run_fail(run_id=run.pk, error="boom")

    assert training_run_report(run_id=run.pk, phase="fit", log="late") is False
    assert training_run_heartbeat(run_id=run.pk) is False
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.phase != "fit"
    assert "late" not in run.log


# --- Finish --------------------------------------------------------------------------


def test_succeed_records_the_decision_and_the_version():
    run = _running()
    version = ModelVersionFactory(recommender=run.recommender)

    training_run_succeed(
        run=run,
        decision="promoted",
        decision_reason="beats the champion",
        version=version,
        metrics={"candidate": {"precision_at_k": 0.2}},
        phase_timings={"fit": 1.5},
    )

    run.refresh_from_db()
    assert (run.status, run.decision, run.version) == ("succeeded", "promoted", version)
    assert run.phase_timings == {"fit": 1.5} and run.finished_at is not None


def test_succeed_refuses_a_run_that_was_reaped():
    run = _running()
    training_runs_reap(stale_after=timedelta(seconds=-1))
    with pytest.raises(TrainingRunNotRunning):
        training_run_succeed(run=run, decision="promoted")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_fail_records_error_and_traceback_and_frees_the_slot():
    run = _running()
    assert training_run_fail(run_id=run.pk, error="ValueError: bad", traceback="Traceback ...")
    run.refresh_from_db()
    assert (run.status, run.error, run.traceback) == ("failed", "ValueError: bad", "Traceback ...")
    assert training_run_fail(run_id=run.pk, error="again") is False
    assert _create(run.recommender).status == RunStatus.QUEUED


# --- Cancel --------------------------------------------------------------------------


def test_cancel_a_queued_run_at_once_frees_the_slot():
    run = _create(RecommenderFactory())
    cancelled = training_run_cancel(run=run, actor_label="admin:ann")
    assert cancelled.status == RunStatus.CANCELLED
    assert "admin:ann" in cancelled.decision_reason
    assert _create(run.recommender).status == RunStatus.QUEUED


def test_cancel_a_running_run_flags_it_for_the_pipeline():
    run = _running()
    assert training_run_should_stop(run_id=run.pk) is False

    flagged = training_run_cancel(run=run, actor_label="cli")

    assert (flagged.status, flagged.cancel_requested) == (RunStatus.RUNNING, True)
    assert training_run_should_stop(run_id=run.pk) is True
    assert training_run_finish_cancelled(run_id=run.pk, phase_timings={"load": 0.1})
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.finished_at is not None


def test_cancel_refuses_a_finished_run():
    run = _running()
    training_run_succeed(run=run, decision="dry_run")
    with pytest.raises(TrainingRunNotCancellable) as exc:
        training_run_cancel(run=run, actor_label="cli")
    assert exc.value.detail["status"] == "succeeded"


# --- Reaper --------------------------------------------------------------------------


def test_the_reaper_fails_a_stale_running_run_and_frees_the_slot():
    stale = _running()
    stale_beat = timezone.now() - timedelta(minutes=30)
    TrainingRun.objects.filter(pk=stale.pk).update(heartbeat_at=stale_beat)
    alive = _running()
    old_queued = _create(RecommenderFactory())
    TrainingRun.objects.filter(pk=old_queued.pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )

    assert training_runs_reap(stale_after=timedelta(minutes=10)) == 1

    stale.refresh_from_db()
    assert stale.status == RunStatus.FAILED
    assert stale.error.startswith(f"worker lost: no heartbeat since {stale_beat.isoformat()}")
    assert stale.finished_at is not None
    alive.refresh_from_db()
    old_queued.refresh_from_db()
    assert (alive.status, old_queued.status) == (RunStatus.RUNNING, RunStatus.QUEUED)
    # the slot is free again
    assert _create(stale.recommender).status == RunStatus.QUEUED
    assert training_runs_reap(stale_after=timedelta(minutes=10)) == 0


# --- The scheduled trigger -----------------------------------------------------------


def _scheduled_recommender():
    return RecommenderFactory(schedule_cron="0 3 * * *", schedule_enabled=True)


def _last_succeeded(recommender, started_at):
    return TrainingRun.objects.create(
        recommender=recommender,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        decision="promoted",
        started_at=started_at,
        finished_at=started_at + timedelta(minutes=1),
    )


def test_a_scheduled_run_is_skipped_when_no_events_came_in_since_the_last_run():
    recommender = _scheduled_recommender()
    EventFactory.create_batch(3)
    now = timezone.now()
    Event.objects.update(ingested_at=now - timedelta(hours=2))
    last = _last_succeeded(recommender, started_at=now - timedelta(hours=1))

    run_scheduled_training(recommender.pk)

    skipped = TrainingRun.objects.filter(recommender=recommender).exclude(pk=last.pk).get()
    assert (skipped.status, skipped.trigger) == (RunStatus.SKIPPED, Trigger.SCHEDULE)
    assert "no new events" in skipped.decision_reason
    assert f"#{last.pk}" in skipped.decision_reason


def test_a_scheduled_run_is_queued_when_new_events_came_in(django_capture_on_commit_callbacks):
    recommender = _scheduled_recommender()
    _last_succeeded(recommender, started_at=timezone.now() - timedelta(hours=1))
    EventFactory()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = training_run_scheduled(recommender_id=recommender.pk)

    assert (run.status, run.trigger, run.triggered_by_label) == ("queued", "schedule", "schedule")
    assert len(callbacks) == 1


def test_a_scheduled_run_is_skipped_while_another_run_is_live():
    recommender = _scheduled_recommender()
    EventFactory()
    live = _create(recommender)

    run = training_run_scheduled(recommender_id=recommender.pk)

    assert run.status == RunStatus.SKIPPED
    assert f"run #{live.pk} is already queued" in run.decision_reason


def test_a_scheduled_run_is_skipped_without_any_event_or_when_disabled():
    recommender = _scheduled_recommender()
    assert "no events" in training_run_scheduled(recommender_id=recommender.pk).decision_reason
    EventFactory()
    recommender.schedule_enabled = False
    recommender.save()
    assert "disabled" in training_run_scheduled(recommender_id=recommender.pk).decision_reason
    assert training_run_scheduled(recommender_id=10**9) is None


# --- Real concurrency (PostgreSQL pass) ----------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_create_exactly_one_run(postgres):
    import threading

    from django.db import connection

    recommender = RecommenderFactory()
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def trigger() -> None:
        try:
            barrier.wait()
            outcomes.append(_create(recommender).pk)
        except TrainingAlreadyRunning as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    created = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, TrainingAlreadyRunning)]
    assert len(created) == 1 and len(refused) == 3
    assert {exc.detail["run_id"] for exc in refused} == set(created)
