"""Event retention on PostgreSQL: delete throughput and the ingest rate while it runs.

    .venv/bin/python bench/event_retention.py        # 1M events, writes docs/BENCHMARKS.md
    .venv/bin/python bench/event_retention.py --events 200000 --no-write
    flock /work/wt/bench.lock .venv/bin/python bench/event_retention.py --events 10000000

Re-creates ``--database`` as a copy of the demo shop at ``--events`` events
(``common.demo_shop_template``: written once with ``COPY`` into
``<--prefill-database>_<events>`` and kept, shared with ``bench/ingest.py --prefill``;
timestamps over 42 days, so with a 30-day retention about 2 events in 7 are expired),
gives the recommender a 10-day window and the attribution cursor the last key, then:

1. ingest alone: a child process calls ``event_batch_ingest`` (1,000-event batches of
   the shop's users and items) for ``--seconds`` seconds -> events/s;
2. ``manage.py prune_events`` (10,000-event batches) with the same ingest child running
   next to it -> deleted events/s (and in the first and the last third of the pass: a
   cost that grows with the rows already deleted shows there), the ingest rate while
   it ran and the longest ingest batch (a lock held by a delete batch shows there).

Prints a table and writes the "Event retention" section of docs/BENCHMARKS.md. Never in
CI; the machine's load average at start is recorded with the numbers."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import (
    EVENTS_PER_ITEM,
    EVENTS_PER_USER,
    ROOT,
    command_env,
    demo_shop_template,
    drop_database,
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
RETENTION_DAYS = 30


def ingest_child(events: int) -> None:
    """Ingest 1,000-event batches of new events (the users and items of the demo shop at
    ``events`` events) until SIGTERM; after each batch print ``<unix time> <events stored
    so far>``."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    import django

    django.setup()
    from django.utils import timezone

    from recommender.demo_data import demo_item_id, demo_user_id
    from recommender.services import event_batch_ingest

    users, items = events // EVENTS_PER_USER, events // EVENTS_PER_ITEM

    stored, batch = 0, 0
    print(f"{time.time()} 0", flush=True)
    while not stop:
        now = timezone.now().isoformat()
        raw = [
            {
                "event_id": f"bench-{os.getpid()}-{batch}-{n}",
                "user_id": demo_user_id((batch * 1009 + n) % users),
                "item_id": demo_item_id((batch * 7 + n) % items),
                "type": "view",
                "timestamp": now,
            }
            for n in range(1000)
        ]
        stored += event_batch_ingest(raw_events=raw).created
        batch += 1
        print(f"{time.time()} {stored}", flush=True)


def prepare(server_url: str, database: str) -> None:
    """A 10-day training window (shorter than the retention, so the retention decides)
    and the attribution cursor at the last key (every stored event read)."""
    with pg_connect(server_url, database) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE recommender_recommender SET window_days = 10")
        cursor.execute(
            "INSERT INTO recommender_attributioncursor (name, last_event_id, events_attributed,"
            " events_unattributed, unknown_ids, updated_at)"
            " SELECT 'default', max(id), 0, 0, 0, now() FROM recommender_event"
        )


class Ingest:
    """The ingest child; ``rate(start, end)``: events/s it stored between two times."""

    def __init__(self, env: dict[str, str], events: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--ingest-child", str(events)],
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

    @staticmethod
    def longest_batch(marks: list[tuple[float, int]], start: float, end: float) -> float:
        """The longest time between two batches' ends between two times, in seconds."""
        times = [t for t, _ in marks if start <= t <= end]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("nan"))


def count_events(server_url: str, database: str) -> int:
    with pg_connect(server_url, database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM recommender_event")
        return cursor.fetchone()[0]


def prune(env: dict[str, str], server_url: str, database: str) -> list[tuple[float, int]]:
    """``manage.py prune_events`` to its end; the pass's progress, polled every 0.5 s
    from its audit row (updated by every batch): ``(unix time, events deleted)``."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "prune_events"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    progress = [(time.time(), 0)]
    with pg_connect(server_url, database) as connection, connection.cursor() as cursor:
        while process.poll() is None:
            time.sleep(0.5)
            cursor.execute(
                "SELECT coalesce(max(events_deleted), 0) FROM recommender_dataerasure"
                " WHERE kind = 'expired'"
            )
            progress.append((time.time(), cursor.fetchone()[0]))
    output = process.stdout.read()
    if process.returncode != 0:
        sys.exit(f"prune_events failed ({process.returncode}):\n{output[-3000:]}")
    return progress


def third_rates(progress: list[tuple[float, int]]) -> tuple[float, float]:
    """Deletes/s over the first and the last third of the pass's deletes (from the first
    poll that saw a delete: the command's start-up is not in the first third)."""
    total = progress[-1][1]
    deleting = [(t, n) for t, n in progress if n > 0]

    def first(share: float) -> tuple[float, int]:
        return next((t, n) for t, n in deleting if n >= share * total)

    (t0, n0), (t1, n1), (t2, n2), (t3, n3) = deleting[0], first(1 / 3), first(2 / 3), first(1)
    nan = float("nan")  # a pass shorter than the polls
    return (n1 - n0) / (t1 - t0) if t1 > t0 else nan, (n3 - n2) / (t3 - t2) if t3 > t2 else nan


def render(rows: dict[str, str], verdict: str, machine: dict[str, str], command: str) -> str:
    lines = [
        SECTION_START,
        "## Event retention",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}` (PostgreSQL,"
        " `manage.py prune_events`, 10,000-event batches, each its own transaction; a child"
        " process ingesting 1,000-event batches through `event_batch_ingest` next to it).",
        "",
        "| Figure | Value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in rows.items()),
        "",
        verdict,
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in machine.items()),
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="the demo shop's size")
    parser.add_argument("--seconds", type=float, default=10.0, help="ingest-alone duration")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default=DATABASE, help="dropped and re-created")
    parser.add_argument(
        "--prefill-database",
        default="recsite_bench_prefill",
        help="the kept demo shop --database is copied from, named <this>_<events>",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop --database")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--ingest-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_child:
        ingest_child(args.ingest_child)
        return
    machine = machine_info()
    machine["PostgreSQL"] = postgres_version(args.server)
    started = time.perf_counter()
    template, written = demo_shop_template(args.server, args.prefill_database, events=args.events)
    recreate_database(args.server, args.database, template=template)
    copied = time.perf_counter() - started - (written or 0.0)
    prepare(args.server, args.database)
    try:
        with tempfile.TemporaryDirectory(prefix="recsite-bench-retention-") as tmp:
            env = command_env(f"{args.server.rstrip('/')}/{args.database}", Path(tmp))
            env |= {"RECSITE_EVENT_RETENTION_DAYS": str(RETENTION_DAYS), "PYTHONPATH": str(ROOT)}
            before = count_events(args.server, args.database)
            ingest = Ingest(env, args.events)
            alone_start = time.time()
            time.sleep(args.seconds)
            alone_end = time.time()
            progress = prune(env, args.server, args.database)
            marks = ingest.stop()
            # the same command with nothing left: process start, settings, the plan
            overhead = manage_ok(env, "prune_events")
            after = count_events(args.server, args.database)
    finally:
        if not args.keep_db:
            drop_database(args.server, args.database)
    (prune_start, _), (prune_end, deleted) = progress[0], progress[-1]
    prune_seconds = prune_end - prune_start
    alone = Ingest.rate(marks, alone_start, alone_end)
    during = Ingest.rate(marks, prune_start, prune_end)
    first_third, last_third = third_rates(progress)
    longest_alone = Ingest.longest_batch(marks, alone_start, alone_end)
    longest_during = Ingest.longest_batch(marks, prune_start, prune_end)
    shop = (
        f"written in {written:.0f} s" if written else "kept from a previous run"
    ) + f", copied in {copied:.0f} s"
    rows = {
        "Events stored before": f"{before:,} (the demo shop: {shop})",
        f"Events deleted (older than {RETENTION_DAYS} days)": f"{deleted:,}",
        "Events stored after (ingest included)": f"{after:,}",
        "`prune_events` wall time": f"{prune_seconds:.1f} s ({overhead:.1f} s of it process "
        "start and planning: a second run with nothing left)",
        "Delete throughput": f"{deleted / max(prune_seconds - overhead, 1e-3):,.0f} events/s",
        "Delete throughput, first / last third of the pass": f"{first_third:,.0f} / "
        f"{last_third:,.0f} events/s",
        "Ingest alone": f"{alone:,.0f} events/s",
        "Ingest while pruning": f"{during:,.0f} events/s ({during / alone - 1:+.0%})",
        "Longest ingest batch (1,000 events), alone / while pruning": f"{longest_alone:.2f} / "
        f"{longest_during:.2f} s",
    }
    thirds = (
        "the pass is too short to compare its thirds"
        if math.isnan(first_third) or math.isnan(last_third)
        else f"cost per deleted event {'flat' if last_third >= 0.8 * first_third else 'GROWING'}"
        f" over the pass (the last third {last_third / first_third:.2f}x the first third's rate)"
    )
    verdict = (
        f"{thirds[0].upper()}{thirds[1:]}; the longest pause of the ingest child while pruning"
        f" {longest_during:.2f} s against {longest_alone:.2f} s alone"
        f" ({'no' if longest_during < 1.0 else 'a'} long lock)."
    )
    for name, value in rows.items():
        print(f"{name:40} {value}")
    print(verdict)
    if not args.no_write:
        command = " ".join(["python bench/event_retention.py", *map(shlex.quote, sys.argv[1:])])
        write_section(SECTION_START, SECTION_END, render(rows, verdict, machine, command))


if __name__ == "__main__":
    main()
