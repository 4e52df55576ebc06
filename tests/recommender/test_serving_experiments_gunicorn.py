"""A running experiment under gunicorn with two workers (PostgreSQL + Redis): every
worker serves each user the same arm, before and after an unrelated version is promoted,
and the lists the workers served reach the database through their flushers."""

from __future__ import annotations

import pytest
import requests

from recommender.models import Recommender, Scope
from recommender.online.assignment import arm_for
from recommender.online.experiments import TreatmentSpec, experiment_create
from recommender.online.models import ServedList
from tests.processes import wait_until
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

USERS = [f"user-{i}" for i in range(6)]
ARMS = [("control", 0.5), ("treatment-1", 0.5)]
ASKS_PER_USER = 6  # new connections: both workers answer each user


def answers(server, key: str) -> dict[str, set[tuple[str, int, str]]]:
    """user -> the distinct (arm, model_version, worker) its answers came with."""
    seen: dict[str, set[tuple[str, int, str]]] = {}
    for user in USERS:
        for _ in range(ASKS_PER_USER):
            response = server.ask(key, user=user)
            assert response.status_code == 200, response.text
            body = response.json()
            seen.setdefault(user, set()).add(
                (
                    body["experiment"]["arm"],
                    body["model_version"],
                    response.headers["X-Recsite-Worker"],
                )
            )
    return seen


def test_every_worker_serves_each_user_one_arm_across_a_promotion(
    postgres, redis_url, start_server, make_api_client
):
    spec = default_spec(seed=1)
    create_catalog(spec)
    create_version(spec)
    create_version(default_spec(seed=2), promote=False)
    experiment_create(
        recommender=Recommender.objects.get(name="default"),
        name="v2 against v1",
        treatments=[TreatmentSpec(version=2, share=0.5)],
        salt="fixed-salt",
    )
    client = make_api_client(Scope.RECOMMENDATIONS_READ)
    key = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")
    server = start_server(GUNICORN_WORKERS="2", RECSITE_SERVED_FLUSH_SECONDS="0.2")
    server.wait_ready()
    workers = server.worker_pids(2)

    def check(seen):
        for user, answered in seen.items():
            arm = arm_for("fixed-salt", user, ARMS)
            assert {(a, v) for a, v, _ in answered} == {(arm, 1 if arm == "control" else 2)}
        assert {w for answered in seen.values() for _, _, w in answered} == workers

    check(answers(server, key))

    create_version(default_spec(seed=3))  # v3, unrelated to the experiment, is promoted

    def both_workers_on_v3() -> bool:
        text = requests.get(f"{server.url}/metrics", timeout=5).text
        loaded = [line for line in text.splitlines() if line.startswith("recsite_model_loaded")]
        return sum(line.rstrip().endswith(" 3.0") for line in loaded) >= 2

    wait_until(both_workers_on_v3, 20, "both workers to swap v3 in")
    check(answers(server, key))

    expected = 2 * len(USERS) * ASKS_PER_USER
    wait_until(  # the workers' flushers write them
        lambda: ServedList.objects.count() >= expected, 20, f"{expected} served lists"
    )
    assert set(ServedList.objects.values_list("arm", flat=True)) == {"control", "treatment-1"}
