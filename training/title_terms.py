"""Fitting the title vocabulary of the item features with scikit-learn's
``TfidfVectorizer`` (``recommender/text_features.py`` holds the fitted ``TitleTerms`` and
the one transform that weighs titles with it, in training and in serving)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.text_features import TOKEN_PATTERN, TitleTerms

MIN_TITLES = 2  # a word must appear in this many training titles to become a feature


def title_vectorizer(**options) -> TfidfVectorizer:
    """The vectorizer whose weights ``TitleTerms.weights`` reproduces."""
    return TfidfVectorizer(
        lowercase=True,
        token_pattern=TOKEN_PATTERN,
        stop_words="english",
        sublinear_tf=True,
        dtype=np.float32,
        **options,
    )


def title_terms_fit(
    titles: Sequence[str], max_terms: int
) -> tuple[TitleTerms, sp.csr_matrix] | None:
    """The vocabulary of ``titles`` (at most ``max_terms`` words, each in ``MIN_TITLES``
    titles or more, English stop words left out) and each title's weights; None when no
    word qualifies."""
    if max_terms <= 0 or len(titles) < MIN_TITLES:
        return None
    vectorizer = title_vectorizer(max_features=max_terms, min_df=MIN_TITLES)
    try:
        vectorizer.fit(list(titles))
    except ValueError:  # an empty vocabulary
        return None
    terms = vectorizer.get_feature_names_out().tolist()
    fitted = TitleTerms(terms, np.asarray(vectorizer.idf_, dtype=np.float32))
    # Weighed as serving will weigh a new title: with the stored (float32) idf.
    return fitted, fitted.weights(titles)
