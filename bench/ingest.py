"""Ingest benchmark: events/s through ``POST /api/v1/events`` and ``manage.py import_dataset``.

    .venv/bin/python bench/ingest.py                 # defaults, updates docs/BENCHMARKS.md
    .venv/bin/python bench/ingest.py --repeat 3 --no-write
    .venv/bin/python bench/ingest.py --ids both --skip-import   # with vs without ids, A/B
    flock /work/wt/bench.lock .venv/bin/python bench/ingest.py --prefill 10000000 --prepare-only
    flock /work/wt/bench.lock .venv/bin/python bench/ingest.py --prefill 10000000 --vacuum

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

With ``--prefill N`` the database is instead a copy of the demo shop at N events
(``common.demo_shop_template``: written once with ``COPY`` into ``--prefill-database``
and kept, so re-runs only copy it; ``--prepare-only`` stops there), the events name the
shop's users and items, no import is timed, and the section is "Ingest with N events
stored". ``--vacuum`` alternates runs with and without a vacuum of the events table in
progress (bench/events_vacuum.py: an autovacuum worker's work, throttled as it is, plus
autovacuum thresholds lowered on the table) and reports the share of each run's time a
vacuum was running (sampled from ``pg_stat_progress_vacuum``). ``--db-setting
NAME=VALUE`` runs the bench database's sessions with a PostgreSQL setting (its own
section). The runs start once every gunicorn worker answers ``/readyz`` (with no active
model a worker first counts every event for the popularity fallback: ~20 s at 10M).
The kept demo shop is dropped by hand (``DROP DATABASE recsite_bench_prefill_<N>``).

Needs PostgreSQL (``--server-url``, default ``postgres://postgres@127.0.0.1:5432``).
Never part of CI: it takes a minute or two and loads the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import shlex
import signal
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
    EVENTS_PER_ITEM,
    EVENTS_PER_USER,
    ROOT,
    demo_shop_template,
    drop_database,
    machine_info,
    pg_connect,
    postgres_version,
    recreate_database,
    server_settings,
    write_section,
)
from events_vacuum import (
    EventsVacuum,
    VacuumSampler,
    autovacuum_setting,
    lower_autovacuum_thresholds,
)
from http_clients import ClientJob, run_clients, split
from ingest_report import render, section_markers

sys.path.insert(0, str(ROOT))
from recommender.demo_data import demo_item_id, demo_user_id  # noqa: E402  (plain Python)
from recommender.online.ids import uuid7_from_parts  # noqa: E402  (plain Python, no Django)

EVENT_TYPES = ("view", "click", "like", "purchase")
IDS_CHOICES = ("without", "with", "both")


@dataclass(frozen=True)
class Variant:
    name: str
    ids: bool = False  # events name a recommendation_id and a position
    vacuum: bool = False  # a vacuum of the events table runs during the run


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
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=300,
        help="seconds to wait for /readyz (a worker builds its serving state first)",
    )
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
    parser.add_argument(
        "--prefill", type=int, default=0, help="events stored before (the demo shop), 0: none"
    )
    parser.add_argument(
        "--prefill-database",
        default="recsite_bench_prefill",
        help="the kept demo shop --database is copied from, named <this>_<N>",
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="write the --prefill database and exit"
    )
    parser.add_argument(
        "--vacuum",
        action="store_true",
        help="alternate runs without and with a vacuum of the events table (not with --ids both)",
    )
    parser.add_argument(
        "--db-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for the bench database's sessions (ALTER DATABASE SET;"
        " e.g. wal_compression=lz4), repeatable",
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


def count_events(args: argparse.Namespace, above: int = 0) -> int:
    """Events with keys above ``above`` (an index range, not a scan of 10M rows)."""
    with pg_connect(args.server_url, args.database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM recommender_event WHERE id > %s", [above])
        return cursor.fetchone()[0]


def last_event_key(args: argparse.Namespace) -> int:
    with pg_connect(args.server_url, args.database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM recommender_event")
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
    if args.prefill:
        recreate_database(args.server_url, args.database, template=args.prefill_template)
        return
    recreate_database(args.server_url, args.database)
    manage(env, "migrate", "--no-input", "-v", "0")


def prefill(args: argparse.Namespace) -> str:
    """The kept demo shop's database (written now if it is not there yet)."""
    name, seconds = demo_shop_template(args.server_url, args.prefill_database, events=args.prefill)
    written = "kept from a previous run" if seconds is None else f"written in {seconds:.0f} s"
    print(f"Demo shop at {args.prefill:,} events in {name}: {written}", flush=True)
    return name


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
    # Every worker, not the first one: a worker builds its serving state before it
    # accepts (at 10M events the popularity fallback scans the table for ~20 s), and a
    # run next to a worker still building measures that build.
    ready: set[int] = set()
    deadline = time.monotonic() + args.ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited ({process.returncode}); see {log}:\n{log.read_text()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            if response.status == 200:
                ready.add(json.loads(response.read())["checks"]["serving"]["pid"])
            if len(ready) >= args.workers:
                return process
        except OSError:
            pass
        time.sleep(0.1)
    process.terminate()
    sys.exit(f"gunicorn did not become ready within {args.ready_timeout:.0f} s; see {log}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the load ------------------------------------------------------------------------


def event_bodies(
    args: argparse.Namespace, run: str, rng: random.Random, *, ids: bool = False
) -> list[bytes]:
    now = datetime.now(UTC)
    bodies = []
    # the shop's users and items when it is there (ingest touches the whole user index)
    user_id = demo_user_id if args.prefill else "u{}".format
    item_id = demo_item_id if args.prefill else "i{}".format
    for batch in range(args.batches):
        events = []
        for n in range(args.batch_size):
            event = {
                "event_id": f"bench-{run}-{batch}-{n}",
                "user_id": user_id(rng.randrange(args.users)),
                "item_id": item_id(rng.randrange(args.items)),
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


def variants(args: argparse.Namespace) -> list[Variant]:
    if args.vacuum:
        with_ids = args.ids == "with"
        return [Variant("no vacuum", ids=with_ids), Variant("vacuum", ids=with_ids, vacuum=True)]
    if args.ids == "both":
        return [Variant("without ids"), Variant("with ids", ids=True)]
    return [Variant(f"{args.ids} ids", ids=args.ids == "with")]


def bench_api(args: argparse.Namespace, env: dict[str, str], log: Path) -> dict:
    prepare_database(args, env)
    with pg_connect(args.server_url, args.database) as connection, connection.cursor() as cursor:
        for setting in args.db_setting:
            name, _, value = setting.partition("=")
            cursor.execute(f'ALTER DATABASE "{args.database}" SET {name} = %s', [value])
    if args.vacuum:
        lower_autovacuum_thresholds(args.server_url, args.database)
    api_key = manage(
        env, "create_api_key", "bench", "--scopes", "events:write", "catalog:write"
    ).strip()
    server = start_gunicorn(args, env, log)
    try:
        if not args.prefill:
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
        rates: dict[str, list[float]] = {variant.name: [] for variant in variants(args)}
        vacuum_share: dict[str, list[float]] = {variant.name: [] for variant in variants(args)}
        vacuum_passes = 0
        for run, variant in ((r, v) for r in range(args.repeat) for v in variants(args)):
            bodies = event_bodies(args, f"r{run}{variant.name}", rng, ids=variant.ids)
            before = last_event_key(args)
            vacuum = EventsVacuum(args.server_url, args.database) if variant.vacuum else None
            if vacuum:
                vacuum.start()
            sampler = VacuumSampler(args.server_url, args.database)
            try:
                with sampler.sampling():
                    seconds = run_clients(
                        [
                            ClientJob(args.port, api_key, "/api/v1/events", part, 201)
                            for part in split(bodies, args.clients)
                        ]
                    )
            finally:
                if vacuum:
                    vacuum.stop()
                    vacuum_passes += vacuum.passes
            stored = count_events(args, above=before)
            expected = args.batches * args.batch_size
            if stored != expected:
                sys.exit(f"run {run + 1}: {stored} events stored, {expected} sent")
            rates[variant.name].append(expected / seconds)
            vacuum_share[variant.name].append(sampler.share)
            print(
                f"  API run {run + 1}/{args.repeat} ({variant.name}): {expected:,} events in"
                f" {seconds:.2f} s = {expected / seconds:,.0f} events/s; a vacuum of the"
                f" events table in progress {sampler.share:.0%} of the time",
                flush=True,
            )
    finally:
        stop(server)
    return {
        "rates": rates,
        "events_per_run": args.batches * args.batch_size,
        "vacuum_share": vacuum_share,
        "vacuum_passes": vacuum_passes,
    }


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


def main() -> None:
    args = parse_args()
    if args.vacuum and args.ids == "both":
        sys.exit("--vacuum alternates runs with and without a vacuum: not with --ids both")
    if args.prefill:
        args.prefill_template = prefill(args)
        if args.prepare_only:
            return
        args.users, args.items = args.prefill // EVENTS_PER_USER, args.prefill // EVENTS_PER_ITEM
    command = " ".join(["python bench/ingest.py", *map(shlex.quote, sys.argv[1:])])
    with tempfile.TemporaryDirectory(prefix="recsite-bench-") as tmp:
        env = server_env(args, Path(tmp))
        info = machine_info()
        info["PostgreSQL"] = postgres_version(args.server_url)
        info["autovacuum"] = autovacuum_setting(args.server_url, "postgres")
        info["PostgreSQL settings"] = server_settings(
            args.server_url,
            ["shared_buffers", "max_wal_size", "wal_compression", "synchronous_commit"],
        )
        if "REDIS_URL" in env:
            version = redis.Redis.from_url(env["REDIS_URL"]).info("server")["redis_version"]
            info["Redis"] = f"{version} (cache and per-key throttle)"
        else:
            info["Redis"] = "not reachable: local-memory cache"
        print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()))
        print(f"API: {args.repeat} runs of {args.batches} x {args.batch_size} events")
        try:
            api = bench_api(args, env, Path(tmp) / "gunicorn.log")
            imported = "not timed with --prefill" if args.prefill else bench_import(args, env)
        finally:
            if not args.keep_db:
                drop_database(args.server_url, args.database)
    if isinstance(imported, str):
        print(f"  import: {imported}")
    section = render(args, info, api, imported, command)
    print()
    print("\n".join(section.splitlines()[1:-1]))
    if not args.no_write:
        write_section(*section_markers(args), section)
        print(f"\nUpdated {BENCHMARKS_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
