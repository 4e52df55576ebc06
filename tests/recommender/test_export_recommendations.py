"""``manage.py export_recommendations``: what it writes is what the API answers."""

import csv
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from recommender.models import Item, Scope
from tests.factories import EventFactory
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db

LIMIT = 7


@pytest.fixture
def catalogue(artifact_dir):
    """Six model users, two with events (seen items), one user the model does not know,
    an inactive item, and a new catalogue item scored through its category."""
    spec = default_spec()
    create_catalog(spec)
    version = create_version(spec)
    Item.objects.filter(external_id="item-9").update(active=False)
    Item.objects.create(external_id="new-1", title="New", categories=["drama"])
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for n, (user, item) in enumerate(
        [("user-0", "item-10"), ("user-0", "item-11"), ("user-2", "item-3"), ("stranger", "item-1")]
    ):
        EventFactory(
            event_id=f"e{n}",
            user_external_id=user,
            item=Item.objects.get(external_id=item),
            timestamp=start + timedelta(minutes=n),
        )
    return version


def api_lists(make_api_client, users: list[str]) -> dict[str, tuple[list[str], str | None]]:
    api = make_api_client(Scope.RECOMMENDATIONS_READ)
    lists = {}
    for user in users:
        body = api.get(f"/api/v1/recommendations/{user}", {"limit": LIMIT}).json()
        lists[user] = ([item["item_id"] for item in body["items"]], body["fallback"])
    return lists


def export(tmp_path, *args: str) -> str:
    out = tmp_path / "out"
    call_command(
        "export_recommendations", "--limit", str(LIMIT), "--output", str(out), "--no-progress",
        *args,
    )  # fmt: skip
    return out.read_text()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_jsonl_equals_the_api_for_every_user_with_events(
    catalogue, tmp_path, make_api_client, workers
):
    lines = [json.loads(line) for line in export(tmp_path, "--workers", workers).splitlines()]
    users = [line["user_id"] for line in lines]
    assert users == ["stranger", "user-0", "user-2"]  # users with events, by id
    expected = api_lists(make_api_client, users)
    for line in lines:
        assert ([i["item_id"] for i in line["items"]], line["fallback"]) == expected[
            line["user_id"]
        ]
        assert line["model_version"] == catalogue.number
    by_user = {line["user_id"]: line for line in lines}
    assert by_user["stranger"]["fallback"] == "unknown_user"
    seen_or_inactive = {"item-0", "item-1", "item-2", "item-10", "item-11", "item-9"}
    assert not seen_or_inactive & {i["item_id"] for i in by_user["user-0"]["items"]}


def test_users_file_restricts_and_keeps_its_order(catalogue, tmp_path, make_api_client):
    users = tmp_path / "users.txt"
    users.write_text("user-3\n\nnobody-at-all\nuser-0\n")
    lines = [json.loads(x) for x in export(tmp_path, "--users", str(users)).splitlines()]
    assert [line["user_id"] for line in lines] == ["user-3", "nobody-at-all", "user-0"]
    expected = api_lists(make_api_client, ["user-3", "nobody-at-all", "user-0"])
    for line in lines:
        assert ([i["item_id"] for i in line["items"]], line["fallback"]) == expected[
            line["user_id"]
        ]


def test_csv_has_one_row_per_user_with_the_items_in_columns(catalogue, tmp_path, make_api_client):
    rows = list(csv.reader(export(tmp_path, "--format", "csv").splitlines()))
    assert rows[0] == ["user_id", "model_version", "fallback"] + [
        f"item_{n}" for n in range(1, LIMIT + 1)
    ]
    expected = api_lists(make_api_client, ["stranger", "user-0", "user-2"])
    assert [row[0] for row in rows[1:]] == ["stranger", "user-0", "user-2"]
    for user_id, version, fallback, *items in rows[1:]:
        assert version == str(catalogue.number)
        assert (items, fallback or None) == expected[user_id]


def test_a_named_version_is_exported(catalogue, tmp_path):
    create_version(default_spec(seed=5))  # v2 becomes active
    lines = [json.loads(x) for x in export(tmp_path, "--version", "1").splitlines()]
    assert {line["model_version"] for line in lines} == {1}


def test_an_unknown_version_is_exit_code_2(catalogue, tmp_path):
    with pytest.raises(CommandError) as error:
        export(tmp_path, "--version", "9")
    assert error.value.returncode == 2
    assert not (tmp_path / "out").exists()


def test_no_version_and_no_events_is_exit_code_3(db, tmp_path):
    with pytest.raises(CommandError) as error:
        export(tmp_path)
    assert error.value.returncode == 3


def test_without_a_model_users_are_ranked_by_popularity(db, tmp_path):
    EventFactory(user_external_id="u1")
    EventFactory(user_external_id="u1")
    lines = [json.loads(x) for x in export(tmp_path).splitlines()]
    assert [(line["user_id"], line["fallback"]) for line in lines] == [("u1", "no_model")]
    assert lines[0]["items"] == []  # the user has seen both items with events


def test_stdout(catalogue, capsys):
    call_command(
        "export_recommendations", "--limit", "3", "--output", "-", "--no-progress",
        "--format", "csv",
    )  # fmt: skip
    assert capsys.readouterr().out.splitlines()[1].startswith("stranger,1,unknown_user,")
