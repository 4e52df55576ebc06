"""Event retention on PostgreSQL: delete throughput and the ingest rate while it runs.

    .venv/bin/python bench/event_retention.py        # ~1M events, writes docs/BENCHMARKS.md
    .venv/bin/python bench/event_retention.py --events 200000 --no-write

Re-creates the database ``recsite_bench_retention`` (never another one), migrates it,
fills it with ``--events`` events by SQL (timestamps spread evenly over 120 days, so with
a 30-day retention three quarters are expired), then:

1. ingest alone: a child process calls ``event_batch_ingest`` (1,000-event batches) for
   ``--seconds`` seconds -> events/s;
2. ``manage.py prune_events`` (10,000-event batches) with the same ingest child running
   next to it -> deleted events/s, and the ingest rate while it ran.

Prints a table and writes the "Event retention" section of docs/BENCHMARKS.md. Never in
CI; the machine's load average at start is recorded with the numbers."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    ROOT,
    command_env,
    machine_info,
    manage_ok,
    pg_connect,
    postgres_version,
    recreate_database,
    write_section,
)

DATABASE = "recsite_bench_retention"
SECTION_START = "<!-- event-retention:start -->"
SECTION_END = "<!-- event-retention:end -->"
ITEMS = 5_000
SPREAD_DAYS = 120
RETENTION_DAYS = 30


def ingest_child() -> None:
    """Ingest 1,000-event batches of new events until SIGTERM; after each batch print
    ``<unix time> <events stored so far>``."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    import django

    django.setup()
    from django.utils import timezone

    from recommender.services import event_batch_ingest

    stored, batch = 0, 0
    print(f"{time.time()} 0", flush=True)
    while not stop:
        now = timezone.now().isoformat()
        raw = [
            {
                "event_id": f"bench-{os.getpid()}-{batch}-{n}",
                "user_id": f"u{n % 997}",
                "item_id": f"i{(batch * 7 + n) % ITEMS}",
                "type": "view",
                "timestamp": now,
            }
            for n in range(1000)
        ]
        stored += event_batch_ingest(raw_events=raw).created
        batch += 1
        print(f"{time.time()} {stored}", flush=True)


def fill(server_url: str, events: int) -> None:
    with pg_connect(server_url, DATABASE) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO recommender_item (external_id, title, active, categories, created_at,"
            " updated_at) SELECT 'i' || n, '', true, '[]', now(), now()"
            " FROM generate_series(0, %s) n",
            [ITEMS - 1],
        )
        cursor.execute(
            "INSERT INTO recommender_event (client, event_id, user_external_id, item_id,"
            " event_type, timestamp, recommendation_id, ingested_at)"
            " SELECT 'operator', 'fill-' || n, 'u' || (n %% 10007),"
            " (SELECT min(id) FROM recommender_item) + n %% %s, 'view',"
            " now() - make_interval(secs => %s * (%s - n)::float / %s), '', now()"
            " FROM generate_series(1, %s) n",
            [ITEMS, SPREAD_DAYS * 86400, events, events, events],
        )
        cursor.execute("UPDATE recommender_recommender SET window_days = 10")
        cursor.execute(
            "INSERT INTO recommender_attributioncursor (name, last_event_id, events_attributed,"
            " events_unattributed, unknown_ids, updated_at)"
            " SELECT 'default', max(id), 0, 0, 0, now() FROM recommender_event"
        )
        cursor.execute("VACUUM ANALYZE recommender_event")


class Ingest:
    """The ingest child; ``rate(start, end)``: events/s it stored between two times."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--ingest-child"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.process.stdout.readline()  # Django is set up: it ingests from now on
        time.sleep(1)

    def stop(self) -> list[tuple[float, int]]:
        self.process.terminate()
        out, _ = self.process.communicate()
        return [(float(t), int(n)) for t, n in (line.split() for line in out.splitlines())]

    @staticmethod
    def rate(marks: list[tuple[float, int]], start: float, end: float) -> float:
        inside = [(t, n) for t, n in marks if start <= t <= end]
        if len(inside) < 2:
            return float("nan")
        (t0, n0), (t1, n1) = inside[0], inside[-1]
        return (n1 - n0) / (t1 - t0)


def count_events(server_url: str) -> int:
    with pg_connect(server_url, DATABASE) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM recommender_event")
        return cursor.fetchone()[0]


def render(rows: dict[str, str], machine: dict[str, str], command: str) -> str:
    lines = [
        SECTION_START,
        "## Event retention",
        "",
        f"`{command}` (PostgreSQL, `manage.py prune_events`, 10,000-event batches, "
        "each its own transaction; a child process ingesting 1,000-event batches through "
        "`event_batch_ingest` next to it).",
        "",
        "| Figure | Value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in rows.items()),
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()),
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="ingest-alone duration")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--ingest-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_child:
        ingest_child()
        return
    machine = machine_info()
    machine["PostgreSQL"] = postgres_version(args.server)
    recreate_database(args.server, DATABASE)
    server = args.server.rsplit("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="recsite-bench-retention-") as tmp:
        env = command_env(f"{server}/{DATABASE}", Path(tmp))
        env |= {"RECSITE_EVENT_RETENTION_DAYS": str(RETENTION_DAYS), "PYTHONPATH": str(ROOT)}
        manage_ok(env, "migrate", "--verbosity", "0")
        started = time.perf_counter()
        fill(args.server, args.events)
        fill_seconds = time.perf_counter() - started
        before = count_events(args.server)
        ingest = Ingest(env)
        alone_start = time.time()
        time.sleep(args.seconds)
        alone_end = prune_start = time.time()
        prune_seconds = manage_ok(env, "prune_events")
        prune_end = time.time()
        marks = ingest.stop()
        # the same command with nothing left: process start, settings, the plan
        overhead = manage_ok(env, "prune_events")
        after = count_events(args.server)
    ingested = marks[-1][1] if marks else 0
    deleted = before + ingested - after
    alone = Ingest.rate(marks, alone_start, alone_end)
    during = Ingest.rate(marks, prune_start, prune_end)
    rows = {
        "Events stored before": f"{before:,} (filled in {fill_seconds:.0f} s)",
        "Events deleted (older than 30 days)": f"{deleted:,}",
        "`prune_events` wall time": f"{prune_seconds:.1f} s ({overhead:.1f} s of it process "
        "start and planning: a second run with nothing left)",
        "Delete throughput": f"{deleted / max(prune_seconds - overhead, 1e-3):,.0f} events/s",
        "Ingest alone": f"{alone:,.0f} events/s",
        "Ingest while pruning": f"{during:,.0f} events/s ({during / alone - 1:+.0%})",
    }
    for name, value in rows.items():
        print(f"{name:40} {value}")
    if not args.no_write:
        command = "python bench/event_retention.py" + (
            f" --events {args.events}" if args.events != 1_000_000 else ""
        )
        write_section(SECTION_START, SECTION_END, render(rows, machine, command))


if __name__ == "__main__":
    main()
