"""The search space of ``auto``, derived from the families' schema
(``recommender.families``): each parameter's ``search`` range becomes an Optuna
distribution, named ``<family>.<parameter>`` so that two families' parameters of the
same name (``factors``) stay apart; a parameter without a range keeps its default. Each
family has a study of its own (``training.search.study`` chooses which family to try
next), so a trial asks for one family's parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from recommender.families import Family
from recommender.setting_types import BOOL, CHOICE, FLOAT, INT, Setting


def param_name(family: Family, setting: Setting) -> str:
    return f"{family.name}.{setting.name}"


def distribution(setting: Setting) -> BaseDistribution:
    """``setting``'s search range as a distribution; ``ValueError`` when the range is
    missing, empty or outside what the setting allows (a schema mistake)."""
    search = setting.search
    if search is None:
        raise ValueError(f"{setting.name} has no search range")
    if setting.kind == BOOL:
        return CategoricalDistribution(search.choices or (True, False))
    if setting.kind == CHOICE:
        choices = search.choices or setting.choices
        if not set(choices) <= set(setting.choices):
            raise ValueError(f"{setting.name}: search choices {choices} not all allowed")
        return CategoricalDistribution(choices)
    if setting.kind not in (INT, FLOAT) or search.low is None or search.high is None:
        raise ValueError(f"{setting.name}: a {setting.kind} setting cannot be searched")
    if not (search.low < search.high and setting.within(search.low)):
        raise ValueError(f"{setting.name}: search range {search.low}..{search.high} is invalid")
    if not setting.within(search.high):
        raise ValueError(f"{setting.name}: search range ends above what the setting allows")
    if setting.kind == INT:
        return IntDistribution(int(search.low), int(search.high), log=search.log)
    return FloatDistribution(float(search.low), float(search.high), log=search.log)


def family_space(family: Family) -> dict[str, BaseDistribution]:
    """``{"<family>.<parameter>": distribution}`` for the parameters ``auto`` searches."""
    return {
        param_name(family, setting): distribution(setting)
        for setting in family.params
        if setting.search is not None
    }


def search_space(families: Sequence[Family]) -> dict[str, BaseDistribution]:
    """The whole space: every family's searched parameters."""
    space: dict[str, BaseDistribution] = {}
    for family in families:
        space.update(family_space(family))
    return space


def suggest(trial: Trial, family: Family) -> dict[str, Any]:
    """Ask ``trial`` for ``family``'s parameters: its hyper-parameters as a run resolves
    them (``{"family": name, <every parameter>}``), searched ones suggested, the others
    at their defaults."""
    values = family.defaults()
    for setting in family.params:
        if setting.search is None:
            continue
        dist = distribution(setting)
        key = param_name(family, setting)
        if isinstance(dist, CategoricalDistribution):
            values[setting.name] = trial.suggest_categorical(key, dist.choices)
        elif isinstance(dist, IntDistribution):
            values[setting.name] = trial.suggest_int(key, dist.low, dist.high, log=dist.log)
        else:
            values[setting.name] = trial.suggest_float(key, dist.low, dist.high, log=dist.log)
    return {"family": str(family.name), **values}


def default_trial(family: Family) -> dict[str, Any]:
    """The trial parameters of ``family`` at its schema defaults (each family's study
    starts with them, so the search never ends below the best of them on validation)."""
    return {
        param_name(family, setting): setting.default
        for setting in family.params
        if setting.search is not None
    }
