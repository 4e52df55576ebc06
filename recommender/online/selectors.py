"""Online metrics, read from the hourly aggregates the attribution pass writes:
impressions (lists and items shown), clicks, conversions, CTR and conversion rate with
their 95 % Wilson intervals, per period (hour, day or the whole range), version,
experiment arm and, on request, position.

Rates are per impression (an item shown once at one position). The interval treats
impressions as independent, which they are not quite (one user sees many): it describes
the data; the experiments' verdicts use the per-user test in ``stats``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from django.db.models import Sum
from django.db.models.functions import TruncDate, TruncDay

from recommender.models import Recommender
from recommender.online.models import OnlineHourly
from recommender.online.stats import RATE_CONFIDENCE, wilson_interval


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    TOTAL = "total"


# The longest range one request may cover, per granularity (bounded answers).
MAX_RANGE = {
    Granularity.HOUR: timedelta(days=14),
    Granularity.DAY: timedelta(days=400),
    Granularity.TOTAL: timedelta(days=400),
}
MAX_POSITION = 100


@dataclass(frozen=True)
class Rate:
    """``successes`` / ``trials`` with its Wilson interval; ``value`` None without trials.
    More successes than trials (a user clicking one impression twice) caps the interval
    at the trials."""

    successes: int
    trials: int
    value: float | None
    low: float
    high: float


def rate_of(successes: int, trials: int) -> Rate:
    low, high = wilson_interval(min(successes, trials), trials, RATE_CONFIDENCE)
    return Rate(
        successes=successes,
        trials=trials,
        value=successes / trials if trials else None,
        low=low,
        high=high,
    )


@dataclass(frozen=True)
class OnlineFigures:
    period: datetime | None  # the hour or day; None for the whole range
    model_version: int  # 0: the popularity fallback
    experiment_id: int  # 0: no experiment
    arm: str
    position: int | None  # None: every position
    lists: int
    impressions: int
    clicks: int
    conversions: int

    @property
    def ctr(self) -> Rate:
        return rate_of(self.clicks, self.impressions)

    @property
    def conversion_rate(self) -> Rate:
        return rate_of(self.conversions, self.impressions)


_SUMS = {name: Sum(name) for name in ("lists", "impressions", "clicks", "conversions")}


def online_metrics(
    *,
    recommender: Recommender,
    start: datetime,
    end: datetime,
    granularity: Granularity = Granularity.DAY,
    by_position: bool = False,
    model_versions: Iterable[int] | None = None,
    experiment_id: int | None = None,
) -> list[OnlineFigures]:
    """Figures for lists shown in ``[start, end)``, oldest period first, then by version,
    experiment, arm and position (positions above ``MAX_POSITION`` are left out when
    ``by_position``)."""
    rows = OnlineHourly.objects.filter(recommender=recommender, hour__gte=start, hour__lt=end)
    if model_versions is not None:
        rows = rows.filter(model_version__in=list(model_versions))
    if experiment_id is not None:
        rows = rows.filter(experiment_id=experiment_id)
    keys = ["model_version", "experiment_id", "arm"]
    if granularity == Granularity.HOUR:
        keys.insert(0, "hour")
    elif granularity == Granularity.DAY:
        rows = rows.annotate(day=TruncDay("hour"))
        keys.insert(0, "day")
    if by_position:
        rows = rows.filter(position__lte=MAX_POSITION)
        keys.append("position")
    grouped = rows.values(*keys).annotate(**_SUMS).order_by(*keys)
    period_key = keys[0] if granularity != Granularity.TOTAL else None
    return [
        OnlineFigures(
            period=row[period_key] if period_key else None,
            model_version=row["model_version"],
            experiment_id=row["experiment_id"],
            arm=row["arm"],
            position=row.get("position"),
            lists=row["lists"] or 0,
            impressions=row["impressions"] or 0,
            clicks=row["clicks"] or 0,
            conversions=row["conversions"] or 0,
        )
        for row in grouped
    ]


def online_metrics_by_version(
    *, recommender: Recommender, numbers: Iterable[int]
) -> dict[int, OnlineFigures]:
    """Each version's figures over everything it served (outside experiments and in
    them), for the version compare page."""
    rows = (
        OnlineHourly.objects.filter(recommender=recommender, model_version__in=list(numbers))
        .values("model_version")
        .annotate(**_SUMS)
    )
    return {
        row["model_version"]: OnlineFigures(
            period=None,
            model_version=row["model_version"],
            experiment_id=0,
            arm="",
            position=None,
            lists=row["lists"] or 0,
            impressions=row["impressions"] or 0,
            clicks=row["clicks"] or 0,
            conversions=row["conversions"] or 0,
        )
        for row in rows
    }


def online_compare_column(figures: OnlineFigures | None) -> dict[str, object]:
    """One version's online figures as a column of the version compare page."""
    if figures is None:
        return {}

    def interval(rate: Rate) -> str:
        return f"{rate.low:.4f} – {rate.high:.4f}" if rate.trials else "—"

    return {
        "lists served": figures.lists,
        "impressions": figures.impressions,
        "clicks": figures.clicks,
        "CTR": figures.ctr.value,
        "CTR, 95 % interval": interval(figures.ctr),
        "conversions": figures.conversions,
        "conversion rate": figures.conversion_rate.value,
        "conversion rate, 95 % interval": interval(figures.conversion_rate),
    }


def online_ctr_by_recommender(*, start: datetime, end: datetime) -> dict[int, Rate]:
    """Each recommender's CTR over lists shown in ``[start, end)``, every version and arm
    together, keyed by recommender id, in one query (recommenders with no impressions are
    left out)."""
    rows = (
        OnlineHourly.objects.filter(hour__gte=start, hour__lt=end)
        .values("recommender_id")
        .annotate(impressions=Sum("impressions"), clicks=Sum("clicks"))
        .order_by()
    )
    return {
        row["recommender_id"]: rate_of(row["clicks"] or 0, row["impressions"] or 0)
        for row in rows
        if row["impressions"]
    }


@dataclass(frozen=True)
class DailyTotals:
    """One recommender's figures for one UTC day, every version and arm together."""

    day: date
    lists: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0

    @property
    def ctr(self) -> Rate:
        return rate_of(self.clicks, self.impressions)

    @property
    def conversion_rate(self) -> Rate:
        return rate_of(self.conversions, self.impressions)


def days_start(*, days: int, now: datetime) -> datetime:
    """Midnight UTC starting the last ``days`` days, today included."""
    first_day = (now.astimezone(UTC) - timedelta(days=days - 1)).date()
    return datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)


def online_daily_totals(
    *, recommender_ids: Iterable[int], days: int, now: datetime
) -> dict[int, list[DailyTotals]]:
    """Per recommender, each of the last ``days`` UTC days (today included), oldest first
    and zero-filled, in one query for all recommenders (the dashboard's charts)."""
    ids = list(recommender_ids)
    since = days_start(days=days, now=now)
    first_day = since.date()
    rows = (
        OnlineHourly.objects.filter(recommender_id__in=ids, hour__gte=since)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("recommender_id", "day")
        .annotate(**_SUMS)
    )
    found = {
        (row["recommender_id"], row["day"]): DailyTotals(
            day=row["day"],
            lists=row["lists"] or 0,
            impressions=row["impressions"] or 0,
            clicks=row["clicks"] or 0,
            conversions=row["conversions"] or 0,
        )
        for row in rows
    }
    all_days = [first_day + timedelta(days=offset) for offset in range(days)]
    return {pk: [found.get((pk, day), DailyTotals(day=day)) for day in all_days] for pk in ids}
