"""The search space of auto, derived from the families' schema (training/search/space.py):
one definition, checked against each parameter's own bounds."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from recommender.families import FAMILIES, family_params_clean
from recommender.setting_types import SearchRange, integer
from training.search.space import (
    default_trial,
    distribution,
    family_space,
    search_space,
    suggest,
)


@pytest.mark.parametrize("family", list(FAMILIES.values()), ids=list(FAMILIES))
def test_every_searched_range_is_allowed_by_its_parameter_and_holds_its_default(family):
    space = family_space(family)
    assert space, f"{family.name} searches nothing"
    for setting in family.params:
        if setting.search is None:
            continue
        dist = space[f"{family.name}.{setting.name}"]
        if isinstance(dist, CategoricalDistribution):
            assert setting.default in dist.choices, setting.name
        else:
            assert dist.low <= setting.default <= dist.high, setting.name


def test_the_space_is_each_familys_own_parameters():
    space = search_space(list(FAMILIES.values()))
    assert space["ease.lambda"] == FloatDistribution(10.0, 30000.0, log=True)
    assert space["ease.binary"] == CategoricalDistribution((True, False))
    assert space["lightfm.loss"] == CategoricalDistribution(("warp", "bpr"))
    assert space["als.factors"] == IntDistribution(16, 256, log=True)
    assert space["svd.factors"] == IntDistribution(8, 256, log=True)
    assert "lightfm.item_alpha" not in space  # no search range: stays at its default
    assert "ease.recency_half_life" in space and "itemknn.recency_half_life" in space


def test_a_range_outside_the_parameters_bounds_is_refused():
    with pytest.raises(ValueError, match="search range"):
        distribution(integer("k", 1, 10, default=5, search=SearchRange(0, 20)))
    with pytest.raises(ValueError, match="no search range"):
        distribution(integer("k", 1, 10, default=5))


@pytest.mark.parametrize("family", list(FAMILIES.values()), ids=list(FAMILIES))
def test_suggested_trials_are_whole_valid_configurations_of_their_family(family):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        params = suggest(study.ask(), family)
        assert params.pop("family") == family.name
        assert family_params_clean(family, params) == params
        assert set(params) == {p.name for p in family.params}


def test_the_default_trial_asks_for_the_schema_defaults():
    ease = FAMILIES["ease"]
    study = optuna.create_study()
    study.enqueue_trial(default_trial(ease))
    assert suggest(study.ask(), ease) == {"family": "ease", **ease.defaults()}
