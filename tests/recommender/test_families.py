"""The families' hyper-parameter schemas (recommender/families.py) and how a run's values
are resolved and checked (recommender/config_schema.py): the one definition."""

import pytest
from django.core.exceptions import ValidationError

from recommender.config_schema import run_hyperparameters, run_overrides_clean
from recommender.families import (
    FAMILIES,
    Algorithm,
    FamilyUnavailable,
    family_get,
    family_params_clean,
    family_params_resolve,
    hyperparameters_clean,
)


@pytest.mark.parametrize("family", list(FAMILIES.values()), ids=list(FAMILIES))
def test_every_default_passes_its_own_check_and_has_a_help_text(family):
    assert family_params_clean(family, family.defaults()) == family.defaults()
    assert all(param.help for param in family.params)


def test_every_algorithm_but_auto_is_a_family():
    assert set(Algorithm.values) - set(FAMILIES) == {"auto"}
    with pytest.raises(FamilyUnavailable, match="'auto' is not a model family"):
        family_get("auto")


def test_values_resolve_default_then_stored_then_override():
    ease = FAMILIES["ease"]
    stored = {"ease": {"lambda": 500.0, "top_k": 50}, "lightfm": {"epochs": 3}}
    assert family_params_resolve(ease, stored, {"top_k": 20}) == {
        "lambda": 500.0,
        "top_k": 20,
        "binary": True,
        "recency_half_life": 0.0,
    }


def test_the_stored_hyperparameters_are_checked_per_family_naming_each_problem():
    with pytest.raises(ValidationError) as caught:
        hyperparameters_clean(
            {"ease": {"lambda": -1, "epochs": 3}, "deep": {}, "als": {"factors": 8}}
        )
    message = caught.value.messages[0]
    assert "ease.lambda: -1 is out of range: give a number greater than 0" in message
    assert "ease.epochs: 'epochs' is not a hyper-parameter of ease" in message
    assert "'deep' is not a model family" in message
    assert "als." not in message  # its factors are fine


def test_a_runs_overrides_are_its_familys_parameters_and_the_run_settings():
    assert run_overrides_clean("itemknn", {"neighbours": 50.0, "num_threads": 1}) == {
        "neighbours": 50,
        "num_threads": 1,
    }
    with pytest.raises(ValidationError) as caught:
        run_overrides_clean(
            "itemknn",
            {"similarity": "jaccard", "random_seed": -1, "lambda": 3, "tuning_budget_seconds": 5},
        )
    assert set(caught.value.message_dict) == {
        "similarity",
        "random_seed",
        "lambda",
        "tuning_budget_seconds",
    }


def test_an_auto_runs_overrides_are_its_budget_and_the_run_settings_not_parameters():
    assert run_overrides_clean("auto", {"tuning_budget_seconds": 30.0, "random_seed": 3}) == {
        "tuning_budget_seconds": 30,
        "random_seed": 3,
    }
    with pytest.raises(ValidationError) as caught:
        run_overrides_clean("auto", {"tuning_budget_seconds": 0, "lambda": 3})
    messages = caught.value.message_dict
    assert set(messages) == {"tuning_budget_seconds", "lambda"}
    assert "searches the families' hyper-parameters itself" in messages["lambda"][0]


def test_what_a_run_fits_is_recorded_whole():
    values = {"hyperparameters": {"svd": {"factors": 16}}, "num_threads": 4, "random_seed": 7}
    assert run_hyperparameters(
        recommender_values=values, algorithm="svd", overrides={"n_iter": 3, "random_seed": 1}
    ) == {"family": "svd", "factors": 16, "n_iter": 3, "num_threads": 4, "random_seed": 1}


def test_an_auto_run_records_its_budget_and_run_settings():
    values = {"hyperparameters": {}, "num_threads": 2, "random_seed": 7, "tuning_budget_seconds": 9}
    assert run_hyperparameters(
        recommender_values=values, algorithm="auto", overrides={"tuning_budget_seconds": 60}
    ) == {"family": "auto", "tuning_budget_seconds": 60, "num_threads": 2, "random_seed": 7}
