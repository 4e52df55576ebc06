"""The online loop's costs: recording served lists in serving, and the attribution pass.

    .venv/bin/python bench/online.py                       # defaults, updates BENCHMARKS.md
    .venv/bin/python bench/online.py --lists 1000000 --events 50000 --no-write

What it does, on a dedicated PostgreSQL database (dropped and created afresh):

1. **Serving, recording on vs off.** Generates demo data (``generate_demo_data``), trains
   one version (``retrain``, few epochs), then in this process calls
   ``recommender.serving.responses.recommendations_get`` for USERS users, PAIRS times
   with recording on and off alternating (the order flips every pair). "Off" replaces the
   module's ``served_list_record`` by a no-op for the block, so the request path is
   otherwise the same (the recommendation id and the items' sources are still made:
   the response carries the id). "On" ends its block with ``recording.flush()`` (the
   ``COPY`` the flusher thread does off the request path), so its CPU counts. Reports
   ``time.process_time`` and wall time per call: CPU per call is what a noisy, shared
   machine measures reliably. PostgreSQL's own CPU for the ``COPY`` is not in it (the
   wall time includes the round trip).
2. **Attribution at LISTS served lists.** Inserts LISTS served lists (10 items each,
   spread over the last 7 days, USERS_ATTR users) with one ``INSERT ... SELECT
   generate_series`` (a bulk load: the secondary indexes built after it; ~3 minutes for
   10M here), marks them counted in the attribution cursor, then inserts EVENTS events on
   items of those lists: half name the list's ``recommendation_id`` and position, half
   name none (attributed by user and item). Times one ``attribution_run`` (the pass beat
   runs every minute) and reports events/s; then rewinds the cursor by LIST_PASS lists
   and times the lists pass (impressions into the hourly aggregates) in lists/s.
   ``--compare-python`` times both passes again with the in-memory matcher and count
   (SQLite's path), side by side in the same run.

Needs PostgreSQL (``--server-url``). Never part of CI; loads the machine for a few
minutes (most of it loading the served lists). ``--lock FILE`` takes FILE's flock only
around the timed passes (and the serving blocks), not the loading.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import (
    ROOT,
    command_env,
    drop_database,
    machine_info,
    manage_ok,
    measured_header,
    pg_connect,
    postgres_version,
    publish_section,
    recreate_database,
)

SECTION_START = "<!-- bench/online.py: start -->"
SECTION_END = "<!-- bench/online.py: end -->"
ITEMS_PER_LIST = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_online", help="dropped, re-created")
    parser.add_argument("--users", type=int, default=500, help="users called per serving block")
    parser.add_argument("--pairs", type=int, default=4, help="on/off block pairs")
    parser.add_argument("--lists", type=int, default=10_000_000, help="served lists stored")
    parser.add_argument("--users-attr", type=int, default=200_000, help="users of those lists")
    parser.add_argument("--events", type=int, default=100_000, help="events attributed")
    parser.add_argument("--list-pass", type=int, default=200_000, help="lists the lists pass reads")
    parser.add_argument(
        "--skip-serving", action="store_true", help="attribution only (no training, no serving)"
    )
    parser.add_argument(
        "--lock",
        type=Path,
        help="hold this file's flock(2) lock only while timing (e.g. a machine's shared "
        "benchmark lock); the data loading runs outside it",
    )
    parser.add_argument(
        "--compare-python",
        action="store_true",
        help="time both passes again with the in-memory matcher and count (the SQLite path)",
    )
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="time the passes again on the database an earlier --keep-db --skip-serving run "
        "loaded (same --lists and --events), without loading anything",
    )
    return parser.parse_args()


def prepare(env: dict[str, str], *, train: bool) -> float:
    manage_ok(env, "migrate", "--no-input", "-v", "0")
    manage_ok(env, "generate_demo_data", "--users=2000", "--items=1000", "--events=100000")
    return manage_ok(env, "retrain", "--epochs=5", "--components=32") if train else 0.0


@contextmanager
def timing_lock(path: Path | None) -> Iterator[None]:
    """``path``'s exclusive flock while the block runs (nothing when ``path`` is None)."""
    if path is None:
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def django_setup(env: dict[str, str]) -> None:
    """This process becomes a recsite process on the bench database."""
    import django

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "recsite.settings"
    sys.path.insert(0, str(ROOT))
    django.setup()


def bench_serving(args: argparse.Namespace) -> dict:
    from recommender.models import Event
    from recommender.online import recording
    from recommender.serving import responses

    users = list(Event.objects.values_list("user_external_id", flat=True).distinct()[: args.users])
    real = responses.served_list_record

    def off(**_: object) -> None:
        return None

    def block(on: bool) -> tuple[float, float]:
        responses.served_list_record = real if on else off
        cpu, wall = time.process_time(), time.perf_counter()
        for user in users:
            responses.recommendations_get(
                recommender="default", user_id=user, limit=20, offset=0, exclude=[], category=None
            )
        if on:
            recording.flush()
        return (
            (time.process_time() - cpu) / len(users),
            (time.perf_counter() - wall) / len(users),
        )

    block(True)  # warm-up: the model loaded, the connection and caches warm
    block(False)
    figures: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with timing_lock(args.lock):
        timed_pairs(args, block, figures)
    responses.served_list_record = real
    return {
        mode: {
            "cpu_ms": statistics.median(c for c, _ in rows) * 1e3,
            "wall_ms": statistics.median(w for _, w in rows) * 1e3,
        }
        for mode, rows in figures.items()
    } | {"calls": len(users)}


def timed_pairs(args: argparse.Namespace, block, figures: dict) -> None:
    for pair in range(args.pairs):
        for on in (True, False) if pair % 2 else (False, True):
            cpu, wall = block(on)
            figures["on" if on else "off"].append((cpu, wall))
            print(
                f"  serving pair {pair + 1}/{args.pairs}, recording {'on' if on else 'off'}:"
                f" {cpu * 1e3:.3f} ms CPU, {wall * 1e3:.3f} ms wall per call",
                flush=True,
            )


SERVED_INDEXES = ("served_user_time_idx", "served_time_idx")


def insert_lists(args: argparse.Namespace, cursor, recommender_id: int, end: datetime) -> float:
    """LISTS served lists over the 7 days before ``end``, oldest first; list ``g`` shows
    the demo items ``(g + k) % 1000 + 1`` for k < 10 to user ``g % USERS_ATTR``.

    A bulk load: one ``INSERT ... SELECT generate_series`` with the two secondary
    indexes dropped and built again afterwards (their definitions read from the
    catalogue, so they are the migrations'), the 1,000 distinct item lists built once,
    and time-ordered ids (UUIDv7-shaped: the list's millisecond, then ``g``) so the
    primary key grows at its end as recording's UUIDv7s make it."""
    started = time.perf_counter()
    step = timedelta(days=7) / args.lists
    cursor.execute("SET maintenance_work_mem = '1GB'")
    cursor.execute("SET synchronous_commit = off")
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'recommender_servedlist'"
        " AND indexname = ANY(%s)",
        [list(SERVED_INDEXES)],
    )
    definitions = [row[0] for row in cursor.fetchall()]
    for name in SERVED_INDEXES:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
    cursor.execute(
        """
        CREATE TEMP TABLE bench_item_lists AS
        SELECT r, jsonb_agg('demo-item-' || ((r + k) % 1000 + 1) ORDER BY k) AS items
        FROM generate_series(0, 999) r, generate_series(0, 9) k GROUP BY r
        """
    )
    cursor.execute(
        """
        INSERT INTO recommender_servedlist (id, recommender_id, model_version, experiment_id,
            arm, user_external_id, kind, first_position, item_ids, sources, created_at)
        SELECT (lpad(to_hex((extract(epoch FROM t.at) * 1000)::bigint), 12, '0')
                || '70008' || lpad(to_hex(g), 15, '0'))::uuid,
            %(rec)s, 1, NULL, '', 'attr-u' || (g %% %(users)s), 'recommendations', 1,
            l.items,
            '["model","model","model","model","model","model","model","model","model","model"]',
            t.at
        FROM generate_series(0, %(lists)s - 1) g
        CROSS JOIN LATERAL (SELECT %(start)s::timestamptz + g * %(step)s::interval AS at) t
        JOIN bench_item_lists l ON l.r = g %% 1000
        """,
        {
            "rec": recommender_id,
            "users": args.users_attr,
            "start": end - timedelta(days=7),
            "step": step,
            "lists": args.lists,
        },
    )
    for definition in definitions:
        cursor.execute(definition)
    return time.perf_counter() - started


def insert_events(args: argparse.Namespace, cursor, end: datetime) -> float:
    """EVENTS clicks on the second item of the newest EVENTS lists, a minute after each
    list; even ones name the list (and position 2), odd ones do not."""
    started = time.perf_counter()
    cursor.execute(
        """
        INSERT INTO recommender_event (client, event_id, user_external_id, item_id,
            event_type, weight, timestamp, recommendation_id, position, ingested_at)
        SELECT 'bench', 'attr-' || n, l.user_external_id, i.id, 'click', 1.0,
            l.created_at + interval '1 minute',
            CASE WHEN n %% 2 = 0 THEN l.id::text ELSE '' END,
            CASE WHEN n %% 2 = 0 THEN 2 ELSE NULL END,
            %(ingested)s
        FROM (SELECT *, row_number() OVER (ORDER BY created_at DESC) AS n
              FROM recommender_servedlist ORDER BY created_at DESC LIMIT %(events)s) l
        JOIN recommender_item i ON i.external_id = l.item_ids ->> 1
        """,
        {"events": args.events, "ingested": end - timedelta(minutes=5)},
    )
    return time.perf_counter() - started


def events_pass_in_python(args: argparse.Namespace, last_event: int) -> float:
    """The same events pass again with the in-memory matcher (what SQLite runs, and what
    PostgreSQL ran before the SQL matcher): the cursor rewound, the aggregates emptied."""
    from recommender.online import attribution
    from recommender.online.attribution import CURSOR_NAME, attribution_run
    from recommender.online.attribution_match import events_match_python
    from recommender.online.models import AttributionCursor, OnlineHourly

    AttributionCursor.objects.filter(name=CURSOR_NAME).update(last_event_id=last_event)
    OnlineHourly.objects.all().delete()
    sql_matcher = attribution.events_match
    attribution.events_match = events_match_python
    try:
        with timing_lock(args.lock):
            started = time.perf_counter()
            attribution_run(now=datetime.now(UTC))
            return time.perf_counter() - started
    finally:
        attribution.events_match = sql_matcher


def lists_pass_in_python(args: argparse.Namespace, rewind: datetime) -> float:
    """The same lists pass again counted in Python (what SQLite runs, and what
    PostgreSQL ran before the SQL count): the cursor rewound, the aggregates emptied."""
    from recommender.online import impressions
    from recommender.online.attribution import CURSOR_NAME, attribution_run
    from recommender.online.models import AttributionCursor, OnlineHourly

    AttributionCursor.objects.filter(name=CURSOR_NAME).update(lists_done_until=rewind)
    OnlineHourly.objects.all().delete()
    sql_count = impressions._count_sql
    impressions._count_sql = impressions._count_python
    try:
        with timing_lock(args.lock):
            started = time.perf_counter()
            attribution_run(now=datetime.now(UTC))
            return time.perf_counter() - started
    finally:
        impressions._count_sql = sql_count


def bench_attribution(args: argparse.Namespace, database_url: str) -> dict:
    from recommender.models import Event, Recommender
    from recommender.online.attribution import CURSOR_NAME, attribution_run
    from recommender.online.models import AttributionCursor, OnlineHourly, ServedList

    recommender_id = Recommender.objects.get(name="default").pk
    list_seconds = event_seconds = None
    if args.reuse_db:  # the lists and events of an earlier --keep-db run
        first = Event.objects.filter(client="bench").order_by("pk").values_list("pk", flat=True)
        last_demo_event = first[0] - 1
    else:
        ServedList.objects.all().delete()  # the serving bench's lists: made seconds ago
        last_demo_event = Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        end = datetime.now(UTC) - timedelta(minutes=10)
        server_url, dbname = database_url.rsplit("/", 1)
        with pg_connect(server_url, dbname) as connection, connection.cursor() as cursor:
            print(f"  inserting {args.lists:,} served lists ...", flush=True)
            list_seconds = insert_lists(args, cursor, recommender_id, end)
            cursor.execute("ANALYZE recommender_servedlist")
            print(f"  {list_seconds:.0f} s; inserting {args.events:,} events ...", flush=True)
            event_seconds = insert_events(args, cursor, end)
            cursor.execute("ANALYZE recommender_event")
    newest = ServedList.objects.order_by("-created_at").values_list("created_at", flat=True)[0]
    AttributionCursor.objects.update_or_create(
        name=CURSOR_NAME, defaults={"lists_done_until": newest, "last_event_id": last_demo_event}
    )
    with timing_lock(args.lock):
        started = time.perf_counter()
        events = attribution_run(now=datetime.now(UTC))
        events_seconds = time.perf_counter() - started
    print(f"  events pass: {events.summary()} in {events_seconds:.1f} s", flush=True)
    python_seconds = None
    if args.compare_python:
        python_seconds = events_pass_in_python(args, last_demo_event)
        print(f"  events pass, rules in Python: {python_seconds:.1f} s", flush=True)

    rewind = ServedList.objects.order_by("-created_at").values_list("created_at", flat=True)[
        args.list_pass
    ]
    AttributionCursor.objects.filter(name=CURSOR_NAME).update(lists_done_until=rewind)
    OnlineHourly.objects.all().delete()
    with timing_lock(args.lock):
        started = time.perf_counter()
        lists = attribution_run(now=datetime.now(UTC))
        lists_seconds = time.perf_counter() - started
    print(f"  lists pass: {lists.summary()} in {lists_seconds:.1f} s", flush=True)
    python_lists_seconds = None
    if args.compare_python:
        python_lists_seconds = lists_pass_in_python(args, rewind)
        print(f"  lists pass, counted in Python: {python_lists_seconds:.1f} s", flush=True)
    return {
        "insert_lists_seconds": list_seconds,
        "insert_events_seconds": event_seconds,
        "events": events.events,
        "attributed": events.attributed,
        "events_per_second": events.events / events_seconds,
        "python_events_per_second": python_seconds and events.events / python_seconds,
        "lists_read": lists.lists,
        "lists_per_second": lists.lists / lists_seconds,
        "python_lists_per_second": python_lists_seconds and lists.lists / python_lists_seconds,
    }


def serving_block(args, serving: dict | None) -> list[str]:
    if serving is None:
        return ["Serving: not measured in this run (`--skip-serving`).", ""]
    on, off = serving["on"], serving["off"]
    return [
        f"**Serving, recording on vs off** (in-process `recommendations_get`, demo data,"
        f" {serving['calls']} users a block, {args.pairs} pairs alternating, medians;"
        ' "on" includes the flush\'s `COPY` done by the flusher thread in production):',
        "",
        "| Recording | CPU per call | Wall per call |",
        "|---|---:|---:|",
        f"| off | {off['cpu_ms']:.3f} ms | {off['wall_ms']:.3f} ms |",
        f"| on | {on['cpu_ms']:.3f} ms | {on['wall_ms']:.3f} ms |",
        "",
        f"Throughput on / off, from CPU per call: {off['cpu_ms'] / on['cpu_ms']:.2f}x"
        " (the issue asks >= 0.9x); from wall time:"
        f" {off['wall_ms'] / on['wall_ms']:.2f}x.",
        "",
    ]


def render(args, info: dict, serving: dict | None, attribution: dict, command: str) -> str:
    return (
        "\n".join(
            [
                SECTION_START,
                "## Online loop",
                "",
                *measured_header(command, info),
                "",
                *serving_block(args, serving),
                f"**Attribution at {args.lists:,} served lists** ({args.users_attr:,} users, 10"
                " items each, over 7 days; bulk-loaded with `INSERT ... SELECT generate_series`,"
                " indexes built after, "
                + (
                    f"in {attribution['insert_lists_seconds']:.0f} s):"
                    if attribution["insert_lists_seconds"] is not None
                    else "by an earlier run, `--reuse-db`):"
                ),
                "",
                "| Pass | Read | Rate |",
                "|---|---:|---:|",
                f"| events (half naming their list, half by user and item) |"
                f" {attribution['events']:,} events ({attribution['attributed']:,} attributed) |"
                f" {attribution['events_per_second']:,.0f} events/s |",
                *(
                    [
                        "| events, the same pass with the in-memory matcher (SQLite's) |"
                        f" {attribution['events']:,} events |"
                        f" {attribution['python_events_per_second']:,.0f} events/s |"
                    ]
                    if attribution["python_events_per_second"]
                    else []
                ),
                f"| lists (impressions into the hourly aggregates) | {attribution['lists_read']:,}"
                f" lists | {attribution['lists_per_second']:,.0f} lists/s |",
                *(
                    [
                        "| lists, the same pass counted in Python (SQLite's) |"
                        f" {attribution['lists_read']:,} lists |"
                        f" {attribution['python_lists_per_second']:,.0f} lists/s |"
                    ]
                    if attribution["python_lists_per_second"]
                    else []
                ),
                SECTION_END,
            ]
        )
        + "\n"
    )


def main() -> None:
    args = parse_args()
    command = " ".join(["python bench/online.py", *map(shlex.quote, sys.argv[1:])])
    database_url = f"{args.server_url.rstrip('/')}/{args.database}"
    info = machine_info()
    info["PostgreSQL"] = postgres_version(args.server_url)
    print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="recsite-bench-") as tmp:
        env = command_env(database_url, Path(tmp))
        if not args.reuse_db:
            recreate_database(args.server_url, args.database)
        try:
            if not args.reuse_db:
                trained = prepare(env, train=not args.skip_serving)
                print(f"  prepared (training {trained:.0f} s)", flush=True)
            django_setup(env)
            serving = None if args.skip_serving else bench_serving(args)
            attribution = bench_attribution(args, database_url)
        finally:
            if not args.keep_db:
                from django.db import connections

                connections.close_all()
                drop_database(args.server_url, args.database)
    section = render(args, info, serving, attribution, command)
    publish_section(SECTION_START, SECTION_END, section, write=not args.no_write)


if __name__ == "__main__":
    main()
