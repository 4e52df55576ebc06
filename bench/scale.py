"""Scale benchmark: how a retrain's time and memory grow with the number of events, for
every model family.

    .venv/bin/python bench/scale.py --lock /work/wt/bench.lock     # 1M and 10M events
    .venv/bin/python bench/scale.py --events 1000000,3000000 --families lightfm,als --no-write

For each size N it creates a fresh PostgreSQL database ``recsite_bench_scale_<N>`` (the
prefix is ``--db-prefix``; or
reuses it with ``--reuse``) holding the demo shop at one generator shape (N / 100 users
and N / 200 items, so users per event and items per event stay the same and the
comparison is fair), written with ``COPY`` (bench/scale_data.py: the arrays of
``generate_demo_data``, minutes faster than its ingest path at 10M events). Then, per
family, ``manage.py retrain --algorithm F --no-promote`` (the default recommender, the
family's defaults) as a subprocess; it records the wall time, the peak RSS (the retrain
process's own ``ru_maxrss``, measured by a wrapper so data generation does not count)
and the phase timings from the run's row. With ``--lock PATH`` only the retrains hold
that lock (one at a time), not the generation. It prints the table with each size's
growth over the smallest one and writes the "Scale" section of docs/BENCHMARKS.md.

EASE is skipped above ``RECSITE_EASE_MAX_ITEMS`` items (a dense item x item inverse:
``n_items^3`` by design; the run refuses it), so its growth is not measured at 10M.

Targets (issue 17): at 10x the events, retrain time <= 10x and peak RSS <= 4x. Never part
of CI.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from common import (
    BENCHMARKS_MD,
    EVENTS_PER_ITEM,
    EVENTS_PER_USER,
    ROOT,
    command_env,
    database_exists,
    demo_shop_write,
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
FAMILIES = ("lightfm", "als", "svd", "itemknn", "ease", "popularity")
EASE_MAX_ITEMS = 20_000  # RECSITE_EASE_MAX_ITEMS's default
TIME_GROWTH_TARGET = 1.0  # x the events ratio: linear
RSS_GROWTH_TARGET = 0.4  # x the events ratio: 4x at 10x


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument(
        "--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL"
    )
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated")
    parser.add_argument("--lock", help="hold this file's lock (flock) for each retrain")
    parser.add_argument(
        "--events-per-item",
        type=int,
        default=EVENTS_PER_ITEM,
        help="the shape's items are events / this (100 at 10M events: a 100k-item catalogue)",
    )
    parser.add_argument(
        "--db-prefix", default=DB_PREFIX, help="database name prefix (one per size)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="use an existing database of a size as it is"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    parser.add_argument(
        "--results",
        default=str(ROOT / "var" / "bench" / "scale-results.json"),
        help="each run's figures are saved here as they come (a long run can be resumed)",
    )
    parser.add_argument("--resume", action="store_true", help="skip the runs already in --results")
    parser.add_argument(
        "--render-only", action="store_true", help="write the section from --results and exit"
    )
    parser.add_argument("--rss-of", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args()


def rss_of(command: list[str]) -> None:
    """Wrapper mode: run ``command`` and print its exit code and peak RSS (bytes) as JSON
    on the last line of stderr."""
    done = subprocess.run(command, cwd=ROOT)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"returncode": done.returncode, "peak_rss": peak_kib * 1024}), file=sys.stderr)


@dataclass(frozen=True)
class FamilyResult:
    family: str
    retrain_seconds: float
    peak_rss: int
    phases: dict[str, float]
    decision: str


@dataclass(frozen=True)
class SizeResult:
    events: int
    users: int
    items: int
    generate_seconds: float
    families: dict[str, FamilyResult]


@contextmanager
def bench_lock(path: str | None) -> Iterator[None]:
    """Hold ``path``'s exclusive flock (the shared bench lock) while timing."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Store:
    """The figures measured so far, by size, saved to ``path`` after every run."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.sizes: dict[str, dict] = (
            json.loads(path.read_text()) if resume and path.exists() else {}
        )

    def has(self, events: int, family: str) -> bool:
        return family in self.sizes.get(str(events), {}).get("families", {})

    def size(self, events: int, users: int, items: int, generate: float) -> None:
        entry = self.sizes.setdefault(str(events), {"families": {}})
        entry.update(users=users, items=items)
        entry["generate_seconds"] = generate or entry.get("generate_seconds", 0.0)
        self._save()

    def add(self, events: int, result: FamilyResult) -> None:
        self.sizes[str(events)]["families"][result.family] = asdict(result)
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.sizes, indent=1))

    def results(self) -> list[SizeResult]:
        return [
            SizeResult(
                int(events), entry["users"], entry["items"], entry["generate_seconds"],
                {f: FamilyResult(**run) for f, run in entry["families"].items()},
            )
            for events, entry in sorted(self.sizes.items(), key=lambda kv: int(kv[0]))
        ]  # fmt: skip


def bench_size(args: argparse.Namespace, events: int, families: list[str], store: Store) -> None:
    users, items = events // EVENTS_PER_USER, events // args.events_per_item
    shape = "" if args.events_per_item == EVENTS_PER_ITEM else f"_{items}i"
    name = f"{args.db_prefix}{events}{shape}"
    reuse = args.reuse and database_exists(args.server, name)
    if not reuse:
        recreate_database(args.server, name)
    try:
        _bench_database(args, name, events, users, items, families, reuse, store)
    finally:
        if not args.keep:
            drop_database(args.server, name)


def _bench_database(
    args: argparse.Namespace,
    name: str,
    events: int,
    users: int,
    items: int,
    families: list[str],
    reuse: bool,
    store: Store,
) -> None:
    url = f"{args.server.rstrip('/')}/{name}"
    with tempfile.TemporaryDirectory(prefix="recsite-scale-") as data_dir:
        env = command_env(url, Path(data_dir))
        generate = 0.0
        if not reuse:
            manage_ok(env, "migrate", "-v", "0")
            print(f"{events:,} events: writing {users:,} users x {items:,} items ...", flush=True)
            started = time.perf_counter()
            timings = demo_shop_write(env, events=events)
            generate = time.perf_counter() - started
            print(f"  written in {generate:.0f} s: {timings}", flush=True)
        store.size(events, users, items, generate)
        for family in families:
            if family == "ease" and items > EASE_MAX_ITEMS:
                print(f"  {family}: skipped ({items:,} items > {EASE_MAX_ITEMS:,})", flush=True)
                continue
            if store.has(events, family):
                continue
            store.add(events, _retrain(args, env, name, family))


def _retrain(args: argparse.Namespace, env: dict[str, str], name: str, family: str) -> FamilyResult:
    with bench_lock(args.lock):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--rss-of", sys.executable, str(ROOT / "manage.py"),
             "retrain", "--algorithm", family, "--no-promote"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
    measured = json.loads(done.stderr.strip().splitlines()[-1])
    if measured["returncode"] not in (0, 3):
        sys.exit(f"retrain {family} failed ({measured['returncode']}):\n{done.stderr[-3000:]}")
    with pg_connect(args.server, name) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, decision, phase_timings, error FROM training_trainingrun "
            "ORDER BY id DESC LIMIT 1"
        )
        status, decision, phases, error = cursor.fetchone()
    if status != "succeeded":
        sys.exit(f"the {family} run did not succeed ({status}): {error}")
    print(f"  {family}: {wall:.0f} s, peak RSS {measured['peak_rss'] / 2**30:.2f} GiB", flush=True)
    return FamilyResult(
        family, wall, measured["peak_rss"],
        {phase: float(value) for phase, value in phases.items()}, decision,
    )  # fmt: skip


def render(results: list[SizeResult], info: dict[str, str], command: str, when: datetime) -> str:
    base = results[0]
    lines = [
        SECTION_START,
        "",
        f"### Scale ({when:%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{command}` on {info['CPU']}, {info['Cores']} cores (shared, noisy), {info['RAM']}, "
        f"PostgreSQL {info['postgres']}; load average at start "
        f"{info['Load average at start (1/5/15 min)']}. The "
        "generated shop at one shape (events / 100 users, events / "
        f"{base.events // max(base.items, 1)} items) written with "
        "COPY, then per family `manage.py retrain --algorithm F --no-promote` (the family's "
        "defaults) as a subprocess, one at a time under the bench lock:",
        "",
        "| family | events | users / items | retrain wall | time growth | peak RSS "
        "| RSS growth | phases (s) |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    families = list(dict.fromkeys(f for r in results for f in r.families))
    for family in families:
        first = base.families.get(family)
        for result in results:
            run = result.families.get(family)
            if run is None:
                continue
            ratio = result.events / base.events
            time_growth = f"{run.retrain_seconds / first.retrain_seconds:.1f}x" if first else "-"
            rss_growth = f"{run.peak_rss / first.peak_rss:.1f}x" if first else "-"
            phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.phases.items())
            lines.append(
                f"| {family} | {result.events:,} | {result.users:,} / {result.items:,} "
                f"| {run.retrain_seconds:.0f} s | {time_growth} for {ratio:g}x events "
                f"| {run.peak_rss / 2**30:.2f} GiB | {rss_growth} | {phases} |"
            )
    lines.append("")
    for result in results[1:]:
        ratio = result.events / base.events
        if ratio < 10:  # the targets are stated at 10x the events
            continue
        for family, run in result.families.items():
            first = base.families.get(family)
            if first is None:
                continue
            time_ok = run.retrain_seconds / first.retrain_seconds <= TIME_GROWTH_TARGET * ratio
            rss_ok = run.peak_rss / first.peak_rss <= RSS_GROWTH_TARGET * ratio
            lines.append(
                f"- {family}, {ratio:g}x the events: time {'met' if time_ok else 'MISSED'} "
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
    families = [f for f in args.families.split(",") if f]
    store = Store(Path(args.results), args.resume or args.render_only)
    if not args.render_only:
        for events in sizes:
            bench_size(args, events, families, store)
    results = store.results()
    command = " ".join(["python bench/scale.py", *map(shlex.quote, sys.argv[1:])])
    section = render(results, info, command, when)
    print(section)
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, section)
        print(f"updated {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
