"""Feature names: the contract between training, which names the feature columns it
writes into an artifact's ``feature_names``, and serving, which reads them back (to score
a new item through its categories). Plain Python, no Django: the numeric pipeline uses
it too.

A name is a prefix and a value, so the kinds never collide: ``id:<external id>`` for an
item's or a user's identity column, ``category:<name>`` for an item category,
``term:<word>`` for a word of item titles (TF-IDF weighted, ``recommender.text_features``),
``user:<name>`` for a user feature."""

from __future__ import annotations

from collections.abc import Iterable

IDENTITY_PREFIX = "id:"
CATEGORY_PREFIX = "category:"
TERM_PREFIX = "term:"
USER_FEATURE_PREFIX = "user:"


def category_feature_names(names: Iterable[str]) -> list[str]:
    return [CATEGORY_PREFIX + name for name in names]


def user_feature_names(names: Iterable[str]) -> list[str]:
    return [USER_FEATURE_PREFIX + name for name in names]


def term_feature_names(terms: Iterable[str]) -> list[str]:
    return [TERM_PREFIX + term for term in terms]
