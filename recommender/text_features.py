"""Item titles as features: TF-IDF weights of their words, so an item without categories
(or with none the model knows) still gets a content-based start in the hybrid model.
Plain Python and numpy, no Django, no scikit-learn.

Training fits the vocabulary and the idf with scikit-learn's ``TfidfVectorizer``
(``training/title_terms.py``, the same ``TOKEN_PATTERN``); the artifact keeps the
vocabulary as ``term:`` feature names and the idf as ``item_term_idf``
(``recommender.artifacts``). ``TitleTerms.weights`` is the one transform: training weighs
its items' titles with it and serving a new item's, so a word weighs at serving what it
weighed in training, and a web process never loads scikit-learn (tests check it gives
``TfidfVectorizer.transform``'s weights)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

# Words of two or more letters: digits (a film's year) and punctuation are not terms.
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"
_TOKEN = re.compile(TOKEN_PATTERN)


@dataclass(frozen=True, eq=False)
class TitleTerms:
    """A fitted vocabulary: ``terms[i]`` has inverse document frequency ``idf[i]``."""

    terms: list[str]
    idf: np.ndarray

    @cached_property
    def _columns(self) -> dict[str, int]:
        return {term: column for column, term in enumerate(self.terms)}

    def weights(self, titles: Sequence[str]) -> sp.csr_matrix:
        """``(titles, terms)`` float32: each title's known words weighted ``(1 + ln tf)
        x idf`` (sublinear term frequency), L2-normalised per title; a title without a
        known word is an empty row."""
        columns = self._columns
        idf = np.asarray(self.idf, dtype=np.float64)
        indptr, indices, data = [0], [], []
        for title in titles:
            counts = Counter(t for t in _TOKEN.findall(title.lower()) if t in columns)
            if counts:
                at = np.fromiter((columns[t] for t in counts), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                weight = (1.0 + np.log(tf)) * idf[at]
                weight /= np.linalg.norm(weight)
                order = np.argsort(at)
                indices.extend(at[order].tolist())
                data.extend(weight[order].tolist())
            indptr.append(len(indices))
        return sp.csr_matrix(
            (
                np.asarray(data, dtype=np.float32),
                np.asarray(indices, dtype=np.int32),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(titles), len(self.terms)),
        )
