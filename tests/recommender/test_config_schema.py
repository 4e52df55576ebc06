"""The one schema of a recommender's settings (``recommender.config_schema``), checked
through the model (what the admin form runs); the form, the API and ``retrain`` have
their own tests next to their code."""

import math

import pytest
from django.core.exceptions import ValidationError

from recommender.config_schema import SETTINGS, config_clean
from recommender.families import RUN_SETTINGS
from recommender.metric_names import KEY_METRICS
from recommender.models import Recommender


def errors_of(**values) -> dict[str, list[str]]:
    recommender = Recommender(name="shop", **values)
    with pytest.raises(ValidationError) as caught:
        recommender.clean_fields()
    return caught.value.message_dict


def test_the_values_the_review_saved_are_refused_on_their_fields():
    errors = errors_of(
        key_metric="precison_at_k", event_weights={"view": "lots"}, holdout_fraction=1.5
    )
    assert set(errors) == {"key_metric", "event_weights", "holdout_fraction"}
    assert "'precison_at_k' is not allowed: give one of precision_at_k" in errors["key_metric"][0]
    assert "view: 'lots' is not a weight" in errors["event_weights"][0]
    assert errors["holdout_fraction"] == [
        "1.5 is out of range: give a number greater than 0 and less than 1."
    ]


def test_the_defaults_are_valid():
    Recommender(name="shop").clean_fields()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("event_weights", {"clicks": 2}, "'clicks' is not a known event type"),
        ("event_weights", {"view": 0}, "view: 0 is not a weight"),
        ("event_weights", {"view": -1}, "view: -1 is not a weight"),
        ("event_weights", {"view": math.inf}, "view: inf is not a weight"),
        ("event_weights", {"view": True}, "view: True is not a weight"),
        ("event_weights", {}, "cannot be blank"),
        ("event_weights", ["view"], "Give a weight per event type"),
        ("holdout_fraction", 0.0, "greater than 0 and less than 1"),
        ("holdout_fraction", 1.0, "greater than 0 and less than 1"),
        ("gate_min_lift_over_popularity", math.nan, "nan is not a finite number"),
        ("champion_tolerance", math.inf, "inf is not a finite number"),
        ("num_threads", 65, "from 1 to 64"),
        ("eval_k", 0, "from 1 to 100"),
        ("champion_tolerance", 1.5, "from 0 to 1"),
        ("gate_min_lift_over_popularity", -2.0, "from -1 to 100"),
        ("versions_kept", 0, "from 1 to 1000"),
        ("window_days", 0, "from 1 to 36500"),
        ("algorithm", "deep", "'deep' is not a valid choice"),
        ("hyperparameters", {"ease": {"lambda": 0}}, "ease.lambda: 0 is out of range"),
        ("champion_no_overlap_policy", "pass", "'pass' is not a valid choice"),
    ],
)
def test_each_setting_is_bounded(field, value, message):
    errors = errors_of(**{field: value})
    assert list(errors) == [field]
    assert message in errors[field][0]


def test_an_empty_window_means_all_events():
    Recommender(name="shop", window_days=None).clean_fields()


def test_excluded_fields_are_not_checked():
    Recommender(name="shop", num_threads=10**6).clean_fields(exclude=["num_threads"])


def test_choices_are_the_schemas():
    with pytest.raises(ValidationError) as caught:
        config_clean({"champion_no_overlap_policy": "pass", "event_weights": {}})
    assert caught.value.message_dict == {
        "champion_no_overlap_policy": ["'pass' is not allowed: give one of hold, skip."],
        "event_weights": [
            'Give a weight per event type, e.g. {"view": 1, "like": 3}, with at least one of '
            "the known types (view, click, like, rating, purchase)."
        ],
    }


def test_config_clean_refuses_unknown_settings_and_normalises_numbers():
    assert config_clean({"num_threads": 5.0, "champion_tolerance": 1}) == {
        "num_threads": 5,
        "champion_tolerance": 1.0,
    }
    with pytest.raises(ValidationError) as caught:
        config_clean({"num_thread": 5, "num_threads": True})
    assert set(caught.value.message_dict) == {"num_thread", "num_threads"}


def test_every_model_setting_has_a_schema_entry():
    configurable = {
        f.name
        for f in Recommender._meta.get_fields()
        if f.concrete and f.editable and not f.primary_key
    } - {"name", "description", "schedule_cron", "schedule_enabled", "created_at", "updated_at"}
    assert configurable == set(SETTINGS)
    assert set(RUN_SETTINGS) <= set(SETTINGS)


def test_key_metrics_are_the_metric_module_names():
    assert SETTINGS["key_metric"].choices == KEY_METRICS
