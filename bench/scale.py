"""Scale benchmark: how a retrain's time and memory grow with the number of events.

    .venv/bin/python bench/scale.py                              # 1M and 10M events
    .venv/bin/python bench/scale.py --events 1000000,3000000 --no-write

For each size N it creates a fresh PostgreSQL database ``recsite_bench_scale_<N>``,
generates the demo shop with ``manage.py generate_demo_data`` at one generator shape (N /
100 users and N / 200 items, so users per event and items per event stay the same and the
comparison is fair), then runs ``manage.py retrain`` (the default recommender, its
defaults) as a subprocess and records its wall time, its peak RSS (the retrain process's
own ``ru_maxrss``, measured by a wrapper so data generation does not count) and the
phase timings from the run's row. It prints the table with each size's growth over the
smallest one and writes the "Scale" section of docs/BENCHMARKS.md.

Targets (issue 17): at 10x the events, retrain time <= 10x and peak RSS <= 4x. Never part
of CI: 10M events take ~7 minutes to generate and minutes to train on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common import (
    BENCHMARKS_MD,
    ROOT,
    command_env,
    drop_database,
    machine_info,
    manage_ok,
    pg_connect,
    postgres_version,
    recreate_database,
    write_section,
)

SECTION_START = "<!-- bench/scale.py: start -->"
SECTION_END = "<!-- bench/scale.py: end -->"
DB_PREFIX = "recsite_bench_scale_"
EVENTS_PER_USER = 100
EVENTS_PER_ITEM = 200
TIME_GROWTH_TARGET = 1.0  # x the events ratio: linear
RSS_GROWTH_TARGET = 0.4  # x the events ratio: 4x at 10x


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument(
        "--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument("--rss-of", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args()


def rss_of(command: list[str]) -> None:
    """Wrapper mode: run ``command`` and print its exit code and peak RSS (bytes) as JSON
    on the last line of stderr."""
    done = subprocess.run(command, cwd=ROOT)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"returncode": done.returncode, "peak_rss": peak_kib * 1024}), file=sys.stderr)


@dataclass(frozen=True)
class SizeResult:
    events: int
    users: int
    items: int
    generate_seconds: float
    retrain_seconds: float
    peak_rss: int
    phases: dict[str, float]
    decision: str


def bench_size(server: str, events: int, keep: bool) -> SizeResult:
    users, items = events // EVENTS_PER_USER, events // EVENTS_PER_ITEM
    name = f"{DB_PREFIX}{events}"
    recreate_database(server, name)
    try:
        return _bench_database(server, name, events, users, items)
    finally:
        if not keep:
            drop_database(server, name)


def _bench_database(server: str, name: str, events: int, users: int, items: int) -> SizeResult:
    url = f"{server.rstrip('/')}/{name}"
    with tempfile.TemporaryDirectory(prefix="recsite-scale-") as data_dir:
        env = command_env(url, Path(data_dir))
        manage_ok(env, "migrate", "-v", "0")
        print(f"{events:,} events: generating {users:,} users x {items:,} items ...", flush=True)
        generate = manage_ok(
            env, "generate_demo_data", "--users", str(users), "--items", str(items),
            "--events", str(events), "-v", "0",
        )  # fmt: skip
        print(f"  generated in {generate:.0f} s; retraining ...", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--rss-of", sys.executable, str(ROOT / "manage.py"),
             "retrain"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        measured = json.loads(done.stderr.strip().splitlines()[-1])
        if measured["returncode"] not in (0, 3):
            sys.exit(f"retrain failed ({measured['returncode']}):\n{done.stderr[-3000:]}")
        with pg_connect(server, name) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT status, decision, phase_timings, error FROM training_trainingrun "
                "ORDER BY id DESC LIMIT 1"
            )
            status, decision, phases, error = cursor.fetchone()
        if status != "succeeded":
            sys.exit(f"the run did not succeed ({status}): {error}")
        print(f"  retrained in {wall:.0f} s, peak RSS {measured['peak_rss'] / 2**30:.2f} GiB")
        return SizeResult(
            events, users, items, generate, wall, measured["peak_rss"],
            {name: float(value) for name, value in phases.items()}, decision,
        )  # fmt: skip


def render(results: list[SizeResult], info: dict[str, str], command: str, when: datetime) -> str:
    base = results[0]
    lines = [
        SECTION_START,
        "",
        f"### Scale ({when:%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{command}` on {info['CPU']}, {info['Cores']} cores, {info['RAM']}, "
        f"PostgreSQL {info['postgres']}; load average at start "
        f"{info['Load average at start (1/5/15 min)']}. The "
        "generated shop at one shape (events / 100 users, events / 200 items), the default "
        "recommender with its defaults, `manage.py retrain` as a subprocess:",
        "",
        "| events | users / items | generate | retrain wall | time growth | peak RSS "
        "| RSS growth | phases (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        ratio = result.events / base.events
        time_growth = result.retrain_seconds / base.retrain_seconds
        rss_growth = result.peak_rss / base.peak_rss
        phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.phases.items())
        lines.append(
            f"| {result.events:,} | {result.users:,} / {result.items:,} "
            f"| {result.generate_seconds:.0f} s | {result.retrain_seconds:.0f} s "
            f"| {time_growth:.1f}x for {ratio:g}x events | {result.peak_rss / 2**30:.2f} GiB "
            f"| {rss_growth:.1f}x | {phases} |"
        )
    lines.append("")
    for result in results[1:]:
        ratio = result.events / base.events
        if ratio < 10:  # the targets are stated at 10x the events
            continue
        time_ok = result.retrain_seconds / base.retrain_seconds <= TIME_GROWTH_TARGET * ratio
        rss_ok = result.peak_rss / base.peak_rss <= RSS_GROWTH_TARGET * ratio
        lines.append(
            f"- {ratio:g}x the events: time {'met' if time_ok else 'MISSED'} "
            f"(target <= {TIME_GROWTH_TARGET * ratio:g}x), peak RSS "
            f"{'met' if rss_ok else 'MISSED'} (target <= {RSS_GROWTH_TARGET * ratio:g}x)."
        )
    lines += ["", SECTION_END]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.rss_of:
        rss_of(args.rss_of)
        return
    sizes = sorted(int(size) for size in args.events.split(","))
    info = {**machine_info(), "postgres": postgres_version(args.server)}
    when = datetime.now(UTC)
    results = [bench_size(args.server, events, args.keep) for events in sizes]
    command = " ".join(["python bench/scale.py", *map(shlex.quote, sys.argv[1:])])
    section = render(results, info, command, when)
    print(section)
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, section)
        print(f"updated {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
