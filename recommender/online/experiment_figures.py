"""An experiment's figures per arm, what its page and ``GET /api/v1/experiments/{id}``
show: users, impressions, clicks, conversions, the primary metric's rate with its Wilson
interval and, per treatment, the verdict of ``recommender.online.stats`` (lift with its
always-valid interval, p-value, "better" / "worse" / "no difference yet (needs about N
more users)" / "sample ratio mismatch: do not trust").

The per-user metric is each user's successes (clicks, or conversions, per the
experiment's primary metric) over their impressions; users are the independent units.
The sums the test needs come from ``ExperimentUserStat`` in one grouped query."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, F, FloatField, Sum
from django.db.models.functions import Cast

from recommender.online.models import (
    Experiment,
    ExperimentArm,
    ExperimentUserStat,
    PrimaryMetric,
)
from recommender.online.selectors import Rate, rate_of
from recommender.online.stats import (
    ArmTotals,
    Label,
    SampleRatioCheck,
    Verdict,
    experiment_verdicts,
    sample_ratio_check,
)


@dataclass(frozen=True)
class ArmFigures:
    arm: ExperimentArm
    users: int
    impressions: int
    clicks: int
    conversions: int
    rate: Rate  # the primary metric per impression
    verdict: Verdict | None  # None for the control


@dataclass(frozen=True)
class ExperimentFigures:
    experiment: Experiment
    arms: list[ArmFigures]
    sample_ratio: SampleRatioCheck | None  # None with a single arm


def _success_field(experiment: Experiment) -> str:
    return "conversions" if experiment.primary_metric == PrimaryMetric.CONVERSION_RATE else "clicks"


def experiment_figures(*, experiment: Experiment) -> ExperimentFigures:
    arms = list(experiment.arms.select_related("version", "version__recommender"))
    success = _success_field(experiment)
    metric = Cast(F(success), FloatField()) / Cast(F("impressions"), FloatField())
    sums = {
        row["arm"]: row
        for row in ExperimentUserStat.objects.filter(experiment=experiment, impressions__gt=0)
        .annotate(metric=metric)
        .values("arm")
        .annotate(
            users=Count("id"),
            impressions_total=Sum("impressions"),
            clicks_total=Sum("clicks"),
            conversions_total=Sum("conversions"),
            metric_total=Sum("metric"),
            metric_squares=Sum(F("metric") * F("metric")),
        )
        .order_by()
    }
    totals = []
    for arm in arms:
        row = sums.get(arm.name, {})
        totals.append(
            ArmTotals(
                users=row.get("users") or 0,
                impressions=row.get("impressions_total") or 0,
                successes=row.get(f"{success}_total") or 0,
                metric_total=float(row.get("metric_total") or 0.0),
                metric_total_squares=float(row.get("metric_squares") or 0.0),
            )
        )
    shares = [arm.share for arm in arms]
    verdicts: list[Verdict | None] = [None] * len(arms)
    sample_ratio = None
    if len(arms) >= 2:
        verdicts[1:] = experiment_verdicts(totals, shares)
        sample_ratio = sample_ratio_check([total.users for total in totals], shares)
    figures = [
        ArmFigures(
            arm=arm,
            users=total.users,
            impressions=total.impressions,
            clicks=sums.get(arm.name, {}).get("clicks_total") or 0,
            conversions=sums.get(arm.name, {}).get("conversions_total") or 0,
            rate=rate_of(total.successes, total.impressions),
            verdict=verdict,
        )
        for arm, total, verdict in zip(arms, totals, verdicts, strict=True)
    ]
    return ExperimentFigures(experiment=experiment, arms=figures, sample_ratio=sample_ratio)


def experiment_winner(figures: ExperimentFigures) -> str | None:
    """The treatment arm to promote: the one called "better" with the largest lift, or
    None when no treatment is better (or the sample ratio is off)."""
    better = [
        arm
        for arm in figures.arms
        if arm.verdict is not None and arm.verdict.label == Label.BETTER and arm.verdict.lift
    ]
    if not better:
        return None
    return max(better, key=lambda arm: arm.verdict.lift).arm.name
