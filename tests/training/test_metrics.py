"""``/metrics``: training figures read from the database at scrape time, the API's ingest
and served-response counters (a real run in process, real ingest through the API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from recommender.models import Item, PromotionEvent, Scope
from tests.factories import RecommenderFactory, TrainingRunFactory
from training.metrics import TrainingCollector
from training.models import Decision, RunStatus, Trigger
from training.runner import training_run_execute_now

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def collected(**labels: str) -> dict[str, float]:
    """The collector's samples (name -> value) for the samples carrying ``labels``."""
    return {
        sample.name
        + "".join(f"[{v}]" for k, v in sorted(sample.labels.items()) if k not in labels): (
            sample.value
        )
        for family in TrainingCollector().collect()
        for sample in family.samples
        if labels.items() <= sample.labels.items()
    }


def test_a_scrape_after_a_real_run_and_ingest_reports_them(client, recommender, make_api_client):
    before = scrape(client)
    run = training_run_execute_now(recommender=recommender, trigger=Trigger.CLI)
    assert (run.status, run.decision) == (RunStatus.SUCCEEDED, Decision.PROMOTED), run.error

    api = make_api_client(Scope.EVENTS_WRITE, Scope.RECOMMENDATIONS_READ)
    item = Item.objects.order_by("pk").first().external_id
    event = {"user_id": "new-user", "item_id": item, "type": "view", "timestamp": T0.isoformat()}
    batch = [{**event, "event_id": f"metrics-{n}"} for n in range(3)]
    assert api.post("/api/v1/events", {"events": batch}, format="json").status_code == 201
    # One replayed event (duplicate) and one new one.
    again = [batch[0], {**event, "event_id": "metrics-3"}]
    assert api.post("/api/v1/events", {"events": again}, format="json").status_code == 201
    # All or nothing: one bad event refuses both.
    bad = [{**event, "event_id": "metrics-4"}, {**event, "event_id": "metrics-5", "type": "?"}]
    assert api.post("/api/v1/events", {"events": bad}, format="json").status_code == 400
    known = api.get("/api/v1/recommendations/demo-user-1")
    assert (known.status_code, known.json()["fallback"]) == (200, None)
    unknown = api.get("/api/v1/recommendations/nobody-knows-me")
    assert unknown.json()["fallback"] == "unknown_user"
    assert api.get(f"/api/v1/items/{item}/similar").status_code == 200

    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    default = {"recommender": "default"}
    assert value(after, "recsite_training_runs_total", outcome="succeeded", **default) == 1
    for outcome in ("rejected", "failed", "skipped", "cancelled"):
        assert value(after, "recsite_training_runs_total", outcome=outcome, **default) == 0
    assert value(after, "recsite_training_last_run_failed", **default) == 0
    finished_at = run.finished_at.timestamp()
    assert value(after, "recsite_training_last_success_timestamp_seconds", **default) == finished_at
    assert value(
        after, "recsite_training_last_run_timestamp_seconds", outcome="succeeded", **default
    ) == pytest.approx(finished_at)
    assert value(after, "recsite_training_last_run_duration_seconds", **default) == (
        pytest.approx(run.duration_seconds)
    )
    for phase, seconds in run.phase_timings.items():
        assert value(
            after, "recsite_training_last_run_phase_seconds", phase=phase, **default
        ) == pytest.approx(seconds)
    promotion = PromotionEvent.objects.get()
    assert value(
        after, "recsite_model_last_promotion_timestamp_seconds", **default
    ) == pytest.approx(promotion.created_at.timestamp())
    assert value(after, "recsite_model_active_version", **default) == 1
    assert value(after, "recsite_metrics_database_up") == 1

    ingested = {"client": "api:test-client"}
    assert delta("recsite_ingest_events_total", outcome="accepted", code="", **ingested) == 4
    assert delta("recsite_ingest_events_total", outcome="duplicate", code="", **ingested) == 1
    refused = {"outcome": "refused", "code": "invalid_events", **ingested}
    assert delta("recsite_ingest_events_total", **refused) == 2
    assert (
        delta(
            "recsite_served_responses_total", endpoint="recommendations", source="model", **default
        )
        == 1
    )
    assert (
        delta(
            "recsite_served_responses_total",
            endpoint="recommendations",
            source="cold_start",
            **default,
        )
        == 1
    )
    assert (
        delta("recsite_served_responses_total", endpoint="similar", source="model", **default) == 1
    )


def test_a_batch_too_large_is_counted_as_refused(client, make_api_client, settings):
    settings.RECSITE_EVENT_BATCH_MAX = 2
    api = make_api_client(Scope.EVENTS_WRITE)
    before = scrape(client)
    events = [{"event_id": str(n)} for n in range(3)]
    assert api.post("/api/v1/events", {"events": events}, format="json").status_code == 413
    labels = {"client": "api:test-client", "outcome": "refused", "code": "batch_too_large"}
    after = scrape(client)
    assert (
        value(after, "recsite_ingest_events_total", **labels)
        - value(before, "recsite_ingest_events_total", **labels)
        == 3
    )


def test_no_model_serving_is_counted_as_popularity(client, make_api_client):
    """No version yet: popularity from the events (the API's ``fallback: no_model``)."""
    recommender_events = make_api_client(Scope.EVENTS_WRITE, Scope.RECOMMENDATIONS_READ)
    event = {"user_id": "u", "item_id": "i", "type": "view", "timestamp": T0.isoformat()}
    assert (
        recommender_events.post(
            "/api/v1/events", {"events": [{**event, "event_id": "e"}]}, format="json"
        ).status_code
        == 201
    )
    before = scrape(client)
    response = recommender_events.get("/api/v1/recommendations/u")
    assert response.json()["fallback"] == "no_model"
    labels = {"recommender": "default", "endpoint": "recommendations", "source": "popularity"}
    after = scrape(client)
    assert (
        value(after, "recsite_served_responses_total", **labels)
        - value(before, "recsite_served_responses_total", **labels)
        == 1
    )


def finished(recommender, status: str, at: datetime, decision: str = "", **fields):
    return TrainingRunFactory(
        recommender=recommender,
        status=status,
        decision=decision,
        started_at=at - timedelta(minutes=5),
        finished_at=at,
        **fields,
    )


def test_runs_are_labelled_by_outcome_and_a_rejection_is_not_a_success():
    rec = RecommenderFactory(name="outcomes")
    finished(rec, RunStatus.SUCCEEDED, T0, Decision.PROMOTED)
    finished(rec, RunStatus.SUCCEEDED, T0 + timedelta(hours=1), Decision.REJECTED)
    finished(rec, RunStatus.SUCCEEDED, T0 + timedelta(hours=2), Decision.DRY_RUN)
    finished(rec, RunStatus.FAILED, T0 - timedelta(hours=1))
    finished(rec, RunStatus.SKIPPED, T0 + timedelta(hours=3))
    finished(rec, RunStatus.CANCELLED, T0 + timedelta(hours=4))
    TrainingRunFactory(recommender=rec, status=RunStatus.QUEUED)

    got = collected(recommender="outcomes")

    assert {name: got[name] for name in got if name.startswith("recsite_training_runs_total")} == {
        "recsite_training_runs_total[succeeded]": 2,  # the dry run is a success too
        "recsite_training_runs_total[rejected]": 1,
        "recsite_training_runs_total[failed]": 1,
        "recsite_training_runs_total[skipped]": 1,
        "recsite_training_runs_total[cancelled]": 1,
    }
    assert got["recsite_training_runs_live[queued]"] == 1
    assert got["recsite_training_runs_live[running]"] == 0
    # The dry run trained nothing: the last success is the promoted run.
    assert got["recsite_training_last_success_timestamp_seconds"] == T0.timestamp()
    assert (
        got["recsite_training_last_run_timestamp_seconds[succeeded]"]
        == (T0 + timedelta(hours=2)).timestamp()
    )
    assert got["recsite_training_last_run_failed"] == 0


def test_the_last_run_failed_until_a_run_trains_again():
    rec = RecommenderFactory(name="failing")
    finished(rec, RunStatus.SUCCEEDED, T0, Decision.PROMOTED)
    finished(rec, RunStatus.FAILED, T0 + timedelta(hours=1))
    # Skipped and cancelled runs say nothing about whether training works.
    finished(rec, RunStatus.SKIPPED, T0 + timedelta(hours=2))
    finished(rec, RunStatus.CANCELLED, T0 + timedelta(hours=3))
    assert collected(recommender="failing")["recsite_training_last_run_failed"] == 1

    finished(rec, RunStatus.SUCCEEDED, T0 + timedelta(hours=4), Decision.REJECTED)
    assert collected(recommender="failing")["recsite_training_last_run_failed"] == 0


def test_phase_timings_come_from_the_last_run_that_trained():
    rec = RecommenderFactory(name="phases")
    finished(rec, RunStatus.SUCCEEDED, T0, Decision.PROMOTED, phase_timings={"fit": 3.0})
    finished(
        rec,
        RunStatus.SUCCEEDED,
        T0 + timedelta(hours=1),
        Decision.REJECTED,
        phase_timings={"load": 1.5, "fit": 2.0},
    )
    finished(rec, RunStatus.FAILED, T0 + timedelta(hours=2), phase_timings={"load": 9.0})
    got = collected(recommender="phases")
    assert got["recsite_training_last_run_phase_seconds[fit]"] == 2.0
    assert got["recsite_training_last_run_phase_seconds[load]"] == 1.5
    assert got["recsite_training_last_run_duration_seconds"] == 300.0


def test_a_recommender_without_runs_reports_zeros_and_no_timestamps():
    RecommenderFactory(name="fresh")
    got = collected(recommender="fresh")
    assert got["recsite_training_runs_total[failed]"] == 0
    assert got["recsite_model_active_version"] == 0
    assert got["recsite_training_last_run_failed"] == 0
    assert "recsite_training_last_success_timestamp_seconds" not in got
    assert "recsite_model_last_promotion_timestamp_seconds" not in got
    assert "recsite_model_active_created_timestamp_seconds" not in got


def test_a_scrape_costs_the_same_queries_whatever_the_number_of_runs(
    django_assert_max_num_queries,
):
    for name in ("many-a", "many-b", "many-c"):
        rec = RecommenderFactory(name=name)
        for hour in range(40):
            status = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)[hour % 3]
            decision = Decision.PROMOTED if status == RunStatus.SUCCEEDED else ""
            finished(rec, status, T0 + timedelta(hours=hour), decision, phase_timings={"fit": 1})
    with django_assert_max_num_queries(3):
        families = list(TrainingCollector().collect())
    assert sum(1 for family in families for _ in family.samples) > 0
