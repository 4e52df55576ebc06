"""recommender.ids: ids as a UTF-8 blob + offsets and the hash index over them (pure
numpy, no Django)."""

import tracemalloc

import numpy as np
import pytest

from recommender.ids import MAX_ID_LENGTH, IdArray, IdIndex, id_array_check, id_hash, ids_hash


def test_an_id_array_round_trips_strings_including_non_ascii_and_empty_ones():
    ids = IdArray.from_strings(["b", "", "ü-é", "shop/42"])
    assert len(ids) == 4
    assert ids.tolist() == ["b", "", "ü-é", "shop/42"]
    assert ids[2] == "ü-é" and ids[-1] == "shop/42"
    assert ids.offsets.tolist() == [0, 1, 1, 6, 13]
    with pytest.raises(IndexError):
        ids[4]


@pytest.mark.parametrize("n", [3, 300])  # below and above the bulk decoding threshold
def test_strings_at_decodes_ascii_and_non_ascii_blobs(n):
    for word in ("id", "ïd"):
        strings = [f"{word}-{i}" for i in range(n)]
        ids = IdArray.from_strings(strings)
        picked = np.array([n - 1, 0, n // 2])
        positions = np.repeat(picked, 30)
        assert ids.strings_at(positions) == [strings[i] for i in positions]


def test_take_and_concat_copy_only_the_chosen_ids():
    ids = IdArray.from_strings(["a", "bb", "ccc", "dddd"])
    taken = ids.take(np.array([3, 1]))
    assert taken.tolist() == ["dddd", "bb"] and taken.blob.size == 6
    assert ids.take(np.array([], dtype=np.int64)).tolist() == []
    assert taken.concat(IdArray.from_strings(["é"])).tolist() == ["dddd", "bb", "é"]
    assert taken.concat(IdArray.empty()) is taken


def test_memory_follows_the_ids_real_length_not_the_longest_one():
    short = [f"item-{n:06d}" for n in range(100_000)]
    without = IdArray.from_strings([*short, "item-x"])
    with_long = IdArray.from_strings([*short, "i" * MAX_ID_LENGTH])
    assert with_long.nbytes - without.nbytes == MAX_ID_LENGTH - len("item-x")
    # A fixed-width unicode array of the same ids: 4 bytes x 255 per id (102 MB).
    assert np.asarray([*short, "i" * MAX_ID_LENGTH]).nbytes > 50 * with_long.nbytes
    assert IdIndex(with_long).nbytes == 16 * len(with_long)


def test_the_index_finds_positions_and_reports_unknown_ids_as_minus_one():
    index = IdIndex(["b", "a", "cc", "c", "ü-é", ""])
    queries = ["a", "cc", "zz", "c", "ccc", "", "ü-é", "b", "ü"]
    assert index.positions(queries).tolist() == [1, 2, -1, 3, -1, 5, 4, 0, -1]
    assert [index.position(q) for q in queries] == [1, 2, None, 3, None, 5, 4, 0, None]
    assert index.positions(IdArray.from_strings(queries)).tolist() == [
        1, 2, -1, 3, -1, 5, 4, 0, -1,
    ]  # fmt: skip
    assert index.positions([]).tolist() == []


def test_an_empty_index_finds_nothing():
    empty = IdIndex(IdArray.empty())
    assert empty.positions(["a"]).tolist() == [-1]
    assert empty.position("a") is None


def test_the_index_does_not_match_a_longer_id_by_its_prefix():
    index = IdIndex(["ab"])
    assert index.positions(["abc"]).tolist() == [-1]
    assert index.position("abc") is None


def test_equal_ids_resolve_to_the_first_position():
    index = IdIndex(["x", "y", "x", "z", "y"])
    assert index.positions(["x", "y", "z"]).tolist() == [0, 1, 3]
    assert index.position("y") == 1


def test_bulk_lookups_of_many_ids_match_position_by_position():
    stored = [f"user-{n}" for n in range(5_000)]
    index = IdIndex(IdArray.from_strings(stored))
    queries = IdArray.from_strings([*reversed(stored), "user-x", "user-5000"])
    assert index.positions(queries).tolist() == [*range(4_999, -1, -1), -1, -1]


@pytest.mark.parametrize("query_length", [4_000, MAX_ID_LENGTH])
def test_a_query_longer_than_every_id_is_not_found_without_copying_the_index(query_length):
    """A fixed-width index compared a 4,000-character query by copying every id at that
    width (5,000 ids: 80 MB; 200k ids: 3.2 GB); a 255-character one against 10-character
    ids, 5 MB here. Now it is "not found" before anything is hashed or searched."""
    index = IdIndex([f"user-{n:05d}" for n in range(5_000)])
    query = "u" * query_length
    tracemalloc.start()
    try:
        assert index.positions([query, "user-00042"]).tolist() == [-1, 42]
        assert index.position(query) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_a_valid_blob_and_offsets_pass_the_check():
    ids = IdArray.from_strings(["a", "ü-é", ""])
    assert id_array_check(ids.blob, ids.offsets) is None


@pytest.mark.parametrize(
    ("blob", "offsets", "problem"),
    [
        (b"ab", [0, 2, 1, 2], "must not decrease"),
        (b"ab", [0, 1], "end at the blob's size"),
        (b"ab", [1, 2], "start at 0"),
        ("é".encode(), [0, 1, 2], "cuts a UTF-8 character"),
        (b"a\xff", [0, 2], "not valid UTF-8"),
    ],
)
def test_inconsistent_blobs_and_offsets_are_named(blob, offsets, problem):
    found = id_array_check(np.frombuffer(blob, dtype=np.uint8), np.asarray(offsets, dtype=np.int64))
    assert problem in found


def test_wrong_dtypes_are_named():
    assert "uint8" in id_array_check(np.zeros(2, np.int32), np.array([0, 2], np.int64))
    assert "int64" in id_array_check(np.zeros(2, np.uint8), np.array([0, 2], np.int32))


def test_the_vectorised_hash_of_every_id_is_the_hash_of_each_one():
    ids = ["", "a", "ab", "ba", "ü-é", "x" * MAX_ID_LENGTH, "user-1", "user-10", "\ud800"]
    hashes = ids_hash(IdArray.from_strings(ids))
    assert hashes.dtype == np.int64
    assert hashes.tolist() == [id_hash(i) for i in ids]
    assert len(set(hashes.tolist())) == len(ids)
    assert ids_hash(IdArray.empty()).tolist() == []
