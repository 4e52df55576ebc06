"""Experiment statistics that stay valid when staff look every day. Pure numpy/scipy.

Each treatment arm is compared with the control on a **per-user metric** (each user's
clicks / impressions, or 0/1 "clicked at least once"): users, not impressions, are the
independent units, because one user's impressions are correlated and counting them as
independent would make every interval too narrow. The caller gives each arm's
sufficient statistics, which SQL computes in one pass: ``COUNT(*)``, ``SUM(x)`` and
``SUM(x * x)`` over the arm's users.

**The test: mSPRT with a normal mixture** (Johari, Koomen, Pekelis, Walsh, "Always Valid
Inference: Continuous Monitoring of A/B Tests", Operations Research 2022; arXiv 1512.04922).
With ``d`` the difference of the arms' means and ``V = s_c^2 / n_c + s_t^2 / n_t`` its
variance (sample variances plugged in), the likelihood ratio of "the effect is drawn from
N(0, tau^2)" against "no effect" is::

    Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))

Under no effect, ``Lambda`` is a martingale with mean 1, so by Ville's inequality the
chance that it *ever* reaches ``1 / alpha`` is at most ``alpha``: ``p = min(1, 1 / Lambda)``
is an always-valid p-value, and the values of the effect not rejected form a confidence
sequence, ``d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1 / alpha) + log((V + tau^2) / V)))``,
which covers the true effect at every look at once with probability ``1 - alpha``. Staff
may look as often as they like and stop at the first verdict.

Assumptions: users are independent and assigned at random (the sample-ratio check
guards the second); each arm's mean is close to normal (true from a few hundred users for
bounded metrics like CTR); the plug-in variance makes validity asymptotic, not exact.
Returning users whose metric changes between looks are outside the model's iid stream; the
guarantee is then approximate (docs/EXPERIMENTS.md).

**The mixing variance** ``tau`` is the one tuning knob: the test is most sensitive to
effects near ``tau``. It is set in relative terms, ``tau = minimum_effect * pooled mean``
(``Design.minimum_effect``, default 10 %), so one default suits any metric's scale.

Multiple treatments: each is compared at ``alpha / treatments`` (Bonferroni).

**Sample ratio mismatch**: a chi-square goodness-of-fit test of the users per arm against
the configured shares; ``p < 0.001`` means the assignment or the logging is broken and
overrides every verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import optimize, special


class Label(StrEnum):
    """The verdict on one treatment arm, as the experiment page shows it."""

    BETTER = "better"
    WORSE = "worse"
    NO_DIFFERENCE_YET = "no difference yet"
    SAMPLE_RATIO_MISMATCH = "sample ratio mismatch: do not trust"


# Appended to NO_DIFFERENCE_YET when an estimate of the users still needed exists.
NEEDS_MORE_USERS = "{label} (needs about {users:,} more users)"

# The rate's interval on the experiment page and the online metrics (issue 16: 95 %).
RATE_CONFIDENCE = 0.95
# A sample-ratio p-value below this raises the alarm.
SAMPLE_RATIO_ALPHA = 0.001


@dataclass(frozen=True)
class Design:
    """An experiment's statistical settings.

    ``minimum_effect`` is the smallest relative lift worth detecting: it sets the mixing
    variance and the "needs about N more users" estimate (at ``power``).
    """

    alpha: float = 0.05
    minimum_effect: float = 0.10
    power: float = 0.80
    sample_ratio_alpha: float = SAMPLE_RATIO_ALPHA

    def __post_init__(self) -> None:
        for name in ("alpha", "power", "sample_ratio_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1)")
        if self.minimum_effect <= 0:
            raise ValueError("minimum_effect must be positive")


@dataclass(frozen=True)
class MetricTotals:
    """The per-user metric's sufficient statistics in one arm.

    Scalars for one experiment, or numpy arrays of one shape for many experiments at once
    (the simulated world in the tests): ``sequential_test`` broadcasts.
    """

    users: npt.ArrayLike
    total: npt.ArrayLike
    total_squares: npt.ArrayLike


@dataclass(frozen=True)
class SequentialTest:
    """Treatment minus control on the per-user metric's mean, at one look.

    The confidence sequence is ``difference +- half_width``; ``half_width`` is ``inf``
    and ``p_value`` 1 while an arm has fewer than two users or the metric does not vary
    (``difference`` is nan while an arm has none).
    """

    difference: npt.NDArray[np.float64]
    half_width: npt.NDArray[np.float64]
    p_value: npt.NDArray[np.float64]


@dataclass(frozen=True)
class SampleRatioCheck:
    statistic: float
    p_value: float
    alarm: bool


@dataclass(frozen=True)
class ArmTotals:
    """One arm's figures as the online tables give them.

    ``successes`` are the primary metric's events (clicks, or conversions) among
    ``impressions``; ``metric_total`` and ``metric_total_squares`` sum the per-user metric
    and its square over the arm's ``users``.
    """

    users: int
    impressions: int
    successes: int
    metric_total: float
    metric_total_squares: float

    @property
    def metric(self) -> MetricTotals:
        return MetricTotals(self.users, self.metric_total, self.metric_total_squares)


@dataclass(frozen=True)
class Verdict:
    """One treatment arm against the control.

    ``rate`` is successes / impressions with its Wilson interval (descriptive: it treats
    impressions as independent). ``difference`` (treatment minus control, on the per-user
    metric's mean), its confidence sequence, ``lift`` (the difference over the control's
    mean, with the confidence sequence divided by that mean) and ``p_value`` come from the
    sequential test; they are None while there is too little data.
    """

    users: int
    impressions: int
    successes: int
    rate: float | None
    rate_interval: tuple[float, float]
    difference: float | None
    difference_interval: tuple[float, float] | None
    lift: float | None
    lift_interval: tuple[float, float] | None
    p_value: float
    label: Label
    more_users: int | None

    @property
    def text(self) -> str:
        if self.label == Label.NO_DIFFERENCE_YET and self.more_users:
            return NEEDS_MORE_USERS.format(label=self.label, users=self.more_users)
        return str(self.label)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate; (0, 1) when there are no trials.

    Unlike the normal approximation it stays inside [0, 1] and keeps its coverage for
    rates near 0, where CTRs live.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} / {trials}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if trials == 0:
        return (0.0, 1.0)
    z = float(special.ndtri(0.5 + confidence / 2))
    rate = successes / trials
    z2n = z * z / trials
    centre = (rate + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(rate * (1 - rate) / trials + z2n / (4 * trials))
    low = 0.0 if successes == 0 else centre - half
    high = 1.0 if successes == trials else centre + half
    return (low, high)


def _moments(
    arm: MetricTotals,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Users, mean and sample variance (nan below two users) of one arm."""
    users = np.asarray(arm.users, dtype=np.float64)
    total = np.asarray(arm.total, dtype=np.float64)
    squares = np.asarray(arm.total_squares, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / users
        # Clipped: rounding can take SUM(x^2) - SUM(x)^2 / n a hair below zero.
        variance = np.maximum(squares - total * mean, 0.0) / (users - 1)
    return users, mean, variance


def _half_width(
    variance: npt.NDArray[np.float64] | float,
    mixing_variance: npt.NDArray[np.float64] | float,
    alpha: float,
) -> npt.NDArray[np.float64]:
    """The confidence sequence's half-width for an estimate of variance ``variance``."""
    v, t2 = variance, mixing_variance
    return np.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + np.log1p(t2 / v)))


def sequential_test(
    control: MetricTotals, treatment: MetricTotals, design: Design = Design()
) -> SequentialTest:
    """The normal-mixture mSPRT of treatment against control at the current look."""
    n_c, mean_c, var_c = _moments(control)
    n_t, mean_t, var_t = _moments(treatment)
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = mean_t - mean_c
        variance = var_c / n_c + var_t / n_t
        pooled = (np.asarray(control.total) + np.asarray(treatment.total)) / (n_c + n_t)
        mixing = (design.minimum_effect * pooled) ** 2
    valid = (n_c >= 2) & (n_t >= 2) & (variance > 0) & (mixing > 0)
    # Placeholders where invalid keep the arithmetic finite; np.where discards them.
    v = np.where(valid, variance, 1.0)
    t2 = np.where(valid, mixing, 1.0)
    d = np.where(valid, difference, 0.0)
    log_ratio = -0.5 * np.log1p(t2 / v) + d * d * t2 / (2 * v * (v + t2))
    p_value = np.where(valid, np.exp(-np.maximum(log_ratio, 0.0)), 1.0)
    half_width = np.where(valid, _half_width(v, t2, design.alpha), np.inf)
    return SequentialTest(difference=difference, half_width=half_width, p_value=p_value)


def users_needed(
    *,
    effect: float,
    baseline_mean: float,
    control_variance: float,
    treatment_variance: float,
    control_share: float = 0.5,
    treatment_share: float = 0.5,
    design: Design = Design(),
) -> int | None:
    """Users the whole experiment needs so that a true difference ``effect`` (on the
    per-user metric's scale) is detected with probability ``design.power``.

    Detection at the planned size ``M`` means the estimate clears the confidence
    sequence: ``effect >= half_width(V) + z_power * sqrt(V)`` with
    ``V = (control_variance / control_share + treatment_variance / treatment_share) / M``
    and the test's mixing variance ``(minimum_effect * baseline_mean)^2``. It counts the
    last look only; earlier looks can only add detections, so the power is at least this.
    None when there is nothing to aim at (no effect, no variance, a zero baseline).
    """
    tau2 = (design.minimum_effect * baseline_mean) ** 2
    spread = control_variance / control_share + treatment_variance / treatment_share
    if not (effect and tau2 and spread > 0 and math.isfinite(spread)):
        return None
    z = float(special.ndtri(design.power))
    effect = abs(effect)

    def shortfall(v: float) -> float:
        return float(_half_width(v, tau2, design.alpha)) + z * math.sqrt(v) - effect

    # shortfall grows with v, from -effect at 0; at effect^2 the half-width alone exceeds
    # effect * sqrt(2 log(1 / alpha)) >= effect for any alpha < 0.6.
    high = effect**2
    while shortfall(high) < 0:
        high *= 4
    variance = optimize.brentq(shortfall, high * 1e-12, high, xtol=high * 1e-12, rtol=1e-10)
    return math.ceil(spread / variance)


def sample_ratio_check(
    users: Sequence[int], shares: Sequence[float], *, alpha: float = SAMPLE_RATIO_ALPHA
) -> SampleRatioCheck:
    """Chi-square goodness of fit of the users per arm against the configured shares.

    An alarm means users are not reaching the arms as configured (a biased assignment,
    an arm that fails or logs less): every comparison is then suspect.
    """
    observed = np.asarray(users, dtype=np.float64)
    expected_share = np.asarray(shares, dtype=np.float64)
    if observed.shape != expected_share.shape or observed.size < 2:
        raise ValueError("need one share per arm, and at least two arms")
    if (expected_share <= 0).any():
        raise ValueError("every share must be positive")
    total = observed.sum()
    if total == 0:
        return SampleRatioCheck(statistic=0.0, p_value=1.0, alarm=False)
    expected = total * expected_share / expected_share.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    p_value = float(special.chdtrc(observed.size - 1, statistic))
    return SampleRatioCheck(statistic=statistic, p_value=p_value, alarm=p_value < alpha)


def treatment_verdict(
    *,
    control: ArmTotals,
    treatment: ArmTotals,
    experiment_users: int,
    control_share: float,
    treatment_share: float,
    sample_ratio: SampleRatioCheck,
    design: Design = Design(),
) -> Verdict:
    """Label one treatment against the control; a sample-ratio alarm overrides the test."""
    test = sequential_test(control.metric, treatment.metric, design)
    difference, half_width = float(test.difference), float(test.half_width)
    p_value = float(test.p_value)
    if sample_ratio.alarm:
        label = Label.SAMPLE_RATIO_MISMATCH
    elif p_value <= design.alpha:
        label = Label.BETTER if difference > 0 else Label.WORSE
    else:
        label = Label.NO_DIFFERENCE_YET

    interval = None
    if math.isfinite(half_width):
        interval = (difference - half_width, difference + half_width)
    mean_c = float(_moments(control.metric)[1])
    lift_interval = None
    if interval is not None and mean_c != 0:
        lift_interval = (interval[0] / mean_c, interval[1] / mean_c)
    more_users = None
    if label == Label.NO_DIFFERENCE_YET and interval is not None:
        more_users = _more_users(
            control=control,
            treatment=treatment,
            difference=difference,
            experiment_users=experiment_users,
            shares=(control_share, treatment_share),
            design=design,
        )
    return Verdict(
        users=treatment.users,
        impressions=treatment.impressions,
        successes=treatment.successes,
        rate=treatment.successes / treatment.impressions if treatment.impressions else None,
        rate_interval=wilson_interval(treatment.successes, treatment.impressions, RATE_CONFIDENCE),
        difference=difference if math.isfinite(difference) else None,
        difference_interval=interval,
        lift=difference / mean_c if lift_interval is not None else None,
        lift_interval=lift_interval,
        p_value=p_value,
        label=label,
        more_users=more_users,
    )


def _more_users(
    *,
    control: ArmTotals,
    treatment: ArmTotals,
    difference: float,
    experiment_users: int,
    shares: tuple[float, float],
    design: Design,
) -> int | None:
    """About how many more users the experiment needs for a verdict.

    The users at which a difference of ``minimum_effect`` (relative to the pooled mean)
    would be detected with ``power``, from the arms' current variances and shares, minus
    the experiment's users (all arms). Past that size the observed difference is smaller
    than the minimum one, or absent: the estimate is then for the observed difference,
    or None when it is zero.
    """
    pooled = (control.metric_total + treatment.metric_total) / (control.users + treatment.users)
    minimum = design.minimum_effect * pooled
    smaller_observed = difference if abs(difference) < abs(minimum) else 0.0
    for effect in (minimum, smaller_observed):
        needed = users_needed(
            effect=effect,
            baseline_mean=pooled,
            control_variance=float(_moments(control.metric)[2]),
            treatment_variance=float(_moments(treatment.metric)[2]),
            control_share=shares[0],
            treatment_share=shares[1],
            design=design,
        )
        if needed is not None and needed > experiment_users:
            return _about(needed - experiment_users)
    return None


def experiment_verdicts(
    arms: Sequence[ArmTotals], shares: Sequence[float], design: Design = Design()
) -> list[Verdict]:
    """One verdict per treatment; ``arms[0]`` and ``shares[0]`` are the control's.

    The sample-ratio check covers all arms at once; each treatment is tested at
    ``alpha / treatments`` so that the chance of any false "better" or "worse" in the
    experiment stays within ``alpha``.
    """
    if len(arms) != len(shares) or len(arms) < 2:
        raise ValueError("need a control and at least one treatment, with a share each")
    sample_ratio = sample_ratio_check(
        [arm.users for arm in arms], shares, alpha=design.sample_ratio_alpha
    )
    per_treatment = replace(design, alpha=design.alpha / (len(arms) - 1))
    experiment_users = sum(arm.users for arm in arms)
    return [
        treatment_verdict(
            control=arms[0],
            treatment=treatment,
            experiment_users=experiment_users,
            control_share=shares[0],
            treatment_share=share,
            sample_ratio=sample_ratio,
            design=per_treatment,
        )
        for treatment, share in zip(arms[1:], shares[1:], strict=True)
    ]


def _about(users: int) -> int:
    """Rounded up to two significant digits: an estimate, not a promise."""
    step = 10 ** max(len(str(users)) - 2, 0)
    return -(-users // step) * step
