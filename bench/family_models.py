"""What ``bench/serving_families.py`` and ``bench/freshness.py`` share: a PostgreSQL
database with MovieLens 100K and one version of each model family trained on it (kept as
candidates), the API key, and switching the running server to a family's version.

Database, environment and ``manage.py`` come from ``bench/serving.py``; the server from
``bench/servers.py``. Imported as ``family_models`` (the scripts run as
``python bench/<name>.py``)."""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
import time
from dataclasses import dataclass
from urllib.parse import quote

from common import ROOT, pg_connect, recreate_database
from serving import manage, query

FAMILIES = ("lightfm", "als", "svd", "ease", "itemknn")
RECOMMENDATIONS = "/api/v1/recommendations/{}?limit=20"


def add_arguments(parser: argparse.ArgumentParser, database: str) -> None:
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default=database, help="re-created, dropped at the end")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per gunicorn worker (1: sync worker)"
    )
    parser.add_argument("--dataset", default="../shared/data/ml-100k", help="relative to repo")
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help="comma-separated, in this order"
    )


@dataclass(frozen=True)
class Prepared:
    versions: dict[str, int]  # family -> version number
    users: list[str]
    api_key: str  # recommendations:read and events:write
    train_seconds: dict[str, float]


def prepare(args: argparse.Namespace, env: dict[str, str], families: list[str]) -> Prepared:
    """A fresh database with MovieLens 100K and one candidate version per family that
    passes the gates (the lift over popularity set to 0; the popularity family, which
    cannot beat itself, is left out with a message)."""
    dataset = (ROOT / args.dataset).resolve()
    if not dataset.is_dir():
        sys.exit(f"{args.dataset} is absent: MovieLens 100K is needed")
    recreate_database(args.server_url, args.database)
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "import_dataset", str(dataset), "--format", "movielens")
    with pg_connect(args.server_url, args.database) as connection, connection.cursor() as cur:
        cur.execute("UPDATE recommender_recommender SET gate_min_lift_over_popularity = 0")
    versions: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for family in families:
        started = time.perf_counter()
        manage(env, "retrain", "--no-promote", f"--algorithm={family}", ok=(0, 3))
        seconds[family] = time.perf_counter() - started
        number, status = query(
            args, "SELECT number, status FROM recommender_modelversion ORDER BY number DESC"
        )[0]
        if status == "rejected":  # popularity never beats the popularity baseline
            print(f"{family}: version {number} rejected by the gates, not served")
            continue
        versions[family] = number
        print(f"trained {family}: version {number} in {seconds[family]:.1f} s")
    users = [
        row[0] for row in query(args, "SELECT DISTINCT user_external_id FROM recommender_event")
    ]
    key = manage(
        env, "create_api_key", "bench", "--scopes", "recommendations:read", "events:write"
    ).strip()
    return Prepared(versions, sorted(users), key, seconds)


class Client:
    """One keep-alive connection to the server, with the API key."""

    def __init__(self, port: int, api_key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Api-Key {api_key}"}

    def _send(self, method: str, path: str, body: str | None, headers: dict) -> tuple[int, bytes]:
        """One request; once more on a new connection when the server had closed the
        idle one (gunicorn's keep-alive timeout)."""
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> dict:
        status, body = self._send("GET", path, None, self.headers)
        if status != 200:
            sys.exit(f"GET {path}: {status} {body[:500]!r}")
        return json.loads(body)

    def post_events(self, events: list[dict]) -> None:
        headers = {**self.headers, "Content-Type": "application/json"}
        status, answer = self._send(
            "POST", "/api/v1/events", json.dumps({"events": events}), headers
        )
        if status != 201:
            sys.exit(f"POST /api/v1/events: {status} {answer[:500]!r}")

    def recommendations(self, user: str, extra: str = "") -> dict:
        return self.get(RECOMMENDATIONS.format(quote(user, safe="")) + extra)


def promote(args: argparse.Namespace, env: dict[str, str], version: int) -> None:
    """Make ``version`` the active one (unless it is)."""
    active = query(args, "SELECT number FROM recommender_modelversion WHERE status = 'active'")
    if [row[0] for row in active] != [version]:
        manage(env, "promote", str(version), "--reason", "bench")


def serve(
    args: argparse.Namespace, env: dict[str, str], client: Client, version: int, user: str
) -> None:
    """Promote ``version`` and wait until every worker answers with it (a few requests
    in a row, since each may hit another worker)."""
    promote(args, env, version)
    deadline = time.monotonic() + 60
    in_a_row = 0
    while in_a_row < 20:
        if time.monotonic() > deadline:
            sys.exit(f"version {version} not served within 60 s")
        answered = client.recommendations(user)["model_version"]
        in_a_row = in_a_row + 1 if answered == version else 0
        if answered != version:
            time.sleep(0.1)


def unseen_items(args: argparse.Namespace, users: list[str], count: int) -> dict[str, list[str]]:
    """For each user, ``count`` popular items they have no event with."""
    popular = [
        row[0]
        for row in query(
            args,
            "SELECT i.external_id FROM recommender_item i JOIN recommender_event e "
            "ON e.item_id = i.id GROUP BY i.external_id ORDER BY count(*) DESC LIMIT 300",
        )
    ]
    wanted = ",".join("'" + re.sub(r"[^0-9A-Za-z_-]", "", u) + "'" for u in users)
    seen: dict[str, set[str]] = {}
    for user, item in query(
        args,
        "SELECT e.user_external_id, i.external_id FROM recommender_event e "
        f"JOIN recommender_item i ON i.id = e.item_id WHERE e.user_external_id IN ({wanted})",
    ):
        seen.setdefault(user, set()).add(item)
    return {u: [i for i in popular if i not in seen.get(u, set())][:count] for u in users}
