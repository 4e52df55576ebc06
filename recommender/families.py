"""The model families and their hyper-parameters: the one definition.

``Recommender.algorithm`` names a family; ``Recommender.hyperparameters`` holds, per
family, the values that differ from the defaults here (``{"ease": {"lambda": 500}}``).
Everything else derives from :data:`FAMILIES`: the model's check (and through it the admin
form, which has one field per family parameter), the API's run overrides, ``retrain
--algorithm ease --set lambda=300``, the hyper-parameters a run records and the artifact
manifest. Training (``training.families``) fits a family from its resolved values.

What a family's artifact holds follows its kind (``recommender.artifacts``): ``factors``
(user and item factors and biases), ``item_item`` (a sparse top-k item-item matrix) or
``scores`` (one score per item)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from recommender.setting_types import BOOL, SearchRange, Setting, choice, integer, number


class Algorithm(models.TextChoices):
    LIGHTFM = "lightfm", "LightFM: hybrid factors with item / user features"
    EASE = "ease", "EASE: closed-form item-item (dense inverse; bounded item count)"
    ITEMKNN = "itemknn", "ItemKNN: top-k cosine or BM25 neighbours"
    ALS = "als", "ALS: implicit-feedback matrix factorisation"
    SVD = "svd", "PureSVD: truncated SVD of the interactions"
    POPULARITY = "popularity", "Popularity, optionally decayed by age"
    AUTO = "auto", "Automatic: search the families and their hyper-parameters in a time budget"


class FamilyKind(StrEnum):
    FACTORS = "factors"
    ITEM_ITEM = "item_item"
    SCORES = "scores"


# Settings a run takes besides its family's hyper-parameters (``recommender.config_schema``
# defines them): every family is fitted with them and records them.
RUN_SETTINGS = ("num_threads", "random_seed")
# Settings a run of ``auto`` takes besides the run settings (``recommender.config_schema``).
SEARCH_SETTINGS = ("tuning_budget_seconds",)

# Every parameter's ``search`` range (``recommender.setting_types.SearchRange``) is where
# ``auto`` looks; a parameter without one keeps its default during the search.
_BOTH = SearchRange()


@dataclass(frozen=True)
class Family:
    name: str
    kind: FamilyKind
    params: tuple[Setting, ...]
    uses_features: bool = False

    def param(self, name: str) -> Setting | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


_BINARY = Setting(
    "binary",
    BOOL,
    default=True,
    search=_BOTH,
    help=(
        "Count each (user, item) interaction as 1, in the fit and in the user's history, "
        "instead of its summed event weight."
    ),
)
_HISTORY_HALF_LIFE = number(
    "recency_half_life",
    0.0,
    1.0,
    default=0.0,
    search=SearchRange(0.0, 1.0),
    help=(
        "Weigh a user's history by recency when scoring: an event's weight halves every "
        "this share of the user's history (0.3: the event 30% of the way back counts half). "
        "0 = every event counts fully."
    ),
)

TITLE_TERMS_DEFAULT = 5000

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            Algorithm.LIGHTFM,
            FamilyKind.FACTORS,
            (
                integer(
                    "no_components",
                    1,
                    512,
                    default=32,
                    search=SearchRange(16, 128, log=True),
                    help="Latent dimensions.",
                ),
                choice(
                    "loss",
                    ("warp", "bpr", "warp-kos", "logistic"),
                    default="warp",
                    search=SearchRange(choices=("warp", "bpr")),
                    help="LightFM's loss.",
                ),
                number(
                    "learning_rate",
                    0.0,
                    1.0,
                    minimum_exclusive=True,
                    default=0.05,
                    search=SearchRange(0.01, 0.1, log=True),
                    help="SGD step size.",
                ),
                integer(
                    "epochs",
                    1,
                    1000,
                    default=20,
                    search=SearchRange(5, 50),
                    help="Passes over the interactions.",
                ),
                number("item_alpha", 0.0, 1.0, default=1e-6, help="L2 penalty on item factors."),
                number("user_alpha", 0.0, 1.0, default=1e-6, help="L2 penalty on user factors."),
                integer(
                    "title_terms",
                    0,
                    100_000,
                    default=TITLE_TERMS_DEFAULT,
                    help=(
                        "Words of item titles used as item features, TF-IDF weighted (at most "
                        "this many, each in two or more titles): a new item without known "
                        "categories starts from its title. 0 = none. Needs item features on."
                    ),
                ),
            ),
            uses_features=True,
        ),
        Family(
            Algorithm.EASE,
            FamilyKind.ITEM_ITEM,
            (
                number(
                    "lambda",
                    0.0,
                    1e7,
                    minimum_exclusive=True,
                    default=300.0,
                    search=SearchRange(10.0, 30000.0, log=True),
                    help="L2 regularisation of the item-item weights (larger: smoother).",
                ),
                integer(
                    "top_k",
                    1,
                    2000,
                    default=200,
                    search=SearchRange(50, 1000, log=True),
                    help=(
                        "Weights kept per item (the largest of its row of the dense solution); "
                        "the artifact stores this sparse top-k matrix."
                    ),
                ),
                _BINARY,
                _HISTORY_HALF_LIFE,
            ),
        ),
        Family(
            Algorithm.ITEMKNN,
            FamilyKind.ITEM_ITEM,
            (
                integer(
                    "neighbours",
                    1,
                    2000,
                    default=200,
                    search=SearchRange(20, 1000, log=True),
                    help="Neighbours kept per item.",
                ),
                choice(
                    "similarity",
                    ("cosine", "bm25"),
                    default="cosine",
                    search=_BOTH,
                    help="cosine of the item columns, or cosine after BM25 weighting.",
                ),
                number(
                    "bm25_k1",
                    0.0,
                    100.0,
                    default=1.2,
                    search=SearchRange(0.5, 3.0),
                    help="BM25 saturation (bm25 only).",
                ),
                number(
                    "bm25_b",
                    0.0,
                    1.0,
                    default=0.75,
                    search=SearchRange(0.0, 1.0),
                    help="BM25 length norm (bm25 only).",
                ),
                _BINARY,
                _HISTORY_HALF_LIFE,
            ),
        ),
        Family(
            Algorithm.ALS,
            FamilyKind.FACTORS,
            (
                integer(
                    "factors",
                    1,
                    512,
                    default=64,
                    search=SearchRange(16, 256, log=True),
                    help="Latent dimensions.",
                ),
                number(
                    "regularization",
                    0.0,
                    1e4,
                    default=0.01,
                    search=SearchRange(1e-3, 10.0, log=True),
                    help="L2 penalty on the factors.",
                ),
                integer(
                    "iterations",
                    1,
                    200,
                    default=15,
                    search=SearchRange(5, 30),
                    help="Alternating passes.",
                ),
                number(
                    "alpha",
                    0.0,
                    1e4,
                    minimum_exclusive=True,
                    default=1.0,
                    search=SearchRange(0.1, 50.0, log=True),
                    help="Confidence = 1 + alpha x weight.",
                ),
            ),
        ),
        Family(
            Algorithm.SVD,
            FamilyKind.FACTORS,
            (
                integer(
                    "factors",
                    1,
                    1024,
                    default=64,
                    search=SearchRange(8, 256, log=True),
                    help="Singular vectors kept.",
                ),
                integer("n_iter", 1, 50, default=7, help="Randomised SVD power iterations."),
            ),
        ),
        Family(
            Algorithm.POPULARITY,
            FamilyKind.SCORES,
            (
                number(
                    "half_life_days",
                    0.0,
                    36_500.0,
                    default=0.0,
                    search=SearchRange(0.0, 180.0),
                    help=(
                        "An event's weight halves every this many days before the newest "
                        "event; 0 = no decay."
                    ),
                ),
            ),
        ),
    )
}


def family_params_text(family: Family) -> str:
    """``lambda (greater than 0 and at most 1e+07; default 300), top_k (...)``: for help
    texts (the API schema, ``retrain --help``)."""
    return ", ".join(f"{p.name} ({p.range_text()}; default {p.default})" for p in family.params)


class FamilyUnavailable(ValueError):
    """The algorithm is no family to fit (``auto`` searches them: ``training.search``)."""


def family_get(algorithm: str) -> Family:
    family = FAMILIES.get(algorithm)
    if family is None:
        raise FamilyUnavailable(
            f"algorithm {algorithm!r} is not a model family: choose one of {', '.join(FAMILIES)}"
        )
    return family


def family_params_clean(family: Family, values: Mapping[str, Any]) -> dict[str, Any]:
    """Some of ``family``'s hyper-parameters, checked; ``ValidationError`` keyed by
    parameter name (every bad one at once; unknown names too)."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[ValidationError]] = {}
    for name, value in values.items():
        param = family.param(name)
        if param is None:
            errors[name] = [
                ValidationError(
                    f"{name!r} is not a hyper-parameter of {family.name} "
                    f"({', '.join(p.name for p in family.params)}).",
                    code="setting_unknown",
                )
            ]
            continue
        try:
            cleaned[name] = param.clean(value)
        except ValidationError as exc:
            errors[name] = [exc]
    if errors:
        raise ValidationError(errors)
    return cleaned


def hyperparameters_clean(value: Any, setting: Setting | None = None) -> dict[str, dict]:
    """``Recommender.hyperparameters``: ``{family: {parameter: value}}``. One message
    listing every problem as ``family.parameter: why``."""
    if not isinstance(value, Mapping):
        raise ValidationError(
            'Give the hyper-parameters per family, e.g. {"ease": {"lambda": 300}}.',
            code="setting_invalid",
        )
    cleaned: dict[str, dict] = {}
    problems: list[str] = []
    for name, params in value.items():
        family = FAMILIES.get(name)
        if family is None:
            problems.append(f"{name!r} is not a model family ({', '.join(FAMILIES)})")
            continue
        if not isinstance(params, Mapping):
            problems.append(f"{name}: give an object of hyper-parameters")
            continue
        try:
            cleaned[name] = family_params_clean(family, params)
        except ValidationError as exc:
            problems.extend(
                f"{name}.{param}: {' '.join(messages)}"
                for param, messages in exc.message_dict.items()
            )
    if problems:
        raise ValidationError("; ".join(problems), code="setting_invalid")
    return cleaned


def family_params_resolve(
    family: Family, stored: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Every hyper-parameter of ``family``: its default, then the recommender's stored
    value, then a run's override."""
    return {**family.defaults(), **stored.get(family.name, {}), **overrides}
