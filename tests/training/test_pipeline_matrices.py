import numpy as np
import pytest
import scipy.sparse as sp

from training.pipeline.matrices import (
    FeatureMatrix,
    IdMap,
    Interactions,
    codes_of,
    distinct,
    feature_matrix,
    interaction_matrix,
)


def _interactions(users, items, weights, timestamps=None) -> Interactions:
    n = len(users)
    return Interactions(
        np.array(users),
        np.array(items),
        np.array(weights, dtype=np.float32),
        np.array(timestamps if timestamps is not None else range(n), dtype=np.float64),
    )


def test_id_map_from_values_gives_sorted_ids_and_codes():
    id_map, codes = IdMap.from_values(np.array(["b", "a", "c", "a"]))
    assert id_map.ids.tolist() == ["a", "b", "c"]
    assert codes.tolist() == [1, 0, 2, 0]


def test_id_map_lookup_in_arbitrary_order_and_missing():
    id_map = IdMap(["z", "x", "y"])
    assert id_map.indices(["y", "z", "nope", "x"]).tolist() == [2, 0, -1, 1]
    assert id_map.index_of("x") == 1
    assert id_map.index_of("missing") is None
    assert id_map.external([2, 0]).tolist() == ["y", "z"]
    assert len(id_map) == 3


def test_id_map_rejects_duplicates():
    with pytest.raises(ValueError, match="unique"):
        IdMap(["a", "b", "a"])


def test_empty_id_map_finds_nothing():
    assert IdMap([]).indices(["a"]).tolist() == [-1]


def test_duplicate_pairs_are_summed_by_default():
    inter = _interactions([0, 0, 0, 1], [1, 1, 2, 0], [1.0, 5.0, 3.0, 2.0])
    m = interaction_matrix(inter, 2, 3)
    assert m.dtype == np.float32
    assert m.toarray().tolist() == [[0, 6, 3], [2, 0, 0]]
    assert m.nnz == 3


def test_duplicate_pairs_keep_the_max_when_asked():
    inter = _interactions([0, 0, 0, 1, 1], [1, 1, 2, 0, 0], [1.0, 5.0, 3.0, 2.0, 1.0])
    m = interaction_matrix(inter, 2, 3, duplicates="max")
    assert m.toarray().tolist() == [[0, 5, 3], [2, 0, 0]]


def test_interaction_matrix_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="item index"):
        interaction_matrix(_interactions([0], [3], [1.0]), 1, 3)


def test_feature_matrix_is_identity_plus_row_normalised_features():
    items = IdMap(["i0", "i1", "i2"])
    fm = feature_matrix(
        items,
        np.array([0, 0, 1, 0]),
        np.array(["tag:b", "cat:a", "cat:a", "tag:b"]),  # (0, tag:b) twice counts once
    )
    assert fm.names.tolist() == ["id:i0", "id:i1", "id:i2", "cat:a", "tag:b"]
    expected = np.array(
        [
            [1 / 3, 0, 0, 1 / 3, 1 / 3],
            [0, 0.5, 0, 0.5, 0],
            [0, 0, 1, 0, 0],
        ]
    )
    np.testing.assert_allclose(fm.matrix.toarray(), expected, rtol=1e-6)
    assert fm.matrix.dtype == np.float32


def test_feature_matrix_without_normalisation_is_binary():
    fm = feature_matrix(IdMap(["u"]), np.array([0]), np.array(["age:30s"]), normalize=False)
    assert fm.matrix.toarray().tolist() == [[1.0, 1.0]]


def test_feature_matrix_appends_weighted_columns_before_normalising():
    ids = IdMap(["a", "b"])
    terms = FeatureMatrix(
        sp.csr_matrix(np.asarray([[0.6, 0.8], [0.0, 0.0]], np.float32)),
        np.asarray(["term:red", "term:sky"]),
    )

    result = feature_matrix(ids, np.asarray([0]), ["category:x"], weighted=terms)

    assert result.names.tolist() == ["id:a", "id:b", "category:x", "term:red", "term:sky"]
    np.testing.assert_allclose(
        result.matrix.toarray(),
        [[1 / 3.4, 0, 1 / 3.4, 0.6 / 3.4, 0.8 / 3.4], [0, 1, 0, 0, 0]],
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    "values",
    [
        np.array([], dtype=np.int64),
        np.array([5, 3, 5, 0, 3, 9]),
        np.random.default_rng(0).integers(0, 50, 500),  # dense range: the table
        np.random.default_rng(1).integers(0, 10**12, 500),  # wide range: np.unique
    ],
)
def test_distinct_and_codes_of_equal_np_unique(values):
    np.testing.assert_array_equal(distinct(values), np.unique(values))
    uniques, codes = codes_of(values)
    expected, inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(uniques, expected)
    np.testing.assert_array_equal(codes, inverse)
    assert codes.dtype == np.int64
