"""Users per second of ``manage.py export_recommendations``.

    .venv/bin/python bench/export.py                        # 100k users x 20k items
    .venv/bin/python bench/export.py --users 20000 --no-write   # a quick look

1. builds a scratch database (SQLite in a temporary RECSITE_DATA_DIR, or
   ``--database-url``, which is migrated and filled: use an empty one) with ITEMS catalogue
   items, a synthetic model of USERS x ITEMS (DIM factors; the serving tests' artifact
   writer, no LightFM fit) promoted, and EVENTS_PER_USER events per user (the seen
   items every line filters out);
2. runs the command for every user with events, once per ``--workers`` value, as a
   subprocess (production settings: DEBUG off), and measures wall time, CPU time (the
   process and its pool) and peak memory (the largest process);
3. prints a table and writes the "Batch export" section of docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import ROOT, command_env, machine_info, timed_run, write_section

SECTION_START = "<!-- bench/export.py: start -->"
SECTION_END = "<!-- bench/export.py: end -->"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--events-per-user", type=int, default=3)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--database-url", help="default: SQLite in the scratch directory")
    parser.add_argument("--no-write", action="store_true", help="print only")
    return parser.parse_args()


def prepare(args: argparse.Namespace, env: dict[str, str]) -> None:
    """Migrate and fill the scratch database in this process."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "recsite.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from recommender.models import Event, Item
    from tests.recommender.serving_helpers import ModelSpec, create_catalog, create_version

    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(0)
    items = [f"item-{i}" for i in range(args.items)]
    users = [f"user-{u:07d}" for u in range(args.users)]
    names = [f"cat-{c}" for c in range(20)]
    spec = ModelSpec(
        users=users,
        items=items,
        user_factors=rng.normal(size=(args.users, args.dim)).astype(np.float32),
        item_factors=rng.normal(size=(args.items, args.dim)).astype(np.float32),
        category_factors={c: rng.normal(size=args.dim).astype(np.float32) for c in names},
        categories={item: [names[i % len(names)]] for i, item in enumerate(items)},
        seen={},
        popularity=np.sort(rng.random(args.items).astype(np.float32))[::-1].copy(),
    )
    create_catalog(spec)
    create_version(spec)
    pks = np.asarray(Item.objects.order_by("pk").values_list("pk", flat=True))
    picks = rng.integers(0, len(pks), size=(args.users, args.events_per_user))
    batch = []
    for u, user in enumerate(users):
        for n, pick in enumerate(picks[u].tolist()):
            batch.append(
                Event(
                    event_id=f"{user}-{n}",
                    user_external_id=user,
                    item_id=int(pks[pick]),
                    event_type="view",
                    timestamp="2024-01-01T00:00:00Z",
                )
            )
        if len(batch) >= 20_000:
            Event.objects.bulk_create(batch)
            batch = []
    Event.objects.bulk_create(batch)


def main() -> None:
    args = parse_args()
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="recsite-export-bench-") as scratch:
        data = Path(scratch)
        url = args.database_url or f"sqlite:///{data / 'db.sqlite3'}"
        env = command_env(url, data)
        prepare(args, env)
        rows = []
        for workers in args.workers:
            out = data / f"out-{workers}.jsonl"
            timed = timed_run(
                [sys.executable, str(ROOT / "manage.py"), "export_recommendations",
                 "--limit", str(args.limit), "--output", str(out), "--no-progress",
                 "--workers", str(workers)],
                env,
            )  # fmt: skip
            if timed.done.returncode != 0:
                sys.exit(f"export failed:\n{timed.done.stderr[-3000:]}")
            lines = sum(1 for _ in out.open())
            peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            rows.append((workers, lines, timed.wall, timed.cpu, lines / timed.wall, peak_mib))
    database = "PostgreSQL" if args.database_url else "SQLite"
    table = [
        "| workers | users | wall s | CPU s | users/s | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {w} | {n:,} | {wall:.1f} | {cpu:.1f} | {rate:,.0f} | {rss:.0f} |"
            for w, n, wall, cpu, rate, rss in rows
        ),  # fmt: skip
    ]
    section = "\n".join(
        [
            SECTION_START,
            "## Batch export (`bench/export.py`)",
            "",
            f"`export_recommendations --limit {args.limit}` (JSON lines) for every user with "
            f"events: {args.users:,} users x {args.items:,} items, {args.dim} factors, "
            f"{args.events_per_user} events per user, {database}. Peak RSS is the largest "
            "process's (the pool's processes share the memory-mapped factors).",
            f"Machine: {info['CPU']}, {info['Cores']} cores, load average at start "
            f"{info['Load average at start (1/5/15 min)']}.",
            "",
            *table,
            SECTION_END,
        ]
    )
    print(section)
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, section)


if __name__ == "__main__":
    main()
