"""Freshness: the time from an event accepted by ``POST /api/v1/events`` to a changed
``GET /api/v1/recommendations/{user}``, against a real gunicorn server (issue 15; target:
p95 <= 1 s).

    .venv/bin/python bench/freshness.py                 # updates docs/BENCHMARKS.md
    .venv/bin/python bench/freshness.py --trials 50 --no-write

On a fresh PostgreSQL database with MovieLens 100K (``bench/family_models.py``), one
version of each real-time family (item-item families score the request's current
history; ALS folds a changed history in), served in turn by recsite under
``recsite/gunicorn.conf.py`` (production settings, PostgreSQL, Redis). Per trial, a user
not used before: read their page (``limit=20``), post one ``view`` event for a popular
item they have no event with and that is not on the page (so only the history's scoring
can change the page, not the seen filter), then read the page again and again until it
differs (items or scores); the time is from the POST's 201 to that response. Idle, and
with LOAD_THREADS threads of this process requesting other users' pages meanwhile. A
page that has not changed after TIMEOUT seconds counts as unchanged.

Never part of CI; about two minutes. Hold the benchmark lock:
``flock /work/wt/bench.lock .venv/bin/python bench/freshness.py``."""

from __future__ import annotations

import argparse
import random
import shlex
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import family_models
import servers
from common import drop_database, machine_info, publish_section
from serving import server_env

SECTION_START = "<!-- bench/freshness.py: start -->"
SECTION_END = "<!-- bench/freshness.py: end -->"
TARGET_P95 = 1.0
LOAD_THREADS = 4


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    family_models.add_arguments(parser, "recsite_bench_freshness")
    parser.set_defaults(families="itemknn,ease,als")
    parser.add_argument("--trials", type=int, default=100, help="per family and condition")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per trial")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    return parser.parse_args()


def page_key(body: dict) -> list[tuple[str, float]]:
    return [(item["item_id"], item["score"]) for item in body["items"]]


def trial(client: family_models.Client, user: str, candidates: list[str], timeout: float):
    """Seconds from the event's 201 to the first changed page (None: unchanged)."""
    before = client.recommendations(user)
    on_page = {item["item_id"] for item in before["items"]}
    item = next(i for i in candidates if i not in on_page)
    event = {
        "event_id": uuid.uuid4().hex,
        "user_id": user,
        "item_id": item,
        "type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    client.post_events([event])
    accepted = time.perf_counter()
    while time.perf_counter() - accepted < timeout:
        if page_key(client.recommendations(user)) != page_key(before):
            return time.perf_counter() - accepted
    return None


class BackgroundLoad:
    """Threads requesting random users' pages until stopped; counts the requests."""

    def __init__(self, port: int, api_key: str, users: list[str]) -> None:
        self.stop_event = threading.Event()
        self.requests = 0
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(port, api_key, users, n), daemon=True)
            for n in range(LOAD_THREADS)
        ]

    def _run(self, port: int, api_key: str, users: list[str], seed: int) -> None:
        client, pick = family_models.Client(port, api_key), random.Random(seed)
        while not self.stop_event.is_set():
            client.recommendations(pick.choice(users))
            with self.lock:
                self.requests += 1

    def __enter__(self) -> BackgroundLoad:
        self.started = time.perf_counter()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join()
        self.rate = self.requests / (time.perf_counter() - self.started)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else 0


def measure(args, env, prepared, port: int) -> list[dict]:
    families = args.families.split(",")
    pick = random.Random(7)
    users = list(prepared.users)
    pick.shuffle(users)
    load_users, users = users[:200], users[200:]
    needed = 2 * len(families) * args.trials
    if needed > len(users):
        sys.exit(f"{needed} trial users needed, {len(users)} available: lower --trials")
    candidates = family_models.unseen_items(args, users[:needed], 60)
    client = family_models.Client(port, prepared.api_key)
    rows = []
    for family in families:
        family_models.serve(args, env, client, prepared.versions[family], load_users[0])
        for loaded in (False, True):
            chosen, users = users[: args.trials], users[args.trials :]
            times, unchanged = [], 0
            load = BackgroundLoad(port, prepared.api_key, load_users) if loaded else None
            if load:
                load.__enter__()
            try:
                for user in chosen:
                    seconds = trial(client, user, candidates[user], args.timeout)
                    if seconds is None:
                        unchanged += 1
                    else:
                        times.append(seconds)
            finally:
                if load:
                    load.__exit__()
            row = {
                "family": family,
                "load": f"{load.rate:,.0f} req/s beside" if load else "idle",
                "n": len(times),
                "unchanged": unchanged,
                "p50": statistics.median(times) if times else float("nan"),
                "p95": p95(times) if times else float("nan"),
                "max": max(times) if times else float("nan"),
            }
            rows.append(row)
            print(
                f"{family:<10} {row['load']:<22} p50 {row['p50'] * 1000:7.1f} ms  "
                f"p95 {row['p95'] * 1000:7.1f} ms  max {row['max'] * 1000:7.1f} ms  "
                f"{unchanged} unchanged of {args.trials}",
                flush=True,
            )
    return rows


def render(args, info: dict[str, str], rows: list[dict], command: str) -> str:
    verdict = all(r["p95"] <= TARGET_P95 and not r["unchanged"] for r in rows)
    lines = [
        SECTION_START,
        "## Freshness: event accepted to a changed response (`bench/freshness.py`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `{command}`. MovieLens 100K, one version "
        "of each family trained by `manage.py retrain`, served in turn by recsite under "
        f"gunicorn ({args.workers} workers x {args.threads} threads, PostgreSQL, Redis). Per "
        "trial a user not used before: their page (`limit=20`), then one `view` event "
        "(`POST /api/v1/events`) for a popular item they had no event with and that is not "
        "on the page (only the scoring of the current history can change the page, not "
        "the seen filter), then the page again until it differs; the time runs from the "
        f"POST's 201 to that response. {args.trials} trials per row; under load, "
        f"{LOAD_THREADS} threads of the bench process request other users' pages "
        "meanwhile. Shared, noisy machine.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        f"| family | load | p50 | p95 | max | unchanged after {args.timeout:g} s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['load']} | {r['p50'] * 1000:.1f} ms | "
            f"{r['p95'] * 1000:.1f} ms | {r['max'] * 1000:.1f} ms | {r['unchanged']} |"
        )
    lines += [
        "",
        f"Target p95 <= {TARGET_P95:g} s, every page changed: "
        + ("**met**." if verdict else "**not met**."),
        "The event is written in the POST's transaction and the next page reads the "
        "user's recent events, so the first page read after the 201 already differs: the "
        "time is one request's.",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    command = " ".join(["python bench/freshness.py", *map(shlex.quote, sys.argv[1:])])
    info = machine_info()
    print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()))
    with tempfile.TemporaryDirectory(prefix="recsite-bench-freshness-") as tmp:
        env = server_env(args, Path(tmp))
        try:
            prepared = family_models.prepare(args, env, args.families.split(","))
            first = prepared.versions[args.families.split(",")[0]]
            family_models.promote(args, env, first)  # readyz wants a model
            service = servers.recsite(
                env,
                port=args.port,
                workers=args.workers,
                threads=args.threads,
                log=Path(tmp) / "gunicorn.log",
            )
            try:
                rows = measure(args, env, prepared, args.port)
            finally:
                service.stop()
        finally:
            drop_database(args.server_url, args.database)
    section = render(args, info, rows, command)
    publish_section(SECTION_START, SECTION_END, section, write=not args.no_write)


if __name__ == "__main__":
    main()
