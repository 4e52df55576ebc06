"""GET /api/v1/recommendations/{user_id} and /api/v1/items/{item_id}/similar."""

import dataclasses
import tracemalloc
from datetime import UTC, datetime
from urllib.parse import quote

import numpy as np
import pytest

from recommender.ids import MAX_ID_LENGTH
from recommender.models import Item, Scope
from recommender.renderers import json_bytes
from recommender.serving.registry import registry
from tests.factories import EventFactory, ItemFactory
from tests.recommender.serving_helpers import (
    create_catalog,
    create_version,
    default_spec,
    expected_ranking,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/recommendations/{}"


@pytest.fixture
def spec():
    return default_spec()


@pytest.fixture
def model(artifact_dir, spec):
    create_catalog(spec)
    return create_version(spec)


@pytest.fixture
def api(make_api_client):
    return make_api_client(Scope.RECOMMENDATIONS_READ)


def get(api, user, **params):
    return api.get(URL.format(user), params)


def ids(response) -> list[str]:
    return [item["item_id"] for item in response.json()["items"]]


def event(user: str, item_id: str, n: int) -> None:
    EventFactory(
        event_id=f"late-{user}-{item_id}-{n}",
        user_external_id=user,
        item=Item.objects.get(external_id=item_id),
        timestamp=datetime(2030, 1, 1, tzinfo=UTC),
    )


def test_a_known_user_gets_the_models_ranking_without_seen_items(api, model, spec):
    response = get(api, "user-0", limit=10)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["model_version"] == model.number == 1
    assert body["fallback"] is None
    assert body["user_id"] == "user-0"
    assert len(body["recommendation_id"]) == 32
    assert ids(response) == expected_ranking(spec, "user-0")[:10]
    first = body["items"][0]
    assert set(first) == {"item_id", "score", "rank", "title", "categories"}
    assert first["title"] == f"Title of {first['item_id']}"
    assert first["categories"] == spec.categories[first["item_id"]]
    assert [item["rank"] for item in body["items"]] == list(range(1, 11))
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    # total: the catalogue's 30 items, not the 27 the user has not seen
    assert body["pagination"] == {"limit": 10, "offset": 0, "total": 30, "has_more": True}


def test_seen_inactive_and_excluded_items_are_never_returned(api, model, spec):
    event("user-0", "item-10", 1)  # arrived after training
    event("user-0", "item-11", 2)
    Item.objects.filter(external_id__in=["item-12", "item-13"]).update(active=False)
    registry.refresh()  # what the watcher does when the catalog changes
    response = get(api, "user-0", limit=100, exclude="item-14,item-15,nope")
    returned = set(ids(response))
    never = {"item-0", "item-1", "item-2"} | {f"item-{i}" for i in range(10, 16)}
    assert not returned & never
    assert returned == set(spec.items) - never
    # only the inactive items count against the total: not the seen nor the excluded
    assert response.json()["pagination"]["total"] == len(spec.items) - 2


def test_the_total_tells_nothing_about_the_users_history(api, model, spec):
    """A read key comparing totals with and without ``exclude``, or across users, learns
    nothing about what a user has seen."""
    event("user-0", "item-20", 1)  # seen since training
    totals = {
        get(api, "user-0", exclude=exclude).json()["pagination"]["total"]
        for exclude in ("", "item-20", "item-21", "item-0")  # seen late, unseen, seen in training
    }
    totals.add(get(api, "user-5").json()["pagination"]["total"])
    totals.add(get(api, "never-seen-anything").json()["pagination"]["total"])
    assert totals == {len(spec.items)}


def test_has_more_follows_the_filtered_list(api, model, spec):
    returned = len(ids(get(api, "user-0", limit=100)))  # 27: three seen in training

    def has_more(offset: int) -> bool:
        return get(api, "user-0", limit=1, offset=offset).json()["pagination"]["has_more"]

    assert has_more(returned - 1) is False
    assert has_more(returned - 2) is True


def test_pages_are_consistent_within_a_version(api, model):
    full = ids(get(api, "user-3", limit=100))
    paged = []
    for offset in range(0, 30, 4):
        response = get(api, "user-3", limit=4, offset=offset)
        assert response.json()["pagination"]["has_more"] == (offset + 4 < len(full))
        paged += ids(response)
    assert paged == full
    assert len(set(paged)) == len(paged) == 30


def test_an_unknown_user_gets_popularity_filtered_the_same_way(api, model, spec):
    ItemFactory(external_id="stray")  # no categories the model knows: not rankable
    event("newcomer", "item-0", 1)
    Item.objects.filter(external_id="item-1").update(active=False)
    registry.refresh()
    response = get(api, "newcomer", limit=5, exclude="item-2")
    body = response.json()
    assert response.status_code == 200
    assert body["fallback"] == "unknown_user"
    assert body["model_version"] == 1
    assert ids(response) == ["item-3", "item-4", "item-5", "item-6", "item-7"]


def test_a_new_item_with_known_categories_is_scored_through_them(api, model, spec):
    # A new "noir" item whose only feature is the noir vector; a user who loves noir.
    Item.objects.create(external_id="new-noir", title="New", categories=["noir", "unknown"])
    registry.refresh()
    noir = spec.category_factors["noir"]
    score = float(noir @ spec.user_factors[3])
    response = get(api, "user-3", limit=100)
    assert ids(response) == expected_ranking(spec, "user-3", extra={"new-noir": noir})
    new = next(i for i in response.json()["items"] if i["item_id"] == "new-noir")
    assert new["score"] == pytest.approx(score, abs=1e-5)


def test_a_category_listed_twice_counts_once(api, model, spec):
    Item.objects.create(external_id="new-mixed", title="New", categories=["noir", "comedy", "noir"])
    registry.refresh()
    mean = (spec.category_factors["noir"] + spec.category_factors["comedy"]) / 2
    response = get(api, "user-3", limit=100)
    new = next(i for i in response.json()["items"] if i["item_id"] == "new-mixed")
    assert new["categories"] == ["noir", "comedy"]
    assert new["score"] == pytest.approx(float(mean @ spec.user_factors[3]), abs=1e-5)


def test_titles_and_categories_follow_catalog_changes(api, model):
    Item.objects.filter(external_id="item-3").update(title="Renamed", categories=["noir"])
    Item.objects.filter(external_id="item-3").update(updated_at=datetime(2031, 1, 1, tzinfo=UTC))
    registry.refresh()
    items = {i["item_id"]: i for i in get(api, "user-0", limit=100).json()["items"]}
    assert (items["item-3"]["title"], items["item-3"]["categories"]) == ("Renamed", ["noir"])


def test_the_category_filter_keeps_only_that_category(api, model, spec):
    response = get(api, "user-4", limit=100, category="comedy")
    expected = [i for i in expected_ranking(spec, "user-4") if spec.categories[i] == ["comedy"]]
    assert ids(response) == expected
    in_category = [i for i in spec.items if spec.categories[i] == ["comedy"]]
    assert response.json()["pagination"]["total"] == len(in_category)


def test_an_unknown_category_is_a_400_naming_it(api, model):
    response = get(api, "user-4", category="nothing")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_category"
    assert response.json()["error"]["detail"] == {"category": "nothing"}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": 1001},
        {"exclude": ",".join(f"i{n}" for n in range(101))},
        {"recommender": "not a slug"},
    ],
)
def test_bad_parameters_are_a_400_with_the_error_body(api, model, params):
    response = get(api, "user-0", **params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert set(params) <= set(response.json()["error"]["detail"])


def test_an_overlong_user_id_is_a_400(api, model):
    response = get(api, "u" * 300)
    assert response.status_code == 400
    assert "user_id" in response.json()["error"]["detail"]


# --- long ids (issue 13.4) and ids holding "/" (issue 13.19) ---------------------------


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (URL.format("u" * 4_000), "user_id"),
        ("/api/v1/items/{}/similar".format("i" * 4_000), "item_id"),
        (URL.format("user-0") + "?exclude=item-1," + "i" * 4_000, "exclude"),
        (URL.format("user-0") + "?exclude=" + "i" * (MAX_ID_LENGTH + 1), "exclude"),
    ],
)
def test_an_id_longer_than_any_stored_one_is_a_400_naming_the_field(api, model, url, field):
    response = api.get(url)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert field in response.json()["error"]["detail"]


def test_the_longest_allowed_ids_are_looked_up_without_copying_the_index(artifact_dir):
    """At the cap (255 characters) an id is valid and simply unknown. The fixed-width index
    compared it by copying every id at 255 characters (20,000 users: 20 MB; the issue's
    200k: 204 MB); now a query longer than every stored id is "not found" unsearched."""
    spec = default_spec(n_users=20_000)
    create_catalog(spec)
    create_version(spec)
    registry.refresh()
    state = registry.state("default")
    long_id = "x" * MAX_ID_LENGTH
    tracemalloc.start()
    try:
        ranking = state.rank(
            user_id=long_id, seen=[], exclude=[long_id], category=None, offset=0, limit=10
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ranking.fallback == "unknown_user"
    assert peak < 256 * 1024


@pytest.fixture
def slash_spec():
    """The default model with ids that hold "/" (and one ending in "/similar")."""
    spec = default_spec()
    items = [f"shop/{n}" for n in range(len(spec.items) - 1)] + ["odd/similar"]
    users = [f"org/team/{n}" for n in range(len(spec.users))]
    rename = dict(zip(spec.items, items, strict=True))
    return dataclasses.replace(
        spec,
        users=users,
        items=items,
        categories={rename[i]: c for i, c in spec.categories.items()},
        seen={users[spec.users.index(u)]: [rename[i] for i in s] for u, s in spec.seen.items()},
    )


def test_ids_holding_a_slash_are_ingested_and_served(make_api_client, artifact_dir, slash_spec):
    writer = make_api_client(Scope.CATALOG_WRITE, Scope.EVENTS_WRITE)
    response = writer.post(
        "/api/v1/items",
        {
            "items": [
                {"item_id": i, "categories": slash_spec.categories[i]} for i in slash_spec.items
            ]
        },
        format="json",
    )
    assert response.status_code == 200 and response.json()["created"] == len(slash_spec.items)
    event = {
        "event_id": "e/1",
        "user_id": "org/team/0",
        "item_id": "shop/3",
        "type": "view",
        "timestamp": "2024-01-01T00:00:00Z",
    }
    assert writer.post("/api/v1/events", {"events": [event]}, format="json").status_code == 201
    create_version(slash_spec)
    api = make_api_client(Scope.RECOMMENDATIONS_READ)

    for path_id in ("org/team/1", quote("org/team/1", safe="")):  # raw or percent-encoded
        response = get(api, path_id, limit=100)
        assert response.status_code == 200
        body = response.json()
        assert body["user_id"] == "org/team/1" and body["fallback"] is None
        assert ids(response) == expected_ranking(slash_spec, "org/team/1")
    # The user's own event (shop/3) is filtered as seen: its history is found by its id.
    assert "shop/3" not in ids(get(api, "org/team/0", limit=100))

    response = similar(api, "shop/4", limit=5)
    assert response.status_code == 200
    assert response.json()["item_id"] == "shop/4"
    assert ids(response) == cosine_ranking(slash_spec, "shop/4")[:5]
    # "items/odd/similar/similar": the id is everything before the last "/similar".
    response = similar(api, "odd/similar", limit=3)
    assert response.status_code == 200 and response.json()["item_id"] == "odd/similar"
    assert similar(api, "shop/no-such").status_code == 404


def test_an_unknown_recommender_is_a_404(api, model):
    response = get(api, "user-0", recommender="nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "recommender_not_found"


def test_without_a_model_popularity_comes_from_the_events(api):
    popular, other = ItemFactory(external_id="popular"), ItemFactory(external_id="other")
    gone = ItemFactory(external_id="gone", active=False)
    for n in range(3):
        EventFactory(item=popular, user_external_id=f"u{n}")
    EventFactory(item=other, user_external_id="u9")
    EventFactory(item=gone, user_external_id="u9")
    response = get(api, "u0")
    body = response.json()
    assert response.status_code == 200
    assert (body["fallback"], body["model_version"]) == ("no_model", None)
    assert ids(response) == ["other"]  # "popular" was seen by u0, "gone" is inactive
    assert ids(get(api, "someone")) == ["popular", "other"]


def test_without_a_model_or_events_it_is_a_503_with_a_code(api):
    response = get(api, "anyone")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_model"


@pytest.mark.parametrize("scopes", [(Scope.EVENTS_WRITE,), (Scope.CATALOG_WRITE,)])
def test_the_recommendations_scope_is_required(make_api_client, model, scopes):
    response = make_api_client(*scopes).get(URL.format("user-0"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_without_a_key_it_is_a_401(client, model):
    response = client.get(URL.format("user-0"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_serving_endpoints_answer_json_whatever_accept_says(api, model):
    for accept in ("text/html", "application/xml", "*/*"):
        response = api.get(URL.format("user-0"), HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        similar = api.get("/api/v1/items/item-0/similar", HTTP_ACCEPT=accept)
        assert similar["Content-Type"] == "application/json"


def test_the_hot_path_makes_a_fixed_number_of_queries(api, model, django_assert_max_num_queries):
    get(api, "user-0")  # the first request in a process loads the model (and checks the key)
    # The user's recent events; the key is cached, titles and filters are in the state.
    with django_assert_max_num_queries(1):
        response = get(api, "user-0", limit=100)
    assert len(response.json()["items"]) == 27


# --- similar items ---------------------------------------------------------------------


def similar(api, item_id, **params):
    return api.get(f"/api/v1/items/{item_id}/similar", params)


def cosine_ranking(spec, item_id):
    vectors = {i: spec.item_representation(i) for i in spec.items}
    query = vectors[item_id]

    def cos(v):
        return float(v @ query / (np.linalg.norm(v) * np.linalg.norm(query)))

    others = [(cos(v), n, i) for n, (i, v) in enumerate(vectors.items()) if i != item_id]
    return [i for _, _, i in sorted(others, key=lambda t: (-t[0], t[1]))]


def test_similar_items_are_the_nearest_by_cosine(api, model, spec):
    response = similar(api, "item-4", limit=5)
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == 1 and body["item_id"] == "item-4"
    assert ids(response) == cosine_ranking(spec, "item-4")[:5]
    assert [i["rank"] for i in body["items"]] == [1, 2, 3, 4, 5]
    assert all(-1.0001 <= i["score"] <= 1.0001 for i in body["items"])


def test_similar_items_leave_out_inactive_items(api, model, spec):
    nearest = cosine_ranking(spec, "item-4")[:2]
    Item.objects.filter(external_id__in=nearest).update(active=False)
    registry.refresh()
    returned = ids(similar(api, "item-4", limit=100))
    assert not set(returned) & set(nearest)
    assert len(returned) == len(spec.items) - 3


def test_similar_to_an_unknown_item_is_a_404_with_the_error_body(api, model):
    response = similar(api, "no-such-item")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "item_not_found"


def test_similar_with_a_bad_limit_is_a_400(api, model):
    assert similar(api, "item-4", limit=1000).status_code == 400


# --- health and metrics ----------------------------------------------------------------


def test_readyz_reports_the_loaded_version(client, model):
    response = client.get("/readyz")
    assert response.status_code == 200
    serving = response.json()["checks"]["serving"]
    assert serving["ok"] is True
    default = serving["recommenders"]["default"]
    assert (default["active_version"], default["loaded_version"]) == (1, 1)
    assert default["last_load_error"] is None


def test_metrics_count_requests_per_endpoint(api, client, model):
    get(api, "user-0")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    counter = 'recsite_http_requests_total{endpoint="recommendations",method="GET",status="200"}'
    assert counter in text
    assert 'recsite_http_request_duration_seconds_bucket{endpoint="recommendations"' in text
    assert 'recsite_model_loaded_version{recommender="default"} 1.0' in text
    assert "recsite_model_swaps_total" in text
    assert response["X-Recsite-Worker"].isdigit()


def test_an_event_posted_a_moment_ago_is_filtered(api, make_api_client, model, spec):
    top = ids(get(api, "user-0", limit=1))[0]
    events = make_api_client(Scope.EVENTS_WRITE)
    posted = events.post(
        "/api/v1/events",
        {
            "events": [
                {
                    "event_id": "just-now",
                    "user_id": "user-0",
                    "item_id": top,
                    "type": "view",
                    "timestamp": datetime.now(UTC).isoformat(),
                }
            ]
        },
        format="json",
    )
    assert posted.status_code in (200, 201), posted.json()

    assert top not in ids(get(api, "user-0", limit=100))


def test_the_serving_endpoints_are_written_by_orjson_errors_included(api, model):
    for response in (
        get(api, "user-0"),
        api.get("/api/v1/items/item-0/similar"),
        api.get("/api/v1/items/nope/similar"),
        get(api, "user-0", limit=0),
    ):
        assert response.content == json_bytes(response.json())
    assert response.status_code == 400
    assert response.json()["error"]["code"]
