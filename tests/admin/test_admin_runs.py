"""Recommenders and training runs in the admin: schedule editing, "Start a run now" (and
its 409), the run page, progress JSON, cancel, read-only history, permissions."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from tests.factories import ModelVersionFactory, RecommenderFactory, TrainingRunFactory
from training.models import RunStatus, TrainingRun, Trigger

pytestmark = pytest.mark.django_db

START = "training.start_training_run"


def change_url(recommender) -> str:
    return reverse("admin:recommender_recommender_change", args=[recommender.pk])


def start_url(recommender) -> str:
    return reverse("admin:recommender_recommender_start_run", args=[recommender.pk])


def run_url(run) -> str:
    return reverse("admin:training_trainingrun_change", args=[run.pk])


def cancel_url(run) -> str:
    return reverse("admin:training_trainingrun_cancel", args=[run.pk])


def form_data(recommender, **changes) -> dict:
    """The recommender's change form as the browser would post it."""
    data = {
        "name": recommender.name,
        "description": "",
        "schedule_cron": "",
        "schedule_timezone": "UTC",
        "algorithm": "lightfm",
        "lightfm__no_components": 16,
        "lightfm__epochs": 3,
        "tuning_budget_seconds": 10,
        "num_threads": 1,
        "random_seed": 1,
        "event_weights": '{"view": 1, "like": 3}',
        "duplicate_aggregation": "sum",
        "window_days": "",
        "use_item_features": "on",
        "holdout_strategy": "per_user_recent",
        "holdout_fraction": 0.2,
        "eval_k": 10,
        "key_metric": "precision_at_k",
        "gate_min_users": 1,
        "gate_min_items": 1,
        "gate_min_events": 1,
        "gate_min_lift_over_popularity": 0,
        "champion_tolerance": 0.02,
        "champion_no_overlap_policy": "hold",
        "promotion_policy": "manual",
        "refit_on_full_data": "on",
        "versions_kept": 3,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_saving_a_schedule_syncs_the_beat_entry(admin_client):
    recommender = RecommenderFactory(name="shop")
    response = admin_client.post(
        change_url(recommender),
        form_data(recommender, schedule_cron="30 2 * * mon-fri", schedule_enabled="on"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    recommender.refresh_from_db()
    task = PeriodicTask.objects.get(pk=recommender.periodic_task_id)
    assert task.enabled and task.crontab.minute == "30" and task.crontab.day_of_week == "mon-fri"
    assert recommender.hyperparameters["lightfm"]["epochs"] == 3 and recommender.event_weights == {
        "view": 1,
        "like": 3,
    }
    page = admin_client.get(change_url(recommender)).content.decode()
    assert "Next 3 runs" in page and "02:30 UTC" in page


def test_switching_the_schedule_off_disables_the_beat_entry(admin_client):
    recommender = RecommenderFactory(name="shop")
    admin_client.post(
        change_url(recommender),
        form_data(recommender, schedule_cron="0 3 * * *", schedule_enabled="on"),
    )
    admin_client.post(change_url(recommender), form_data(recommender, schedule_cron="0 3 * * *"))
    recommender.refresh_from_db()
    assert PeriodicTask.objects.get(pk=recommender.periodic_task_id).enabled is False


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 * *", "give 5 fields"),
        ("61 3 * * *", "not a valid cron expression"),
        ("0 0 31 2 *", "never occurs"),
        ("", "switch the schedule off"),
    ],
)
def test_an_invalid_schedule_is_refused_with_a_clear_error(admin_client, cron, message):
    recommender = RecommenderFactory(name="shop")
    response = admin_client.post(
        change_url(recommender), form_data(recommender, schedule_cron=cron, schedule_enabled="on")
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PeriodicTask.objects.exists()


def test_cron_preview_lists_the_next_three_runs(admin_client):
    url = reverse("admin:recommender_recommender_cron_preview")
    good = admin_client.get(url, {"cron": "0 3 * * *"}).json()
    assert good["ok"] and len(good["runs"]) == 3 and all("03:00 UTC" in r for r in good["runs"])
    bad = admin_client.get(url, {"cron": "nonsense"}).json()
    assert not bad["ok"] and "cron" in bad["error"]


def test_cron_preview_shows_the_runs_in_the_zone_and_in_utc(admin_client):
    url = reverse("admin:recommender_recommender_cron_preview")
    good = admin_client.get(url, {"cron": "30 18 * * *", "tz": "Asia/Colombo"}).json()
    assert good["ok"] and all("18:30 +0530 (13:00 UTC)" in run for run in good["runs"])
    bad = admin_client.get(url, {"cron": "30 18 * * *", "tz": "Mars/Base"}).json()
    assert not bad["ok"] and "not a time zone" in bad["error"]


def test_a_schedule_in_a_time_zone_is_saved_and_previewed_in_both(admin_client):
    recommender = RecommenderFactory(name="shop")
    response = admin_client.post(
        change_url(recommender),
        form_data(
            recommender,
            schedule_cron="30 18 * * *",
            schedule_timezone="Asia/Colombo",
            schedule_enabled="on",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    task = PeriodicTask.objects.get(pk=RecommenderFactory(name="shop").periodic_task_id)
    assert str(task.crontab.timezone) == "Asia/Colombo"
    page = admin_client.get(change_url(recommender)).content.decode()
    assert "18:30 +0530 (13:00 UTC)" in page


def test_an_unknown_time_zone_is_refused_on_its_field(admin_client):
    recommender = RecommenderFactory(name="shop")
    response = admin_client.post(
        change_url(recommender),
        form_data(recommender, schedule_cron="0 3 * * *", schedule_timezone="Mars/Base"),
    )
    assert response.status_code == 200
    assert "schedule_timezone" in response.context["adminform"].form.errors
    assert not PeriodicTask.objects.exists()


def test_start_a_run_now_queues_an_admin_run(
    admin_client, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr("recsite.celery.app.send_task", lambda *a, **kw: sent.append((a, kw)))
    recommender = RecommenderFactory(name="shop")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(start_url(recommender))
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_url(run)
    assert (run.trigger, run.status, run.triggered_by.username) == (
        Trigger.ADMIN,
        RunStatus.QUEUED,
        "admin",
    )
    assert sent == [(("training.tasks.run_training",), {"args": [run.pk], "queue": "training"})]


def test_start_while_a_run_is_live_shows_the_409_as_a_message(admin_client):
    recommender = RecommenderFactory(name="shop")
    live = TrainingRunFactory(recommender=recommender, status=RunStatus.RUNNING)
    response = admin_client.post(start_url(recommender), follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == run_url(live)
    assert f"Not started: Run #{live.pk} of &#x27;shop&#x27; is already running" in body
    assert TrainingRun.objects.count() == 1


def test_start_refuses_get(admin_client):
    recommender = RecommenderFactory(name="shop")
    assert admin_client.get(start_url(recommender)).status_code == 405
    assert not TrainingRun.objects.exists()


def test_staff_without_start_permission_get_403_and_no_button(staff_client):
    recommender = RecommenderFactory(name="shop")
    client = staff_client()
    assert "recsite-start-run" not in client.get(change_url(recommender)).content.decode()
    assert client.post(start_url(recommender)).status_code == 403
    assert not TrainingRun.objects.exists()


def test_staff_with_start_permission_see_the_button(staff_client, monkeypatch):
    monkeypatch.setattr("recsite.celery.app.send_task", lambda *a, **kw: None)
    recommender = RecommenderFactory(name="shop")
    client = staff_client(START)
    assert "recsite-start-run" in client.get(change_url(recommender)).content.decode()
    assert client.post(start_url(recommender)).status_code == 302
    assert TrainingRun.objects.count() == 1


def test_run_page_shows_metrics_gates_timings_log_and_version(admin_client):
    recommender = RecommenderFactory(name="shop")
    version = ModelVersionFactory(recommender=recommender)
    run = TrainingRunFactory(
        recommender=recommender,
        status=RunStatus.SUCCEEDED,
        decision="candidate",
        decision_reason="all gates passed",
        version=version,
        phase_timings={"load": 0.5, "fit": 2.0},
        metrics={
            "candidate": {"precision@10": 0.2, "ndcg@10": 0.3},
            "popularity": {"precision@10": 0.1, "ndcg@10": 0.15},
        },
        gate_results=[{"name": "lift", "passed": True, "message": "0.2 >= 0.1"}],
        data_stats={"events": 4000, "users": 100},
        log="line one\nline two",
    )
    body = admin_client.get(run_url(run)).content.decode()
    for text in (
        "Phase timings",
        "fit 2s",
        "precision@10",
        "0.2000",
        "0.1000",
        "(key metric)",
        "lift",
        "0.2 &gt;= 0.1",
        "line two",
        f"v{version.number}",
        "4000",
    ):
        assert text in body, text
    assert 'data-live="false"' in body


def test_failed_run_page_shows_error_and_traceback(admin_client):
    run = TrainingRunFactory(
        status=RunStatus.FAILED,
        error="fit: ValueError: nan",
        traceback="Traceback (most recent call last): ...",
    )
    body = admin_client.get(run_url(run)).content.decode()
    assert "fit: ValueError: nan" in body and "Traceback (most recent call last)" in body


def test_live_run_page_polls_progress_json(admin_client):
    run = TrainingRunFactory(status=RunStatus.RUNNING, phase="fit", progress=0.42, log="epoch 3/10")
    body = admin_client.get(run_url(run)).content.decode()
    assert 'data-live="true"' in body and "run_progress.js" in body and "42%" in body
    data = admin_client.get(reverse("admin:training_trainingrun_progress", args=[run.pk])).json()
    assert data["live"] and data["phase"] == "fit" and data["progress"] == 0.42
    assert data["log_tail"].endswith("epoch 3/10")


def test_cancel_a_queued_run(admin_client):
    run = TrainingRunFactory(status=RunStatus.QUEUED)
    assert "recsite-cancel-run" in admin_client.get(run_url(run)).content.decode()
    response = admin_client.post(cancel_url(run), follow=True)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "cancelled" in response.content.decode()


def test_cancel_a_running_run_requests_it(admin_client):
    run = TrainingRunFactory(status=RunStatus.RUNNING)
    admin_client.post(cancel_url(run))
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.cancel_requested


def test_cancel_a_finished_run_says_it_cannot(admin_client):
    run = TrainingRunFactory(status=RunStatus.SUCCEEDED)
    assert "recsite-cancel-run" not in admin_client.get(run_url(run)).content.decode()
    response = admin_client.post(cancel_url(run), follow=True)
    assert "only queued or running runs can be cancelled" in response.content.decode()


def test_cancel_refuses_get_and_staff_without_permission(admin_client, staff_client):
    run = TrainingRunFactory(status=RunStatus.QUEUED)
    assert admin_client.get(cancel_url(run)).status_code == 405
    client = staff_client()
    assert "recsite-cancel-run" not in client.get(run_url(run)).content.decode()
    assert client.post(cancel_url(run)).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_runs_are_read_only_history(admin_client):
    run = TrainingRunFactory(status=RunStatus.SUCCEEDED)
    assert admin_client.get(reverse("admin:training_trainingrun_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:training_trainingrun_delete", args=[run.pk])).status_code
        == 403
    )
    admin_client.post(run_url(run), {"status": "failed"})
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED


def test_run_list_filters_by_status(admin_client):
    failed = TrainingRunFactory(status=RunStatus.FAILED)
    TrainingRunFactory(status=RunStatus.SUCCEEDED)
    body = admin_client.get(
        reverse("admin:training_trainingrun_changelist"), {"status__exact": "failed"}
    ).content.decode()
    assert f"#{failed.pk}" in body and "1 training run" in body


@pytest.mark.parametrize(
    ("name", "factory"),
    [("training_trainingrun", "runs"), ("recommender_recommender", "recommenders")],
)
def test_list_queries_stay_flat_as_rows_grow(
    admin_client, django_assert_max_num_queries, name, factory
):
    def make(n: int) -> None:
        for _ in range(n):
            if factory == "runs":
                recommender = RecommenderFactory()
                version = ModelVersionFactory(recommender=recommender)
                TrainingRunFactory(
                    recommender=recommender,
                    status=RunStatus.SUCCEEDED,
                    version=version,
                    decision="candidate",
                    metrics={
                        "candidate": {"precision@10": 0.1},
                        "popularity": {"precision@10": 0.05},
                    },
                )
            else:
                recommender = RecommenderFactory(schedule_cron="0 3 * * *", schedule_enabled=True)
                TrainingRunFactory(recommender=recommender, status=RunStatus.SUCCEEDED)

    url = reverse(f"admin:{name}_changelist")
    make(5)
    admin_client.get(url)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(url)
    make(45)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin_client.get(url).status_code == 200


def test_in_eager_mode_a_started_run_executes_in_process(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    """``send_task`` ignores ``CELERY_TASK_ALWAYS_EAGER``; the run must execute anyway."""
    from recsite.celery import app

    executed = []
    monkeypatch.setattr(
        "training.tasks.training_run_execute", lambda run_id: executed.append(run_id)
    )
    recommender = RecommenderFactory(name="shop")
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(start_url(recommender))
    finally:
        app.conf.task_always_eager = False
    assert executed == [TrainingRun.objects.get().pk]


def test_the_recommender_form_refuses_what_the_schema_refuses_on_each_field(admin_client):
    recommender = RecommenderFactory(name="shop")
    response = admin_client.post(
        change_url(recommender),
        form_data(
            recommender,
            key_metric="precison_at_k",
            event_weights='{"view": "lots"}',
            holdout_fraction=1.5,
            lightfm__epochs=100_000,
            ease__lambda=0,
        ),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {
        "key_metric",
        "event_weights",
        "holdout_fraction",
        "lightfm__epochs",
        "ease__lambda",
    }
    assert "'precison_at_k' is not allowed" in errors["key_metric"][0]
    assert "view: 'lots' is not a weight" in errors["event_weights"][0]
    assert "greater than 0 and less than 1" in errors["holdout_fraction"][0]
    assert "from 1 to 1000" in errors["lightfm__epochs"][0]
    assert "0 is out of range: give a number greater than 0" in errors["ease__lambda"][0]
    recommender.refresh_from_db()
    assert recommender.key_metric == "precision_at_k" and recommender.holdout_fraction == 0.2


def test_the_recommender_form_shows_the_allowed_values(admin_client):
    page = admin_client.get(change_url(RecommenderFactory(name="shop"))).content.decode()
    assert "Default 20; allowed: from 1 to 1000." in page  # lightfm epochs
    assert "Default 300.0; allowed: greater than 0 and at most 1e+07." in page  # ease lambda
    assert '<option value="itemknn">' in page
    assert '<option value="ndcg_at_k">' in page


def test_the_run_page_shows_what_the_run_fits(admin_client):
    run = TrainingRunFactory(
        hyperparameters={"family": "ease", "lambda": 300.0, "top_k": 200, "num_threads": 2}
    )
    page = admin_client.get(run_url(run)).content.decode()
    assert "ease: lambda=300.0, top_k=200, num_threads=2" in page


def _trial(number, family, value, state="complete", note=""):
    return {
        "number": number,
        "family": family,
        "params": {"lambda": 812.5} if family == "ease" else {"neighbours": 40},
        "value": value,
        "seconds": 0.25,
        "state": state,
        "note": note,
    }


def test_an_auto_runs_page_shows_its_trials_as_a_table_and_a_chart(admin_client):
    run = TrainingRunFactory(
        status=RunStatus.SUCCEEDED,
        hyperparameters={"family": "auto", "tuning_budget_seconds": 30, "num_threads": 2},
        search={
            "budget_seconds": 30,
            "metric": "precision@10",
            "validation": {},
            "excluded": {"lightfm": "for the test"},
            "trials": [
                _trial(0, "ease", 0.1812),
                _trial(1, "itemknn", 0.1523),
                _trial(2, "itemknn", None, "pruned", "stopped: the 30 s budget is spent"),
            ],
            "seconds": 30.4,
            "stopped": "budget spent",
            "winner": {"number": 0, "family": "ease", "params": {}, "value": 0.1812},
            "runner_up": {"number": 1, "family": "itemknn", "params": {}, "value": 0.1523},
            "margin": 0.1812 / 0.1523 - 1,
        },
    )
    page = admin_client.get(run_url(run)).content.decode()
    assert "auto: tuning_budget_seconds=30, num_threads=2" in page
    assert "3 trials in 30.4 s of a 30 s budget; ease won: precision@10 0.1812 on " in page
    assert "19.0% above itemknn (0.1523)" in page
    assert "lightfm left out: for the test" in page
    table = page[page.index('id="recsite-trials"') :]
    assert table.count("<tr") == 4  # the header and a row per trial
    assert "ease <strong>(winner)</strong>" in table and "lambda=812.5" in table
    assert "pruned: stopped: the 30 s budget is spent" in table
    chart = page[page.index('id="recsite-search"') : page.index('id="recsite-trials"')]
    assert "<svg" in chart and "Validation precision@10 per trial" in chart
    assert 'data-series="best so far"' in chart and 'data-series="itemknn"' in chart


def test_a_run_that_did_not_search_has_no_search_section(admin_client):
    page = admin_client.get(run_url(TrainingRunFactory())).content.decode()
    assert 'id="recsite-search"' not in page


def test_the_recommender_form_stores_the_chosen_family_and_only_changed_values(admin_client):
    recommender = RecommenderFactory(name="shop")
    response = admin_client.post(
        change_url(recommender),
        form_data(recommender, algorithm="ease", ease__lambda=500, ease__top_k=200),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    recommender.refresh_from_db()
    assert recommender.algorithm == "ease"
    # top_k 200 is the default: not stored; lightfm's 16 components and 3 epochs are.
    assert recommender.hyperparameters == {
        "ease": {"lambda": 500.0},
        "lightfm": {"no_components": 16, "epochs": 3},
    }
    page = admin_client.get(change_url(recommender)).content.decode()
    assert 'name="ease__lambda" value="500.0"' in page
