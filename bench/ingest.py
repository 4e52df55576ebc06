"""Ingest benchmark: events/s through ``POST /api/v1/events`` and ``manage.py import_dataset``.

    .venv/bin/python bench/ingest.py                 # defaults, updates docs/BENCHMARKS.md
    .venv/bin/python bench/ingest.py --repeat 3 --no-write
    .venv/bin/python bench/ingest.py --ids both --skip-import   # with vs without ids, A/B

What it does:

1. creates a dedicated PostgreSQL database (``recsite_bench`` by default, dropped and
   created afresh) and migrates it;
2. creates an API key with ``manage.py create_api_key``;
3. starts gunicorn (2 sync workers by default) on that database with DEBUG off, and Redis
   as the cache when it answers (as in production: the per-key throttle counts there);
4. loads a catalog through ``POST /api/v1/items``, then, REPEAT times, posts BATCHES
   batches of 1,000 new events from CLIENTS client processes (``http.client``, request
   bodies serialised before the clock starts) and reports events/s: median, min, max;
   with ``--ids with`` every event also names a ``recommendation_id`` (a UUIDv7, as
   serving makes them) and a ``position``; ``--ids both`` alternates runs without and
   with them on the same server (side by side, for the ratio on a noisy machine);
5. times ``manage.py import_dataset ../shared/data/ml-100k --format movielens`` on a
   fresh database (skipped with a message when the dataset is absent);
6. prints a table and writes the "Ingest" section of docs/BENCHMARKS.md.

Needs PostgreSQL (``--server-url``, default ``postgres://postgres@127.0.0.1:5432``).
Never part of CI: it takes a minute or two and loads the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from common import (
    BENCHMARKS_MD,
    ROOT,
    drop_database,
    machine_info,
    pg_connect,
    postgres_version,
    recreate_database,
    write_section,
)

sys.path.insert(0, str(ROOT))
from recommender.online.ids import uuid7_from_parts  # noqa: E402  (plain Python, no Django)

SECTION_START = "<!-- bench/ingest.py: start -->"
SECTION_END = "<!-- bench/ingest.py: end -->"
TARGET_EVENTS_PER_SECOND = 20_000
EVENT_TYPES = ("view", "click", "like", "purchase")
IDS_CHOICES = ("without", "with", "both")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench", help="dropped and re-created")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--repeat", type=int, default=5, help="measured API runs")
    parser.add_argument("--batches", type=int, default=40, help="batches per API run")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--dataset", default="../shared/data/ml-100k", help="relative to repo")
    parser.add_argument("--import-repeat", type=int, default=3)
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument(
        "--ids",
        choices=IDS_CHOICES,
        default="without",
        help="events with recommendation_id and position, without, or runs of both alternating",
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    return parser.parse_args()


# --- the environment -------------------------------------------------------------------


def server_env(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DATABASE_URL=f"{args.server_url.rstrip('/')}/{args.database}",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        RECSITE_DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
    )
    if redis_answers(args.redis_url):
        env["REDIS_URL"] = args.redis_url
    return env


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def count_events(args: argparse.Namespace) -> int:
    with pg_connect(args.server_url, args.database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM recommender_event")
        return cursor.fetchone()[0]


def manage(env: dict[str, str], *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(
            f"manage.py {' '.join(arguments)} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return result.stdout


def prepare_database(args: argparse.Namespace, env: dict[str, str]) -> None:
    recreate_database(args.server_url, args.database)
    manage(env, "migrate", "--no-input", "-v", "0")


# --- the server ------------------------------------------------------------------------


def start_gunicorn(args: argparse.Namespace, env: dict[str, str], log: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    command = [
        str(gunicorn),
        "recsite.wsgi",
        "--workers",
        str(args.workers),
        "--bind",
        f"127.0.0.1:{args.port}",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited ({process.returncode}); see {log}:\n{log.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.terminate()
    sys.exit(f"gunicorn did not become ready within 30 s; see {log}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the client ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientJob:
    port: int
    api_key: str
    path: str
    bodies: list[bytes]
    expect_status: int


def post_all(job: ClientJob, start_at: float) -> tuple[int, float, str | None]:
    """Post every body in order on one keep-alive connection (re-opened if the server
    closes it). Returns (requests, seconds, first error)."""
    connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=60)
    headers = {
        "Authorization": f"Api-Key {job.api_key}",
        "Content-Type": "application/json",
        "Connection": "keep-alive",
    }
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for body in job.bodies:
        try:
            connection.request("POST", job.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return 0, 0.0, f"{type(exc).__name__}: {exc}"
        if response.status != job.expect_status:
            return 0, 0.0, f"HTTP {response.status}: {payload[:300]!r}"
    return len(job.bodies), time.perf_counter() - started, None


def run_clients(jobs: list[ClientJob]) -> float:
    """Run the jobs in parallel processes, all starting together; returns wall seconds."""
    start_at = time.time() + 0.5
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        results = pool.starmap(post_all, [(job, start_at) for job in jobs])
    errors = [error for _, _, error in results if error]
    if errors:
        sys.exit("the server refused a request: " + errors[0])
    # Wall time from the common start to the last client done.
    return max(seconds for _, seconds, _ in results)


def event_bodies(
    args: argparse.Namespace, run: str, rng: random.Random, *, ids: bool = False
) -> list[bytes]:
    now = datetime.now(UTC)
    bodies = []
    for batch in range(args.batches):
        events = []
        for n in range(args.batch_size):
            event = {
                "event_id": f"bench-{run}-{batch}-{n}",
                "user_id": f"u{rng.randrange(args.users)}",
                "item_id": f"i{rng.randrange(args.items)}",
                "type": rng.choice(EVENT_TYPES),
                "timestamp": (now - timedelta(seconds=rng.randrange(86_400 * 30))).isoformat(),
            }
            if rng.random() < 0.2:
                event["weight"] = rng.randint(1, 5)
            if ids:
                made_ms = int(now.timestamp() * 1000) - rng.randrange(86_400_000)
                event["recommendation_id"] = str(uuid7_from_parts(made_ms, rng.getrandbits(74)))
                event["position"] = rng.randint(1, 20)
            events.append(event)
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def split(bodies: list[bytes], parts: int) -> list[list[bytes]]:
    return [bodies[index::parts] for index in range(parts)]


def load_catalog(args: argparse.Namespace, api_key: str) -> None:
    items = [
        {"item_id": f"i{n}", "title": f"Item {n}", "categories": [f"c{n % 12}"]}
        for n in range(args.items)
    ]
    bodies = [
        json.dumps({"items": items[start : start + 1000]}).encode()
        for start in range(0, len(items), 1000)
    ]
    run_clients([ClientJob(args.port, api_key, "/api/v1/items", bodies, 200)])


def bench_api(args: argparse.Namespace, env: dict[str, str], log: Path) -> dict:
    prepare_database(args, env)
    api_key = manage(
        env, "create_api_key", "bench", "--scopes", "events:write", "catalog:write"
    ).strip()
    server = start_gunicorn(args, env, log)
    try:
        load_catalog(args, api_key)
        rng = random.Random(42)
        # Warm-up: every worker process imports, connects and caches the key lookup.
        warm = event_bodies(
            argparse.Namespace(**{**vars(args), "batches": 2 * args.clients}), "warm", rng
        )
        run_clients(
            [
                ClientJob(args.port, api_key, "/api/v1/events", part, 201)
                for part in split(warm, args.clients)
            ]
        )
        variants = ["without", "with"] if args.ids == "both" else [args.ids]
        rates: dict[str, list[float]] = {variant: [] for variant in variants}
        for run, variant in ((r, v) for r in range(args.repeat) for v in variants):
            bodies = event_bodies(args, f"r{run}{variant}", rng, ids=variant == "with")
            before = count_events(args)
            seconds = run_clients(
                [
                    ClientJob(args.port, api_key, "/api/v1/events", part, 201)
                    for part in split(bodies, args.clients)
                ]
            )
            stored = count_events(args) - before
            expected = args.batches * args.batch_size
            if stored != expected:
                sys.exit(f"run {run + 1}: {stored} events stored, {expected} sent")
            rates[variant].append(expected / seconds)
            print(
                f"  API run {run + 1}/{args.repeat} ({variant} ids): {expected:,} events in"
                f" {seconds:.2f} s"
                f" = {expected / seconds:,.0f} events/s",
                flush=True,
            )
    finally:
        stop(server)
    return {"rates": rates, "events_per_run": args.batches * args.batch_size}


def bench_import(args: argparse.Namespace, env: dict[str, str]) -> dict | str:
    dataset = (ROOT / args.dataset).resolve()
    if args.skip_import:
        return "skipped (--skip-import)"
    if not dataset.is_dir():
        return f"skipped: {args.dataset} is absent"
    rates, counts, wall = [], [], []
    for run in range(args.import_repeat):
        prepare_database(args, env)
        started = time.perf_counter()
        manage(env, "import_dataset", str(dataset), "--format", "movielens")
        seconds = time.perf_counter() - started
        events = count_events(args)
        rates.append(events / seconds)
        counts.append(events)
        wall.append(seconds)
        print(
            f"  import run {run + 1}/{args.import_repeat}: {events:,} events in"
            f" {seconds:.2f} s = {events / seconds:,.0f} events/s",
            flush=True,
        )
    return {"rates": rates, "events": counts[0], "seconds": wall}


# --- the report ------------------------------------------------------------------------


def summary(rates: list[float]) -> tuple[float, float, float]:
    return statistics.median(rates), min(rates), max(rates)


def render(args, info, api, imported, command: str) -> str:
    medians = {variant: summary(rates)[0] for variant, rates in api["rates"].items()}
    verdict = "meets" if min(medians.values()) >= TARGET_EVENTS_PER_SECOND else "is BELOW"
    lines = [
        SECTION_START,
        "## Ingest",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`.",
        "",
        "| Machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
        "| Path | Events | Runs | Median events/s | Min | Max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant, rates in api["rates"].items():
        median, low, high = summary(rates)
        lines.append(
            f"| `POST /api/v1/events` (batches of {args.batch_size:,}; gunicorn {args.workers}"
            f" sync workers; {args.clients} client processes; {variant} `recommendation_id`"
            f" and `position`) | {api['events_per_run']:,} a run | {len(rates)}"
            f" | {median:,.0f} | {low:,.0f} | {high:,.0f} |"
        )
    if isinstance(imported, dict):
        i_median, i_low, i_high = summary(imported["rates"])
        lines.append(
            f"| `manage.py import_dataset {args.dataset} --format movielens` (wall time of"
            f" the command, Django start-up included) | {imported['events']:,}"
            f" | {len(imported['rates'])} | {i_median:,.0f} | {i_low:,.0f} | {i_high:,.0f} |"
        )
    else:
        lines.append(f"| `manage.py import_dataset` | {imported} | | | | |")
    lines += [
        "",
        f"Target: {TARGET_EVENTS_PER_SECOND:,} events/s through the API; the median"
        f" {verdict} it{' (each variant)' if len(medians) > 1 else ''}"
        + (
            f"; with ids / without, runs alternating: {medians['with'] / medians['without']:.2f}"
            if len(medians) > 1
            else ""
        )
        + f". Client, server and PostgreSQL share the same "
        f"{info['Cores']} cores, so the client's own work is part of the cost.",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    command = " ".join(["python bench/ingest.py", *map(shlex.quote, sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="recsite-bench-") as tmp:
        env = server_env(args, Path(tmp))
        info = machine_info()
        info["PostgreSQL"] = postgres_version(args.server_url)
        if "REDIS_URL" in env:
            version = redis.Redis.from_url(env["REDIS_URL"]).info("server")["redis_version"]
            info["Redis"] = f"{version} (cache and per-key throttle)"
        else:
            info["Redis"] = "not reachable: local-memory cache"
        print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()))
        print(f"API: {args.repeat} runs of {args.batches} x {args.batch_size} events")
        try:
            api = bench_api(args, env, Path(tmp) / "gunicorn.log")
            imported = bench_import(args, env)
        finally:
            if not args.keep_db:
                drop_database(args.server_url, args.database)
    if isinstance(imported, str):
        print(f"  import: {imported}")
    section = render(args, info, api, imported, command)
    print()
    print(section.split("\n", 2)[2].rsplit(SECTION_END, 1)[0].strip())
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, section)
        print(f"\nUpdated {BENCHMARKS_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
