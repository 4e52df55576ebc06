"""``manage.py import_dataset`` and ``manage.py generate_demo_data`` end to end."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from recommender.models import Event, Item, UserProfile

ML_100K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ml-100k"

EVENTS_CSV = (
    "user_id,item_id,timestamp,type,weight\n"
    "u1,i1,2024-05-01T12:00:00Z,view,\n"
    "u1,i2,1714564800,like,\n"
    "u2,i1,2024-05-02 08:00:00,purchase,2\n"
)
ITEMS_CSV = "item_id,title,categories\ni1,Green tea,Grocery|Tea\ni2,Kettle,Home\n"


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_dataset", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def csv_files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "events.csv", EVENTS_CSV), write(tmp_path / "items.csv", ITEMS_CSV)


@pytest.mark.django_db
def test_csv_import_stores_items_and_events_and_prints_a_summary(csv_files):
    events, items = csv_files

    output = run(str(events), "--format", "csv", "--items", str(items))

    assert "3 new, 0 already stored, 0 rejected" in output
    assert "2 created, 0 updated" in output
    assert Item.objects.get(external_id="i1").categories == ["Grocery", "Tea"]
    assert sorted(Event.objects.values_list("event_type", flat=True)) == [
        "like",
        "purchase",
        "view",
    ]
    assert Event.objects.get(event_type="purchase").weight == 2.0


@pytest.mark.django_db
def test_csv_reimport_adds_nothing(csv_files):
    events, items = csv_files
    run(str(events), "--format", "csv", "--items", str(items))

    output = run(str(events), "--format", "csv", "--items", str(items))

    assert "0 new, 3 already stored, 0 rejected" in output
    assert "0 created, 0 updated" in output
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_a_malformed_line_fails_with_file_and_line_and_keeps_earlier_batches(tmp_path):
    path = write(tmp_path / "events.csv", EVENTS_CSV + "u3,i3\n")

    with pytest.raises(CommandError) as caught:
        run(str(path), "--format", "csv", "--batch-size", "2")

    assert caught.value.returncode == 1
    assert f"{path}:5: expected 5 fields" in str(caught.value)
    assert "idempotent" in str(caught.value)
    assert Event.objects.count() == 2  # the first batch stays


@pytest.mark.django_db
def test_an_invalid_event_fails_with_file_and_line(tmp_path):
    path = write(tmp_path / "events.csv", EVENTS_CSV.replace("like", "teleport"))

    with pytest.raises(CommandError) as caught:
        run(str(path), "--format", "csv")

    assert caught.value.returncode == 1
    assert f"{path}:3: type unknown event type 'teleport'" in str(caught.value)
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_skip_invalid_counts_and_names_the_rejected_rows(tmp_path):
    path = write(
        tmp_path / "events.csv",
        EVENTS_CSV.replace("like", "teleport") + "u3,i3\n" + "u4,i4,2024-05-03T00:00:00,view,\n",
    )

    output = run(str(path), "--format", "csv", "--skip-invalid")

    assert "5 event rows read" in output
    assert "3 new, 0 already stored, 2 rejected" in output
    assert f"{path}:3: type unknown event type" in output
    assert f"{path}:5: expected 5 fields" in output
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_an_invalid_item_fails_with_file_and_line(tmp_path, csv_files):
    events, _ = csv_files
    items = write(tmp_path / "bad-items.csv", "item_id,title\ni1,ok\ni2," + "x" * 501 + "\n")

    with pytest.raises(CommandError) as caught:
        run(str(events), "--format", "csv", "--items", str(items))

    assert caught.value.returncode == 1
    assert f"{items}:3: title must be at most 500 characters" in str(caught.value)


@pytest.mark.django_db
def test_a_missing_path_is_a_bad_argument(tmp_path):
    with pytest.raises(CommandError) as caught:
        run(str(tmp_path / "missing"), "--format", "movielens")

    assert caught.value.returncode == 2
    assert "does not exist" in str(caught.value)


@pytest.mark.django_db
def test_a_directory_of_the_wrong_format_is_a_bad_argument(tmp_path):
    with pytest.raises(CommandError) as caught:
        run(str(tmp_path), "--format", "movielens")

    assert caught.value.returncode == 2


def test_help_documents_the_csv_layout_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        call_command("import_dataset", "--help")

    text = capsys.readouterr().out
    assert "user_id,item_id,timestamp" in text
    assert "exit codes:" in text and "2  bad arguments" in text


@pytest.mark.django_db
def test_generate_demo_data_writes_through_ingest_and_is_idempotent():
    args = ("--users", "40", "--items", "30", "--events", "600", "--seed", "7", "--days", "7")
    first, second = StringIO(), StringIO()

    call_command("generate_demo_data", *args, stdout=first, stderr=StringIO())
    call_command("generate_demo_data", *args, stdout=second, stderr=StringIO())

    assert "600 new" in first.getvalue()
    assert "0 new, 600 already stored" in second.getvalue()
    assert Event.objects.count() == 600
    assert Event.objects.filter(event_id="demo:7:0").exists()
    assert Item.objects.count() == 30 and UserProfile.objects.count() == 40
    assert set(Event.objects.values_list("event_type", flat=True)) <= {
        "view",
        "click",
        "like",
        "purchase",
    }


@pytest.mark.dataset
@pytest.mark.slow
@pytest.mark.django_db
def test_movielens_100k_imports_completely_and_reimports_as_duplicates():
    if not (ML_100K / "u.data").is_file():
        pytest.skip(f"MovieLens 100K not found at {ML_100K.resolve()}")

    output = run(str(ML_100K), "--format", "movielens")

    assert "100,000 new, 0 already stored, 0 rejected" in output
    assert Event.objects.count() == 100_000
    assert Item.objects.count() == 1_682
    assert UserProfile.objects.count() == 943
    assert Item.objects.get(external_id="1").categories == ["Animation", "Children's", "Comedy"]
    assert "Misérables" in Item.objects.get(external_id="543").title

    again = run(str(ML_100K), "--format", "movielens")

    assert "0 new, 100,000 already stored, 0 rejected" in again
    assert Event.objects.count() == 100_000


@pytest.mark.django_db
def test_a_nul_in_u_user_is_skipped_with_skip_invalid_and_named_without(tmp_path):
    write(tmp_path / "u.data", "196\t242\t3\t881250949\n")
    write(
        tmp_path / "u.item", "242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join("0" * 19) + "\n"
    )
    (tmp_path / "u.user").write_bytes(b"196|24|M|technician|85711\n186|53|F|oth\x00er|94043\n")

    with pytest.raises(CommandError) as caught:
        run(str(tmp_path), "--format", "movielens")
    assert caught.value.returncode == 1
    assert f"{tmp_path / 'u.user'}:2: the line contains a NUL byte" in str(caught.value)

    output = run(str(tmp_path), "--format", "movielens", "--skip-invalid")
    assert "1 profiles written, 1 rejected" in output
    assert Event.objects.count() == 1
