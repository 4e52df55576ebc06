"""Item titles as TF-IDF features (issue 15): the vocabulary fitted in training by
scikit-learn, the one transform (``TitleTerms.weights``, no scikit-learn) used by
training and serving, and that transform equal to ``TfidfVectorizer.transform``."""

import numpy as np

from recommender.text_features import TitleTerms
from training.title_terms import title_terms_fit, title_vectorizer

TITLES = ["The Red Heist (1995)", "Red Planet", "A Blue Heist", "Blue Moon 2", "Moonlight"]


def test_the_vocabulary_holds_words_of_two_titles_or_more_without_digits_or_stop_words():
    terms, weights = title_terms_fit(TITLES, max_terms=100)

    assert terms.terms == ["blue", "heist", "red"]
    assert weights.shape == (len(TITLES), 3)
    assert weights[4].nnz == 0  # "moonlight" is one title's word only


def test_the_largest_vocabulary_keeps_the_most_frequent_words():
    terms, _ = title_terms_fit(TITLES + ["Red Moon", "Red Sky"], max_terms=1)
    assert terms.terms == ["red"]


def test_serving_weighs_a_title_as_training_did():
    terms, weights = title_terms_fit(TITLES, max_terms=100)

    again = terms.weights(TITLES)

    np.testing.assert_array_equal(again.toarray(), weights.toarray())
    row = terms.weights(["red heist, red"]).toarray()[0]
    assert row[2] > row[1] > 0 and row[0] == 0  # "red" twice (sublinear tf), "heist" once
    np.testing.assert_allclose(np.linalg.norm(row), 1.0, rtol=1e-6)


def test_titles_without_shared_words_give_no_features():
    assert title_terms_fit(["Alpha", "Beta", "Gamma"], max_terms=100) is None
    assert title_terms_fit(TITLES, max_terms=0) is None


def test_no_titles_weigh_nothing():
    terms, _ = title_terms_fit(TITLES, max_terms=100)
    assert terms.weights([]).shape == (0, 3)


def test_the_transform_gives_the_vectorizers_weights():
    rng = np.random.default_rng(7)
    words = ["red", "blue", "heist", "moon", "planet", "night", "the", "of", "Ünïcode", "x"]
    titles = [
        " ".join(rng.choice(words, size=rng.integers(0, 8)).tolist()) + f" ({1990 + i})"
        for i in range(300)
    ]
    terms, _ = title_terms_fit(titles, max_terms=100)
    vectorizer = title_vectorizer(vocabulary=terms.terms)
    vectorizer.idf_ = np.asarray(terms.idf, dtype=np.float64)
    expected = vectorizer.transform(titles).toarray()

    ours = TitleTerms(terms.terms, terms.idf).weights(titles).toarray()

    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7)
