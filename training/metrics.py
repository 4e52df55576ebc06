"""Training's Prometheus metrics, read from the database when ``/metrics`` is scraped.

Runs finish in Celery workers, which nobody scrapes, and a web process that restarts
forgets what it counted: so these figures are not counters kept in memory but the
database's state, evaluated at scrape time by ``TrainingCollector``. Every web process
reports the same numbers and a restart loses nothing. ``recsite/metrics.py`` serves it
next to the per-process metrics.

A scrape costs three queries whatever the number of runs: one aggregate over the
training runs grouped by (recommender, status, decision) (an index-only scan of
``run_rec_status_finished_idx`` on PostgreSQL), one over the recommenders with the
active version and the last promotion as indexed subqueries, one fetching the last
trained run of each recommender (its phase timings).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError
from django.db.models import Count, Max, OuterRef, Subquery
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recommender.models import ModelVersion, PromotionEvent, Recommender, VersionStatus
from training.models import Decision, RunStatus, TrainingRun

logger = logging.getLogger(__name__)


class Outcome:
    """How a finished run ended, as the metrics label it: a run rejected by a gate is
    ``succeeded`` with the decision ``rejected`` in the database, but on call it is a
    different thing from a run that produced a version."""

    SUCCEEDED = "succeeded"
    REJECTED = "rejected"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


OUTCOMES = (Outcome.SUCCEEDED, Outcome.REJECTED, Outcome.FAILED, Outcome.SKIPPED, Outcome.CANCELLED)
LIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)

RUNS = "recsite_training_runs"
RUNS_LIVE = "recsite_training_runs_live"
LAST_RUN_TIME = "recsite_training_last_run_timestamp_seconds"
LAST_SUCCESS_TIME = "recsite_training_last_success_timestamp_seconds"
LAST_RUN_FAILED = "recsite_training_last_run_failed"
LAST_RUN_DURATION = "recsite_training_last_run_duration_seconds"
LAST_RUN_PHASE = "recsite_training_last_run_phase_seconds"
ACTIVE_VERSION = "recsite_model_active_version"
ACTIVE_VERSION_TIME = "recsite_model_active_created_timestamp_seconds"
LAST_PROMOTION_TIME = "recsite_model_last_promotion_timestamp_seconds"
DATABASE_UP = "recsite_metrics_database_up"


def outcome_of(status: str, decision: str) -> str | None:
    """The outcome label of a finished run; None while it is queued or running."""
    if status == RunStatus.SUCCEEDED:
        return Outcome.REJECTED if decision == Decision.REJECTED else Outcome.SUCCEEDED
    if status in (RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELLED):
        return str(status)
    return None


@dataclass
class _RecommenderRuns:
    """What the aggregate says about one recommender's runs."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    live: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LIVE, 0))
    last_by_outcome: dict[str, datetime] = field(default_factory=dict)
    last_success: datetime | None = None

    def add(self, status: str, decision: str, count: int, last: datetime | None) -> None:
        if status in self.live:
            self.live[status] += count
            return
        outcome = outcome_of(status, decision)
        if outcome is None:
            return
        self.outcomes[outcome] += count
        if last is None:
            return
        if outcome not in self.last_by_outcome or last > self.last_by_outcome[outcome]:
            self.last_by_outcome[outcome] = last
        # A dry run trains nothing: it is counted as succeeded, never as the last success.
        if outcome == Outcome.SUCCEEDED and decision != Decision.DRY_RUN:
            if self.last_success is None or last > self.last_success:
                self.last_success = last

    @property
    def last_failed(self) -> bool:
        """The most recent run that tried to train (succeeded, rejected or failed; skipped
        and cancelled runs say nothing about training) failed."""
        failed = self.last_by_outcome.get(Outcome.FAILED)
        if failed is None:
            return False
        others = [self.last_by_outcome.get(o) for o in (Outcome.SUCCEEDED, Outcome.REJECTED)]
        return all(other is None or failed > other for other in others)


def _families() -> dict[str, Metric]:
    rec = ["recommender"]
    return {
        RUNS: CounterMetricFamily(
            RUNS,
            "Finished training runs by outcome (succeeded, rejected by a gate, failed, "
            "skipped: no new events or a run already live, cancelled), from the database.",
            labels=[*rec, "outcome"],
        ),
        RUNS_LIVE: GaugeMetricFamily(
            RUNS_LIVE, "Training runs queued or running now.", labels=[*rec, "status"]
        ),
        LAST_RUN_TIME: GaugeMetricFamily(
            LAST_RUN_TIME,
            "When the most recent run of each outcome finished (Unix time).",
            labels=[*rec, "outcome"],
        ),
        LAST_SUCCESS_TIME: GaugeMetricFamily(
            LAST_SUCCESS_TIME,
            "When the most recent successful run (not rejected, not a dry run) finished "
            "(Unix time); absent before the first one.",
            labels=rec,
        ),
        LAST_RUN_FAILED: GaugeMetricFamily(
            LAST_RUN_FAILED,
            "1 when the most recent run that tried to train (succeeded, rejected or "
            "failed) failed.",
            labels=rec,
        ),
        LAST_RUN_DURATION: GaugeMetricFamily(
            LAST_RUN_DURATION,
            "Wall time of the most recent run that trained (succeeded or rejected), "
            "from claim to finish.",
            labels=rec,
        ),
        LAST_RUN_PHASE: GaugeMetricFamily(
            LAST_RUN_PHASE,
            "Seconds each phase took in the most recent run that trained.",
            labels=[*rec, "phase"],
        ),
        ACTIVE_VERSION: GaugeMetricFamily(
            ACTIVE_VERSION,
            "The active model version's number in the database (0: none); compare with "
            "each worker's recsite_model_loaded_version.",
            labels=rec,
        ),
        ACTIVE_VERSION_TIME: GaugeMetricFamily(
            ACTIVE_VERSION_TIME,
            "When the active model version was created, i.e. trained (Unix time); absent "
            "without an active version.",
            labels=rec,
        ),
        LAST_PROMOTION_TIME: GaugeMetricFamily(
            LAST_PROMOTION_TIME,
            "When the active version last changed (promote, auto-promotion or rollback; "
            "Unix time); absent before the first.",
            labels=rec,
        ),
        DATABASE_UP: GaugeMetricFamily(
            DATABASE_UP,
            "1 when the database answered this scrape's queries; 0 and no training "
            "figures when it did not.",
        ),
    }


def _runs_by_recommender() -> dict[int, _RecommenderRuns]:
    runs: dict[int, _RecommenderRuns] = {}
    rows = (
        TrainingRun.objects.order_by()
        .values_list("recommender_id", "status", "decision")
        .annotate(count=Count("id"), last=Max("finished_at"))
    )
    for recommender_id, status, decision, count, last in rows:
        runs.setdefault(recommender_id, _RecommenderRuns()).add(status, decision, count, last)
    return runs


def _recommenders() -> Iterable[Recommender]:
    active = ModelVersion.objects.filter(
        recommender=OuterRef("pk"), status=VersionStatus.ACTIVE
    ).order_by()
    last_run = TrainingRun.objects.filter(
        recommender=OuterRef("pk"), status=RunStatus.SUCCEEDED, finished_at__isnull=False
    ).exclude(decision=Decision.DRY_RUN)
    return (
        Recommender.objects.order_by("name")
        .annotate(
            active_number=Subquery(active.values("number")[:1]),
            active_created_at=Subquery(active.values("created_at")[:1]),
            last_promotion_at=Subquery(
                PromotionEvent.objects.filter(recommender=OuterRef("pk"))
                .order_by("-created_at")
                .values("created_at")[:1]
            ),
            last_trained_run_id=Subquery(last_run.order_by("-finished_at").values("pk")[:1]),
        )
        .only("name")
    )


def _fill(families: dict[str, Metric]) -> None:
    recommenders = list(_recommenders())
    runs = _runs_by_recommender()
    trained = {
        run.pk: run
        for run in TrainingRun.objects.filter(
            pk__in=[r.last_trained_run_id for r in recommenders if r.last_trained_run_id]
        ).only("started_at", "finished_at", "phase_timings")
    }
    for recommender in recommenders:
        name = recommender.name
        stats = runs.get(recommender.pk, _RecommenderRuns())
        for outcome, count in stats.outcomes.items():
            families[RUNS].add_metric([name, outcome], count)
        for status, count in stats.live.items():
            families[RUNS_LIVE].add_metric([name, status], count)
        for outcome, last in sorted(stats.last_by_outcome.items()):
            families[LAST_RUN_TIME].add_metric([name, outcome], last.timestamp())
        if stats.last_success is not None:
            families[LAST_SUCCESS_TIME].add_metric([name], stats.last_success.timestamp())
        families[LAST_RUN_FAILED].add_metric([name], 1.0 if stats.last_failed else 0.0)
        run = trained.get(recommender.last_trained_run_id)
        if run is not None:
            if run.started_at is not None and run.finished_at is not None:
                seconds = (run.finished_at - run.started_at).total_seconds()
                families[LAST_RUN_DURATION].add_metric([name], seconds)
            for phase, seconds in (run.phase_timings or {}).items():
                families[LAST_RUN_PHASE].add_metric([name, phase], float(seconds))
        families[ACTIVE_VERSION].add_metric([name], recommender.active_number or 0)
        if recommender.active_created_at is not None:
            families[ACTIVE_VERSION_TIME].add_metric(
                [name], recommender.active_created_at.timestamp()
            )
        if recommender.last_promotion_at is not None:
            families[LAST_PROMOTION_TIME].add_metric(
                [name], recommender.last_promotion_at.timestamp()
            )


class TrainingCollector(Collector):
    """A custom collector: ``collect`` queries the database on every scrape;
    ``describe`` names the metrics without a query (what a registry asks when the
    collector is registered)."""

    def describe(self) -> Iterator[Metric]:
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        families = _families()
        try:
            _fill(families)
        except DatabaseError:
            logger.warning("training metrics: the database did not answer", exc_info=True)
            families = {DATABASE_UP: families[DATABASE_UP]}
            families[DATABASE_UP].add_metric([], 0.0)
        else:
            families[DATABASE_UP].add_metric([], 1.0)
        yield from families.values()
