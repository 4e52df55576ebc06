"""Running experiments as serving holds them: every arm's state, loaded like an active
version (verified, memory-mapped, swapped whole), and which arm a user is in.

An arm serves the version it was created with, whatever is promoted meanwhile, so a user
stays in the same arm with the same model across workers, hosts and promotions; the arm
is a pure function of (the experiment's salt, the user id): nothing is stored."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recommender.online.assignment import arm_for
from recommender.online.models import ExperimentArm, ExperimentStatus
from recommender.serving.catalog import Catalog
from recommender.serving.model import (
    RETRY_FAILED_SECONDS,
    ActiveVersion,
    LoadedModel,
    versions_get,
)
from recommender.serving.state import ServingState, model_state_build

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmPlan:
    name: str
    share: float
    version: ActiveVersion


@dataclass(frozen=True)
class ExperimentPlan:
    """What the database says one running experiment serves."""

    experiment_id: int
    salt: str
    arms: tuple[ArmPlan, ...]


@dataclass(frozen=True)
class ServedArm:
    name: str
    share: float
    state: ServingState


@dataclass(frozen=True)
class ServedExperiment:
    experiment_id: int
    salt: str
    arms: tuple[ServedArm, ...]

    def arm_of(self, user_id: str) -> ServedArm:
        name = arm_for(self.salt, user_id, [(arm.name, arm.share) for arm in self.arms])
        return next(arm for arm in self.arms if arm.name == name)


def experiment_plans(names: dict[int, str]) -> dict[str, ExperimentPlan]:
    """Each recommender's running experiment (at most one; ``names``: pk -> name), with
    the version every arm serves. Two queries."""
    rows = list(
        ExperimentArm.objects.filter(experiment__status=ExperimentStatus.RUNNING)
        .order_by("experiment_id", "order")
        .values_list(
            "experiment_id",
            "experiment__recommender_id",
            "experiment__salt",
            "name",
            "share",
            "version_id",
        )
    )
    versions = versions_get({row[5] for row in rows}, names)
    arms: dict[int, list[ArmPlan]] = {}
    heads: dict[int, tuple[int, str]] = {}
    for experiment_id, recommender_id, salt, name, share, version_id in rows:
        if version_id not in versions:
            continue
        heads[experiment_id] = (recommender_id, salt)
        arms.setdefault(experiment_id, []).append(ArmPlan(name, share, versions[version_id]))
    return {
        names[recommender_id]: ExperimentPlan(experiment_id, salt, tuple(arms[experiment_id]))
        for experiment_id, (recommender_id, salt) in heads.items()
        if recommender_id in names
    }


class ExperimentArms:
    """The registry's running experiments, rebuilt at every refresh: an arm serving a
    recommender's active version shares that state; any other version is loaded once,
    kept while an experiment uses it and rebuilt when the catalogue changes. An arm that
    fails to load keeps the experiment out (its users get the active version, no
    experiment in the response) until it loads; a running experiment already served
    keeps its arms meanwhile."""

    def __init__(self) -> None:
        self.served: dict[str, ServedExperiment] = {}
        self._states: dict[int, ServingState] = {}
        self._failed: dict[int, float] = {}

    def refresh(
        self,
        plans: dict[str, ExperimentPlan],
        active_states: dict[str, ServingState],
        catalog: Callable[[], Catalog],
        stamp: tuple[Any, int],
        forget: Callable[[str, ServingState], ServingState],
    ) -> None:
        served: dict[str, ServedExperiment] = {}
        for name, plan in plans.items():
            arms = []
            for arm in plan.arms:
                state = self._state(arm.version, active_states, catalog, stamp)
                if state is None:
                    break
                arms.append(ServedArm(arm.name, arm.share, forget(f"{name}/{arm.name}", state)))
            else:
                served[name] = ServedExperiment(plan.experiment_id, plan.salt, tuple(arms))
                continue
            previous = self.served.get(name)
            if previous is not None and previous.experiment_id == plan.experiment_id:
                served[name] = previous
        self.served = served
        used = {
            arm.state.model.version.version_id
            for experiment in served.values()
            for arm in experiment.arms
            if arm.state.model is not None
        }
        self._states = {pk: state for pk, state in self._states.items() if pk in used}

    def _state(
        self,
        version: ActiveVersion,
        active_states: dict[str, ServingState],
        catalog: Callable[[], Catalog],
        stamp: tuple[Any, int],
    ) -> ServingState | None:
        for state in active_states.values():
            if state.model is not None and state.model.version.version_id == version.version_id:
                return state
        cached = self._states.get(version.version_id)
        if cached is not None and cached.model is not None:
            if cached.catalog_stamp != stamp:
                cached = model_state_build(cached.model, catalog())
                self._states[version.version_id] = cached
            return cached
        failed_at = self._failed.get(version.version_id)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_SECONDS:
            return None
        try:
            state = model_state_build(LoadedModel.load(version), catalog())
        except Exception:
            self._failed[version.version_id] = time.monotonic()
            logger.exception(
                "serving: version %s of %r, an experiment arm, failed to load; the "
                "experiment is not served until it loads",
                version.number,
                version.recommender,
            )
            return None
        self._failed.pop(version.version_id, None)
        self._states[version.version_id] = state
        return state
