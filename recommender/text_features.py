"""Item titles as features: TF-IDF weights of their words through scikit-learn's
``TfidfVectorizer``, so an item without categories (or with none the model knows) still
gets a content-based start in the hybrid model. Plain Python, no Django.

Training fits the vocabulary (at most ``max_terms`` words, each in at least two titles)
and the idf on the titles of the items it trains on; the artifact keeps the vocabulary
as ``term:`` feature names and the idf as ``item_term_idf`` (``recommender.artifacts``).
Serving rebuilds the same vectorizer from them to weigh a new item's title, so a word
weighs at serving what it weighed in training. One vectorizer definition, here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

# Words of two or more letters: digits (a film's year) and punctuation are not terms.
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"
MIN_TITLES = 2  # a word must appear in this many training titles to become a feature


def _vectorizer(**options) -> TfidfVectorizer:
    return TfidfVectorizer(
        lowercase=True,
        token_pattern=TOKEN_PATTERN,
        stop_words="english",
        sublinear_tf=True,
        dtype=np.float32,
        **options,
    )


@dataclass(frozen=True, eq=False)
class TitleTerms:
    """A fitted vocabulary: ``terms[i]`` has inverse document frequency ``idf[i]``."""

    terms: list[str]
    idf: np.ndarray

    def weights(self, titles: Sequence[str]) -> sp.csr_matrix:
        """``(titles, terms)`` float32: each title's TF-IDF weights (L2-normalised over
        the known terms; a title without one is an empty row)."""
        if not self.terms or not titles:
            return sp.csr_matrix((len(titles), len(self.terms)), dtype=np.float32)
        vectorizer = _vectorizer(vocabulary=self.terms)
        vectorizer.idf_ = np.asarray(self.idf, dtype=np.float64)
        return sp.csr_matrix(vectorizer.transform(list(titles)), dtype=np.float32)


def title_terms_fit(
    titles: Sequence[str], max_terms: int
) -> tuple[TitleTerms, sp.csr_matrix] | None:
    """The vocabulary of ``titles`` and each title's weights; None when no word appears
    in ``MIN_TITLES`` titles."""
    if max_terms <= 0 or len(titles) < MIN_TITLES:
        return None
    vectorizer = _vectorizer(max_features=max_terms, min_df=MIN_TITLES)
    try:
        vectorizer.fit(list(titles))
    except ValueError:  # an empty vocabulary
        return None
    terms = vectorizer.get_feature_names_out().tolist()
    fitted = TitleTerms(terms, np.asarray(vectorizer.idf_, dtype=np.float32))
    # Weighed as serving will weigh a new title: with the stored (float32) idf.
    return fitted, fitted.weights(titles)
