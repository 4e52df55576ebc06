"""The dataset readers, on small files written to tmp_path (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.datasets import (
    CsvDataset,
    MovieLens1M,
    MovieLens100K,
    age_group,
    open_dataset,
)
from recommender.exceptions import DatasetLineInvalid, DatasetSourceInvalid

GENRES = "unknown|0\nAction|1\nComedy|2\n\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def ml100k(tmp_path: Path) -> Path:
    write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t5\t891717742\n")
    write(tmp_path / "u.genre", GENRES)
    write(
        tmp_path / "u.item",
        "242|Kolya (1996)|24-Jan-1997||http://x|0|0|1\n"
        "302|Misérables, Les (1995)|01-Jan-1995||http://y|0|1|1\n",
        encoding="latin-1",
    )
    write(tmp_path / "u.user", "196|24|M|technician|85711\n186|53|F|other|94043\n")
    return tmp_path


@pytest.fixture
def ml1m(tmp_path: Path) -> Path:
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    write(
        tmp_path / "movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::Château de ma mère, Le (1990)::Comedy|Drama\n",
        encoding="latin-1",
    )
    write(tmp_path / "users.dat", "1::F::1::10::48067\n")
    return tmp_path


def test_movielens_100k_is_detected_from_u_data(ml100k):
    assert isinstance(open_dataset(ml100k, format="movielens"), MovieLens100K)


def test_movielens_100k_ratings_become_rating_events_with_deterministic_ids(ml100k):
    events = list(open_dataset(ml100k, format="movielens").events())

    assert [record.data for record in events] == [
        {
            "event_id": "ml:196:242:881250949",
            "user_id": "196",
            "item_id": "242",
            "type": "rating",
            "timestamp": 881250949,
            "weight": 3.0,
        },
        {
            "event_id": "ml:186:302:891717742",
            "user_id": "186",
            "item_id": "302",
            "type": "rating",
            "timestamp": 891717742,
            "weight": 5.0,
        },
    ]
    assert [record.where for record in events] == [f"{ml100k / 'u.data'}:{n}" for n in (1, 2)]


def test_movielens_100k_items_take_latin1_titles_and_genres_named_by_u_genre(ml100k):
    items = [record.data for record in open_dataset(ml100k, format="movielens").items()]

    assert items == [
        {"item_id": "242", "title": "Kolya (1996)", "categories": ["Comedy"]},
        {"item_id": "302", "title": "Misérables, Les (1995)", "categories": ["Action", "Comedy"]},
    ]


def test_movielens_100k_users_become_feature_lists(ml100k):
    users = [record.data for record in open_dataset(ml100k, format="movielens").users()]

    assert users == [
        {"user_id": "196", "features": ["gender:M", "age:18-24", "occupation:technician"]},
        {"user_id": "186", "features": ["gender:F", "age:50-55", "occupation:other"]},
    ]


def test_movielens_1m_layout_is_read_with_latin1_titles_and_decoded_users(ml1m):
    dataset = open_dataset(ml1m / "ratings.dat", format="movielens")

    assert isinstance(dataset, MovieLens1M)
    assert [record.data["event_id"] for record in dataset.events()] == [
        "ml:1:1193:978300760",
        "ml:1:661:978302109",
    ]
    assert [record.data for record in dataset.items()][1] == {
        "item_id": "661",
        "title": "Château de ma mère, Le (1990)",
        "categories": ["Comedy", "Drama"],
    }
    assert [record.data for record in dataset.users()] == [
        {"user_id": "1", "features": ["gender:F", "age:under-18", "occupation:K-12 student"]}
    ]


@pytest.mark.parametrize(
    ("age", "group"), [(1, "under-18"), (17, "under-18"), (18, "18-24"), (49, "45-49"), (73, "56+")]
)
def test_age_groups_follow_movielens_1m(age, group):
    assert age_group(age) == group


def test_a_directory_without_ratings_is_refused(tmp_path):
    with pytest.raises(DatasetSourceInvalid, match="neither u.data"):
        open_dataset(tmp_path, format="movielens")


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(DatasetSourceInvalid, match="does not exist"):
        open_dataset(tmp_path / "nope.csv", format="csv")


def test_a_malformed_movielens_line_names_file_and_line(ml100k):
    write(ml100k / "u.data", "196\t242\t3\t881250949\n\n186\t302\t5\n")

    with pytest.raises(DatasetLineInvalid) as caught:
        list(open_dataset(ml100k, format="movielens").events())

    assert (caught.value.file, caught.value.line) == (str(ml100k / "u.data"), 3)
    assert "expected 4" in caught.value.reason and "found 3" in caught.value.reason
    assert str(caught.value).startswith(f"{ml100k / 'u.data'}:3: ")


def test_a_non_numeric_rating_is_malformed(ml100k):
    write(ml100k / "u.data", "196\t242\tgood\t881250949\n")

    with pytest.raises(DatasetLineInvalid, match=r"u\.data:1: rating 'good'"):
        list(open_dataset(ml100k, format="movielens").events())


def test_on_malformed_collects_bad_lines_and_reading_continues(ml100k):
    write(ml100k / "u.data", "1\t2\t3\n196\t242\t3\t881250949\nx\n")
    seen: list[DatasetLineInvalid] = []

    events = list(open_dataset(ml100k, format="movielens").events(seen.append))

    assert [record.line for record in events] == [2]
    assert [error.line for error in seen] == [1, 3]


def test_bytes_read_reaches_the_total_for_progress(ml100k):
    dataset = open_dataset(ml100k, format="movielens")
    for reader in (dataset.items, dataset.users, dataset.events):
        list(reader())

    assert dataset.bytes_read == dataset.total_bytes() > 0


def test_csv_events_take_the_api_shape_with_numbers_converted(tmp_path):
    path = write(
        tmp_path / "events.csv",
        "user_id,item_id,timestamp,type,weight,event_id,extra\n"
        "u1,i1,2024-05-01T12:00:00Z,like,2.5,e-1,ignored\n"
        "u2,i2,1714564800,,,,\n",
    )

    events = [record.data for record in open_dataset(path, format="csv").events()]

    assert events[0] == {
        "event_id": "e-1",
        "user_id": "u1",
        "item_id": "i1",
        "type": "like",
        "timestamp": "2024-05-01T12:00:00Z",
        "weight": 2.5,
    }
    assert events[1]["type"] == "view"
    assert events[1]["timestamp"] == 1714564800
    assert events[1]["weight"] is None
    assert events[1]["event_id"].startswith("csv:")


def test_csv_event_ids_without_a_column_are_stable_and_differ_by_row(tmp_path):
    text = "user_id,item_id,timestamp\nu1,i1,1714564800\nu1,i2,1714564800\n"
    first = write(tmp_path / "a.csv", text)
    renamed = write(tmp_path / "b.csv", text)

    ids = [record.data["event_id"] for record in CsvDataset(first).events()]

    assert ids == [record.data["event_id"] for record in CsvDataset(renamed).events()]
    assert len(set(ids)) == 2


def test_csv_items_split_categories_on_pipes(tmp_path):
    events = write(tmp_path / "events.csv", "user_id,item_id,timestamp\n")
    items = write(
        tmp_path / "items.csv",
        'item_id,title,categories\ni1,"Tea, green",Grocery| Tea |\ni2,,\n',
    )

    rows = [record.data for record in open_dataset(events, format="csv", items_path=items).items()]

    assert rows == [
        {"item_id": "i1", "title": "Tea, green", "categories": ["Grocery", "Tea"]},
        {"item_id": "i2"},
    ]


def test_csv_header_without_a_required_column_is_refused_at_line_1(tmp_path):
    path = write(tmp_path / "events.csv", "user,item_id,timestamp\nu1,i1,1\n")

    with pytest.raises(DatasetLineInvalid, match=r"events\.csv:1: .*user_id"):
        list(CsvDataset(path).events(on_malformed=lambda error: None))


def test_csv_row_with_the_wrong_field_count_names_its_line(tmp_path):
    path = write(
        tmp_path / "events.csv",
        'user_id,item_id,timestamp\nu1,i1,1\n\nu2,"multi\nline",2\nu3,i3\n',
    )

    with pytest.raises(DatasetLineInvalid) as caught:
        list(CsvDataset(path).events())

    assert caught.value.line == 6
    assert "expected 3 fields" in caught.value.reason


def test_csv_that_is_not_utf8_is_malformed(tmp_path):
    path = write(tmp_path / "events.csv", "user_id,item_id,timestamp\nRené,i1,1\n", "latin-1")

    with pytest.raises(DatasetLineInvalid, match=r"events\.csv:2: not valid utf-8"):
        list(CsvDataset(path).events())


def test_items_file_only_goes_with_csv(ml100k):
    with pytest.raises(DatasetSourceInvalid, match="only goes with --format csv"):
        open_dataset(ml100k, format="movielens", items_path=ml100k / "u.item")


class CountingText(str):
    """A string that counts how often its characters are read by index."""

    reads = 0

    def __getitem__(self, key):
        CountingText.reads += 1
        return super().__getitem__(key)


def test_the_number_check_reads_each_character_a_bounded_number_of_times():
    """Linear by construction: a single pass. The regular expression it replaces
    backtracked quadratically: 12 s on one 20,000-digit cell followed by a letter."""
    from recommender.datasets import looks_numeric

    cell = CountingText("1" * 20_000 + "x")
    CountingText.reads = 0
    assert looks_numeric(cell) is False
    assert len(cell) <= CountingText.reads <= len(cell) + 4


@pytest.mark.parametrize(
    "text,numeric",
    [
        ("42", True),
        ("-1.5", True),
        ("+.5", True),
        ("12.", True),
        ("1e5", True),
        ("2.5E-3", True),
        (".", False),
        ("e5", False),
        ("1e", False),
        ("1e+", False),
        ("1.2.3", False),
        ("2024-05-01", False),
        ("١٢", False),  # non-ASCII digits are text
        ("", False),
    ],
)
def test_the_number_check_accepts_what_the_old_pattern_accepted(text, numeric):
    from recommender.datasets import looks_numeric

    assert looks_numeric(text) is numeric


def test_a_20000_character_cell_is_read_and_passed_on(tmp_path):
    cell = "9" * 20_000
    path = write(tmp_path / "events.csv", f"user_id,item_id,timestamp,weight\nu1,i1,0,{cell}x\n")
    (record,) = CsvDataset(path).events()
    assert record.data["weight"] == cell + "x"


def test_a_nul_byte_makes_a_line_malformed_naming_file_and_line(ml100k):
    write(ml100k / "u.user", "196|24|M|technician|85711\n186|5\x003|F|other|94043\n")
    with pytest.raises(DatasetLineInvalid) as caught:
        list(MovieLens100K(ml100k).users())
    assert (caught.value.line, caught.value.reason) == (2, "the line contains a NUL byte")
    skipped: list[DatasetLineInvalid] = []
    users = list(MovieLens100K(ml100k).users(on_malformed=skipped.append))
    assert [record.data["user_id"] for record in users] == ["196"]
    assert [error.line for error in skipped] == [2]


def test_a_line_longer_than_the_maximum_is_malformed_and_the_next_line_is_read(tmp_path):
    long_line = "u1,i1,0," + "7" * 5_000
    path = write(
        tmp_path / "events.csv",
        f"user_id,item_id,timestamp,weight\n{long_line}\nu2,i2,0,1\n",
    )
    dataset = open_dataset(path, format="csv", max_line_bytes=1_000)
    with pytest.raises(DatasetLineInvalid) as caught:
        list(dataset.events())
    assert caught.value.line == 2 and "longer than 1,000 bytes" in caught.value.reason
    dataset = open_dataset(path, format="csv", max_line_bytes=1_000)
    skipped: list[DatasetLineInvalid] = []
    events = list(dataset.events(on_malformed=skipped.append))
    assert [event.data["user_id"] for event in events] == ["u2"]
    assert [event.line for event in events] == [3]
    assert dataset.bytes_read == path.stat().st_size


def test_a_line_of_exactly_the_maximum_is_accepted(tmp_path):
    header = "user_id,item_id,timestamp"
    user = "u" * (len(header) - len(",i1,0"))
    path = write(tmp_path / "events.csv", f"{header}\n{user},i1,0\r\n")
    dataset = open_dataset(path, format="csv", max_line_bytes=len(header))
    assert [event.data["user_id"] for event in dataset.events()] == [user]
