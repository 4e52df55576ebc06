"""A control room with something on every admin list: two recommenders with versions
(one active), runs of every outcome, promotions, API keys, an experiment, online figures,
catalogue, events, profiles and an erasure. Deterministic (fixed seed, fixed times, except
the online figures and the versions' creation, which pages read relative to now), so
screenshots of it change little between runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from recommender.models import Recommender, Scope
from recommender.online.experiments import TreatmentSpec, experiment_create
from recommender.online.models import OnlineHourly
from recommender.services import (
    api_key_create,
    demo_data_generate,
    model_version_promote,
    user_erase,
)
from tests.factories import ModelVersionFactory, RecommenderFactory, TrainingRunFactory
from training.models import Decision, RunStatus, Trigger

# The data's own "now": events end here, runs and online figures sit just before it.
DATA_END = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
LONG_REASON = (
    "precision@10 0.0412 is below the champion's 0.0450 by more than the allowed 0.002 "
    "(gate_max_regression), so the champion stays active"
)


def _metrics(precision: float) -> dict:
    candidate = {"precision@10": precision, "recall@10": precision * 2.1, "auc": 0.81}
    popularity = {"precision@10": 0.021, "recall@10": 0.044, "auc": 0.70}
    return {"candidate": candidate, "popularity": popularity}


def _runs(recommender: Recommender, versions: list) -> None:
    """One run of each outcome, the newest first in the list (times 2 h apart)."""
    outcomes = [
        (RunStatus.SUCCEEDED, Decision.PROMOTED, "", versions[0]),
        (RunStatus.SUCCEEDED, Decision.CANDIDATE, "", versions[1]),
        (RunStatus.SUCCEEDED, Decision.REJECTED, LONG_REASON, versions[2]),
        (RunStatus.FAILED, Decision.NONE, "", None),
        (RunStatus.SKIPPED, Decision.NONE, "no new events since run #2", None),
        (RunStatus.CANCELLED, Decision.NONE, "", None),
    ]
    for index, (status, decision, reason, version) in enumerate(outcomes):
        started = DATA_END - timedelta(hours=2 * (len(outcomes) - index))
        run = TrainingRunFactory(
            recommender=recommender,
            trigger=[Trigger.ADMIN, Trigger.SCHEDULE, Trigger.API][index % 3],
            triggered_by_label="nightly schedule (Europe/Amsterdam)",
            status=status,
            decision=decision,
            decision_reason=reason,
            started_at=started,
            finished_at=started + timedelta(seconds=37.5 + index),
            metrics=_metrics(version.metrics["precision@10"]) if version else {},
            error="MemoryError: unable to allocate 2.1 GiB" if status == RunStatus.FAILED else "",
            version=version,
        )
        # created_at is set on insert; move it to the run's own time.
        type(run).objects.filter(pk=run.pk).update(created_at=started)


def control_room_create() -> dict[str, Recommender]:
    """Create the data (``RECSITE_ARTIFACT_DIR`` must point at a scratch directory)."""
    demo_data_generate(users=60, items=40, events=1500, seed=7, days=14, end=DATA_END)
    recommenders = {}
    for name, schedule in (("default", "30 2 * * *"), ("homepage-carousel", "0 */6 * * 1-5")):
        recommender = RecommenderFactory(name=name)  # "default" exists from a migration
        recommender.schedule_cron = schedule
        recommender.schedule_enabled = True
        recommender.save()
        versions = [
            ModelVersionFactory(
                recommender=recommender,
                metrics={"precision@10": value, "recall@10": value * 2.1, "auc": 0.81},
            )
            for value in (0.045, 0.047, 0.041)
        ]
        model_version_promote(version=versions[0], reason="first model after the import")
        _runs(recommender, versions)
        recommenders[name] = recommender

    default = recommenders["default"]
    experiment_create(
        recommender=default,
        name="more components against the champion",
        treatments=[TreatmentSpec(version=2, share=0.5)],
        reason="v2 scored higher offline; does it get more clicks?",
    )
    # The index shows the CTR of the last days before the wall clock, so these hours are
    # the only rows dated from it (same figures every time).
    this_hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours_ago, (impressions, clicks) in enumerate([(1200, 48), (900, 30), (1500, 61)]):
        OnlineHourly.objects.create(
            hour=this_hour - timedelta(hours=hours_ago + 1),
            recommender=default,
            model_version=1,
            position=1,
            lists=impressions // 10,
            impressions=impressions,
            clicks=clicks,
            conversions=clicks // 6,
        )
    for name, scopes in (
        ("web-frontend", [Scope.RECOMMENDATIONS_READ]),
        ("event-collector-eu-west", [Scope.EVENTS_WRITE, Scope.CATALOG_WRITE]),
        ("nightly-trainer", [Scope.TRAINING_WRITE, Scope.RECOMMENDATIONS_READ]),
    ):
        api_key_create(name=name, scopes=scopes)
    user_erase(user_id="user-3", actor_label="privacy request #4521", reason="GDPR art. 17")
    return recommenders
