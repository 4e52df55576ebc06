"""What the admin dashboard shows, read in a bounded number of queries per recommender:
the active version and its age, the live and last runs, charts of the key metric over
versions, of run durations and of the online metrics per day (with the promotions and
rollbacks marked), events ingested per day, the next scheduled runs, and what the serving
processes have loaded."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from prometheus_client import CollectorRegistry, multiprocess

from recommender.comparison import metric_name
from recommender.models import (
    ModelVersion,
    PromotionEvent,
    PromotionKind,
    Recommender,
    VersionStatus,
)
from recommender.online.selectors import DailyTotals, days_start, online_daily_totals
from recommender.selectors import events_ingested_per_day
from recommender.serving.metrics import MODEL_LAST_LOAD_FAILED_NAME, MODEL_VERSION_NAME
from recommender.serving.registry import registry
from training import charts
from training.cron import cron_next_runs
from training.models import FINISHED_STATUSES, LIVE_STATUSES, RunStatus, TrainingRun

RECENT_RUNS = 8
CHART_VERSIONS = 20
CHART_RUNS = 20
EVENT_DAYS = 14
ONLINE_DAYS = 14


@dataclass
class RecommenderPanel:
    recommender: Recommender
    active: ModelVersion | None
    stale: bool
    live_run: TrainingRun | None
    last_runs: list[TrainingRun]
    next_runs: list[datetime]
    metric_chart: str
    duration_chart: str
    impressions_chart: str = ""
    rates_chart: str = ""


@dataclass
class ServingProcess:
    """One serving process's view of one recommender."""

    pid: str
    recommender: str
    loaded_version: int | None
    active_version: int | None = None
    serving: str = ""
    last_load_error: dict[str, Any] | None = None


@dataclass
class Dashboard:
    panels: list[RecommenderPanel]
    events_chart: str
    events_total: int
    serving: list[ServingProcess] = field(default_factory=list)
    serving_source: str = ""
    stale_after_hours: float = 0.0


def schedule_next_runs(
    recommender: Recommender, *, now: datetime, count: int = 3
) -> list[datetime]:
    """The next run times of an enabled schedule (none when it is off or empty)."""
    if not recommender.schedule_enabled or not recommender.schedule_cron.strip():
        return []
    return cron_next_runs(
        recommender.schedule_cron,
        after=now,
        count=count,
        tz=ZoneInfo(recommender.schedule_timezone),
    )


def _metric_chart(recommender: Recommender, runs: list[TrainingRun]) -> str:
    """Key metric of each version's run: the candidate next to the popularity baseline
    measured on the same holdout."""
    labels, candidate, popularity = [], [], []
    name = None
    for run in runs:
        metrics = run.metrics or {}
        name = name or metric_name(recommender.key_metric, metrics.get("candidate", {}))
        labels.append(f"v{run.version.number}")
        candidate.append(metrics.get("candidate", {}).get(name) if name else None)
        popularity.append(metrics.get("popularity", {}).get(name) if name else None)
    return charts.line_chart(
        title=f"{recommender.name}: {name or recommender.key_metric} by version",
        x_labels=labels,
        series=[
            charts.Series("candidate (the version)", candidate),
            charts.Series("popularity baseline", popularity),
        ],
        empty_message="No version trained yet.",
    )


def _duration_chart(recommender: Recommender, runs: list[TrainingRun]) -> str:
    bars = [
        charts.Bar(
            label=f"#{run.pk}",
            value=run.duration_seconds or 0.0,
            group=run.get_status_display(),
            note=f"run #{run.pk}: {run.get_status_display()}, {run.duration_seconds or 0:.1f} s",
        )
        for run in runs
    ]
    return charts.bar_chart(
        title=f"{recommender.name}: run durations (seconds)",
        bars=bars,
        unit="s",
        empty_message="No finished run yet.",
    )


def promotions_since(
    recommender_ids: list[int], *, since: datetime
) -> dict[int, list[PromotionEvent]]:
    """Each recommender's promotions and rollbacks since ``since``, oldest first (one query)."""
    found: dict[int, list[PromotionEvent]] = defaultdict(list)
    rows = (
        PromotionEvent.objects.filter(recommender_id__in=recommender_ids, created_at__gte=since)
        .select_related("to_version")
        .order_by("created_at", "id")
    )
    for event in rows:
        found[event.recommender_id].append(event)
    return found


def promotion_marks(events: list[PromotionEvent], *, first_day: datetime) -> list[charts.Mark]:
    """Promotions and rollbacks as chart marks on a daily axis whose position ``i`` is the
    middle of day ``i`` after ``first_day`` (so a moment at midnight sits half-way)."""
    marks = []
    for event in events:
        x = (event.created_at - first_day) / timedelta(days=1) - 0.5
        if event.kind == PromotionKind.ROLLBACK:
            marks.append(charts.Mark(x, f"rollback to v{event.to_version.number}", dashed=True))
        else:
            marks.append(charts.Mark(x, f"{event.kind} v{event.to_version.number}"))
    return marks


def _online_charts(
    recommender: Recommender, days: list[DailyTotals], marks: list[charts.Mark]
) -> tuple[str, str]:
    """Impressions per day, and CTR (with its 95 % Wilson band) and conversion rate."""
    # Nothing served at all: the charts say so instead of drawing zeros.
    labels = [d.day.strftime("%m-%d") for d in days] if any(d.lists for d in days) else []
    empty = "Nothing served and attributed in this period."
    impressions = charts.line_chart(
        title=f"{recommender.name}: impressions per day (UTC, last {len(days)} days)",
        x_labels=labels,
        series=[
            charts.Series("impressions", [d.impressions for d in days]),
            charts.Series("lists", [d.lists for d in days]),
        ],
        marks=marks,
        empty_message=empty,
    )
    rates = charts.line_chart(
        title=f"{recommender.name}: CTR (95 % interval shaded) and conversion rate per day",
        x_labels=labels,
        series=[
            charts.Series("CTR", [d.ctr.value for d in days]),
            charts.Series("conversion rate", [d.conversion_rate.value for d in days]),
        ],
        band=charts.Band(
            series=0,
            lows=[d.ctr.low if d.impressions else None for d in days],
            highs=[d.ctr.high if d.impressions else None for d in days],
        ),
        marks=marks,
        y_label="per impression",
        empty_message=empty,
    )
    return impressions, rates


def serving_processes_get() -> tuple[list[ServingProcess], str]:
    """What each serving process has loaded, and where that was read.

    Under gunicorn (``PROMETHEUS_MULTIPROC_DIR``) every worker publishes the version it
    serves as the ``recsite_model_loaded_version`` gauge, one series per live pid, so all
    workers of this host are listed. Otherwise only this process is known: its own
    serving registry (the data ``/readyz`` reports)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        rows: dict[tuple[str, str], ServingProcess] = {}
        for metric in collected.collect():
            if metric.name not in (MODEL_VERSION_NAME, MODEL_LAST_LOAD_FAILED_NAME):
                continue
            for sample in metric.samples:
                key = (sample.labels.get("pid", "?"), sample.labels.get("recommender", "?"))
                row = rows.setdefault(
                    key, ServingProcess(pid=key[0], recommender=key[1], loaded_version=None)
                )
                if metric.name == MODEL_VERSION_NAME:
                    row.loaded_version = int(sample.value) or None
                elif sample.value:
                    row.last_load_error = {"message": "the last load of the active version failed"}
        return sorted(
            rows.values(), key=lambda r: (r.recommender, r.pid)
        ), "all workers on this host"

    health = registry.health()
    return [
        ServingProcess(
            pid=str(health["pid"]),
            recommender=name,
            loaded_version=state["loaded_version"],
            active_version=state["active_version"],
            serving=state["serving"],
            last_load_error=state["last_load_error"],
        )
        for name, state in health["recommenders"].items()
    ], "this web process only (no PROMETHEUS_MULTIPROC_DIR: not under gunicorn)"


def dashboard_get(*, now: datetime) -> Dashboard:
    stale_after = timedelta(hours=settings.RECSITE_MODEL_STALE_AFTER_HOURS)
    actives = {
        v.recommender_id: v for v in ModelVersion.objects.filter(status=VersionStatus.ACTIVE)
    }
    recommenders = list(Recommender.objects.order_by("name"))
    ids = [r.pk for r in recommenders]
    online = online_daily_totals(recommender_ids=ids, days=ONLINE_DAYS, now=now)
    first_day = days_start(days=ONLINE_DAYS, now=now)
    promotions = promotions_since(ids, since=first_day)
    panels = []
    for recommender in recommenders:
        runs = list(
            TrainingRun.objects.filter(recommender=recommender)
            .select_related("triggered_by", "version")
            .order_by("-created_at", "-id")[:RECENT_RUNS]
        )
        finished = list(
            TrainingRun.objects.filter(
                recommender=recommender,
                status__in=FINISHED_STATUSES,
                started_at__isnull=False,
            )
            .exclude(status=RunStatus.SKIPPED)
            .order_by("-created_at", "-id")[:CHART_RUNS]
        )
        versioned = list(
            TrainingRun.objects.filter(recommender=recommender, version__isnull=False)
            .select_related("version")
            .order_by("-version__number")[:CHART_VERSIONS]
        )
        active = actives.get(recommender.pk)
        impressions_chart, rates_chart = _online_charts(
            recommender,
            online[recommender.pk],
            promotion_marks(promotions.get(recommender.pk, []), first_day=first_day),
        )
        panels.append(
            RecommenderPanel(
                recommender=recommender,
                active=active,
                stale=active is not None and now - active.created_at > stale_after,
                live_run=next((r for r in runs if r.status in LIVE_STATUSES), None),
                last_runs=runs,
                next_runs=schedule_next_runs(recommender, now=now),
                metric_chart=_metric_chart(recommender, versioned[::-1]),
                duration_chart=_duration_chart(recommender, finished[::-1]),
                impressions_chart=impressions_chart,
                rates_chart=rates_chart,
            )
        )
    per_day = events_ingested_per_day(days=EVENT_DAYS, now=now)
    serving, source = serving_processes_get()
    return Dashboard(
        panels=panels,
        events_chart=charts.bar_chart(
            title=f"Events ingested per day (UTC, last {EVENT_DAYS} days)",
            bars=[charts.Bar(label=day.strftime("%m-%d"), value=n) for day, n in per_day],
            empty_message="No events.",
        ),
        events_total=sum(n for _, n in per_day),
        serving=serving,
        serving_source=source,
        stale_after_hours=settings.RECSITE_MODEL_STALE_AFTER_HOURS,
    )
