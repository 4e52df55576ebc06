"""Experiments: start, stop, promote the winner. Every change is one transaction with its
``ExperimentEvent`` audit row, and bumps the recommender's serving key after commit so
every serving process reloads the arms at once (stopping sends all traffic back to the
active version within ``RECSITE_SERVING_CHECK_SECONDS``; the poll covers a lost bump).

The control is the recommender's active version when the experiment starts; each
treatment is another version of the same recommender or a version of another
recommender. The control gets the share the treatments leave."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommender.models import (
    ModelVersion,
    PromotionEvent,
    Recommender,
    VersionStatus,
)
from recommender.online.exceptions import (
    ExperimentAlreadyRunning,
    ExperimentNotFound,
    ExperimentNotPromotable,
    ExperimentNotRunning,
)
from recommender.online.models import (
    ARM_NAME_MAX_LENGTH,
    CONTROL_ARM,
    Experiment,
    ExperimentArm,
    ExperimentEvent,
    ExperimentEventKind,
    ExperimentStatus,
    PrimaryMetric,
)
from recommender.services.registry import model_version_promote
from recommender.serving.signal import active_version_changed

MAX_TREATMENTS = 4
NAME_MAX_LENGTH = 200
# Every arm gets at least this share: an arm with less would take months to say anything.
MIN_SHARE = 0.01


@dataclass(frozen=True)
class TreatmentSpec:
    version: int
    share: float
    recommender: str | None = None  # None: the experiment's recommender


def treatment_arm_name(index: int) -> str:
    return f"treatment-{index}"


def experiment_get(*, experiment_id: int) -> Experiment:
    try:
        return Experiment.objects.select_related("recommender").get(pk=experiment_id)
    except Experiment.DoesNotExist:
        raise ExperimentNotFound(f"No experiment has id {experiment_id}.", id=experiment_id)


def _treatment_version(spec: TreatmentSpec, recommender: Recommender, index: int) -> ModelVersion:
    """The version a treatment serves, or ``ValidationError`` on ``treatments``."""
    where = f"treatment {index}"
    owner = recommender
    if spec.recommender not in (None, "", recommender.name):
        owner = Recommender.objects.filter(name=spec.recommender).first()
        if owner is None:
            raise ValidationError(f"{where}: no recommender named {spec.recommender!r}.")
    version = owner.versions.filter(number=spec.version).first()
    if version is None:
        raise ValidationError(f"{where}: recommender {owner.name!r} has no version {spec.version}.")
    if version.status == VersionStatus.REJECTED:
        raise ValidationError(f"{where}: version {spec.version} was rejected by its gates.")
    if version.artifact_deleted_at is not None:
        raise ValidationError(f"{where}: the artifact of version {spec.version} was deleted.")
    return version


def _clean(
    *,
    recommender: Recommender,
    name: str,
    treatments: Sequence[TreatmentSpec],
    primary_metric: str,
) -> tuple[ModelVersion, list[tuple[ModelVersion, float]]]:
    """The control and the treatments' versions with shares; ``ValidationError`` keyed by
    field, every problem at once."""
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors.setdefault("name", []).append("Give the experiment a name.")
    elif len(name) > NAME_MAX_LENGTH:
        errors.setdefault("name", []).append(f"At most {NAME_MAX_LENGTH} characters.")
    if primary_metric not in PrimaryMetric.values:
        errors.setdefault("primary_metric", []).append(
            f"{primary_metric!r} is not one of {', '.join(PrimaryMetric.values)}."
        )
    control = recommender.versions.filter(status=VersionStatus.ACTIVE).first()
    if control is None:
        errors.setdefault("recommender", []).append(
            f"Recommender {recommender.name!r} has no active version: the control is the "
            "active version."
        )
    arms: list[tuple[ModelVersion, float]] = []
    problems: list[str] = []
    if not 1 <= len(treatments) <= MAX_TREATMENTS:
        problems.append(f"Give 1 to {MAX_TREATMENTS} treatments.")
    for index, spec in enumerate(treatments, start=1):
        if not isinstance(spec.share, int | float) or not MIN_SHARE <= spec.share < 1:
            problems.append(f"treatment {index}: share must be from {MIN_SHARE} to below 1.")
            continue
        try:
            version = _treatment_version(spec, recommender, index)
        except ValidationError as exc:
            problems.extend(exc.messages)
            continue
        if control is not None and version.pk == control.pk:
            problems.append(f"treatment {index}: version {spec.version} is the control.")
        elif any(version.pk == other.pk for other, _ in arms):
            problems.append(f"treatment {index}: version {spec.version} is already an arm.")
        else:
            arms.append((version, float(spec.share)))
    if 1 - sum(float(spec.share) for spec in treatments if isinstance(spec.share, int | float)) < (
        MIN_SHARE
    ):
        problems.append(f"The treatments' shares must leave the control at least {MIN_SHARE}.")
    if problems:
        errors["treatments"] = problems
    if errors:
        raise ValidationError(errors)
    assert control is not None
    return control, arms


@transaction.atomic
def experiment_create(
    *,
    recommender: Recommender,
    name: str,
    treatments: Sequence[TreatmentSpec],
    primary_metric: str = PrimaryMetric.CTR,
    salt: str | None = None,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str = "",
) -> Experiment:
    """Start an experiment on ``recommender``'s traffic (at most one running per
    recommender: ``ExperimentAlreadyRunning``)."""
    locked = Recommender.objects.select_for_update().get(pk=recommender.pk)
    control, arms = _clean(
        recommender=locked, name=name, treatments=treatments, primary_metric=primary_metric
    )
    running = locked.experiments.filter(status=ExperimentStatus.RUNNING).first()
    if running is not None:
        raise ExperimentAlreadyRunning(
            f"Recommender {locked.name!r} already runs experiment {running.pk} "
            f"({running.name!r}); stop it first.",
            experiment=running.pk,
        )
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                recommender=locked,
                name=name.strip(),
                primary_metric=primary_metric,
                salt=salt or secrets.token_hex(8),
                started_at=timezone.now(),
            )
    except IntegrityError:  # a concurrent start won (the partial unique constraint)
        raise ExperimentAlreadyRunning(f"Recommender {locked.name!r} already runs an experiment.")
    control_share = 1 - sum(share for _, share in arms)
    ExperimentArm.objects.bulk_create(
        [
            ExperimentArm(
                experiment=experiment,
                name=CONTROL_ARM,
                order=0,
                version=control,
                share=control_share,
            )
        ]
        + [
            ExperimentArm(
                experiment=experiment,
                name=treatment_arm_name(index),
                order=index,
                version=version,
                share=share,
            )
            for index, (version, share) in enumerate(arms, start=1)
        ]
    )
    _audit(
        experiment,
        ExperimentEventKind.CREATE,
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )
    return experiment


@transaction.atomic
def experiment_stop(
    *,
    experiment: Experiment,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str = "",
) -> Experiment:
    """Stop a running experiment: every user gets the active version again."""
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != ExperimentStatus.RUNNING:
        raise ExperimentNotRunning(
            f"Experiment {locked.pk} is already stopped.", experiment=locked.pk
        )
    locked.status = ExperimentStatus.STOPPED
    locked.stopped_at = timezone.now()
    locked.save(update_fields=["status", "stopped_at"])
    _audit(locked, ExperimentEventKind.STOP, actor=actor, actor_label=actor_label, reason=reason)
    return locked


def experiment_promote(
    *,
    experiment: Experiment,
    arm: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str = "",
) -> PromotionEvent:
    """Promote the version of a stopped experiment's treatment ``arm`` through the
    registry's promote service; the promotion's reason names the experiment and the
    experiment's audit row points at the promotion."""
    if experiment.status != ExperimentStatus.STOPPED:
        raise ExperimentNotPromotable(
            "Stop the experiment before promoting an arm.", experiment=experiment.pk, why="running"
        )
    chosen = experiment.arms.select_related("version", "version__recommender").filter(name=arm)
    chosen = chosen.first()
    if chosen is None or chosen.name == CONTROL_ARM:
        raise ExperimentNotPromotable(
            f"Experiment {experiment.pk} has no treatment arm {arm!r}.",
            experiment=experiment.pk,
            why="no_such_arm",
        )
    if chosen.version.recommender_id != experiment.recommender_id:
        raise ExperimentNotPromotable(
            f"Arm {arm!r} serves a version of recommender "
            f"{chosen.version.recommender.name!r}, not of {experiment.recommender.name!r}; "
            "promote it there, or retrain this recommender with its settings.",
            experiment=experiment.pk,
            why="other_recommender",
        )
    label = f'experiment {experiment.pk} "{experiment.name}", arm {arm}'
    with transaction.atomic():
        promotion = model_version_promote(
            version=chosen.version,
            actor=actor,
            actor_label=actor_label,
            reason=f"Winner of {label}. {reason}".strip(),
        )
        _audit(
            experiment,
            ExperimentEventKind.PROMOTE,
            arm=arm,
            promotion=promotion,
            actor=actor,
            actor_label=actor_label,
            reason=reason,
        )
    return promotion


def _audit(
    experiment: Experiment,
    kind: str,
    *,
    actor: AbstractBaseUser | None,
    actor_label: str,
    reason: str,
    arm: str = "",
    promotion: PromotionEvent | None = None,
) -> ExperimentEvent:
    event = ExperimentEvent.objects.create(
        experiment=experiment,
        kind=kind,
        arm=arm[:ARM_NAME_MAX_LENGTH],
        promotion=promotion,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label,
        reason=reason,
    )
    recommender_id = experiment.recommender_id
    transaction.on_commit(lambda: active_version_changed(recommender_id))
    return event
