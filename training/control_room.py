"""The admin index's summary, one row per recommender: the active version and its age, the
last run and its outcome, the next scheduled run and the online CTR of the last days.

Read in a fixed number of queries, however many recommenders there are: the recommenders
with their last run's id, the active versions, those runs, the CTRs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Subquery

from recommender.models import ModelVersion, Recommender, VersionStatus
from recommender.online.selectors import Rate, online_ctr_by_recommender
from training.dashboard import schedule_next_runs
from training.models import TrainingRun

# The online CTR shown is over the lists served in this many days before now.
CTR_DAYS = 7


@dataclass(frozen=True)
class RecommenderSummary:
    recommender: Recommender
    active: ModelVersion | None
    stale: bool  # the active version is older than RECSITE_MODEL_STALE_AFTER_HOURS
    last_run: TrainingRun | None
    next_run: datetime | None  # in the schedule's time zone
    ctr: Rate | None  # None: no list shown in the last CTR_DAYS days

    @property
    def ctr_percent(self) -> float | None:
        return None if self.ctr is None or self.ctr.value is None else 100 * self.ctr.value


def control_room_get(*, now: datetime) -> list[RecommenderSummary]:
    """Every recommender's summary, by name."""
    last_run_id = (
        TrainingRun.objects.filter(recommender=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("id")[:1]
    )
    recommenders = list(
        Recommender.objects.annotate(last_run_id=Subquery(last_run_id)).order_by("name")
    )
    actives = {
        version.recommender_id: version
        for version in ModelVersion.objects.filter(status=VersionStatus.ACTIVE)
    }
    runs = TrainingRun.objects.select_related("version").in_bulk(
        [r.last_run_id for r in recommenders if r.last_run_id]
    )
    ctrs = online_ctr_by_recommender(start=now - timedelta(days=CTR_DAYS), end=now)
    stale_after = timedelta(hours=settings.RECSITE_MODEL_STALE_AFTER_HOURS)
    summaries = []
    for recommender in recommenders:
        active = actives.get(recommender.pk)
        next_runs = schedule_next_runs(recommender, now=now, count=1)
        summaries.append(
            RecommenderSummary(
                recommender=recommender,
                active=active,
                stale=active is not None and now - active.created_at > stale_after,
                last_run=runs.get(recommender.last_run_id),
                next_run=next_runs[0] if next_runs else None,
                ctr=ctrs.get(recommender.pk),
            )
        )
    return summaries
