"""Serving at scale: a worker's private memory, a swap and throughput with a model of
1M users x 100k items, against MovieLens 100K on the same machine.

    .venv/bin/python bench/serving_scale.py                       # prepare, measure, write
    .venv/bin/python bench/serving_scale.py --seconds 5 --rounds 1 --no-write

Preparation (not timed; run it outside the bench lock with ``--prepare-only``, then
``--measure-only`` under it):

- ``recsite_bench_serving_scale``: the catalogue as real rows (USERS x ITEMS: the demo
  shop's titles and categories, written with ``COPY``), EVENTS events of those users
  (``INSERT ... SELECT`` from ``generate_series``: the seen filter's index at a real
  size), and two LightFM versions whose factors are random (``--components``) and whose
  seen items are SEEN_PER_USER random items per user, written by the real artifact
  writer and registered through the services; v1 is promoted. Training a real model of
  that size would take an hour and measure nothing serving does differently.
- ``recsite_bench_serving_scale_ml``: MovieLens 100K imported and trained
  (``import_dataset`` + ``retrain``, as bench/serving.py does).

Measurement (under ``flock /work/wt/bench.lock``), recsite under ``recsite/gunicorn.conf.py``
with 2 sync workers, production settings:

1. an idle worker: the server on an empty, migrated database (nothing to serve);
2. per case, ROUNDS rounds of wrk ``-t2 -c<C>`` for SECONDS seconds, the cases
   alternating; each worker's USS (``/proc/<pid>/smaps_rollup``: private clean + dirty)
   and its private anonymous memory (the heap: what cannot be shared) after start and
   after the load;
3. the large case: promote v2 and roll back to v1, SWAPS times, each timed from the
   commit until every worker's ``/readyz`` reports the new version (includes the
   watcher's check interval, ``RECSITE_SERVING_CHECK_SECONDS``), and in a separate process
   the load itself (``LoadedModel.load`` + ``model_state_build``, cold and warm page cache).

Targets (issue 17): USS <= idle + 100 MB, a swap <= 3 s, req/s >= 0.8x ML-100K.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import servers
import wrk_load
from common import (
    BENCHMARKS_MD,
    ROOT,
    django_call,
    drop_database,
    machine_info,
    manage_ok,
    pg_connect,
    postgres_version,
    recreate_database,
    write_section,
)
from serving import API_PATH, production_env, smaps

SECTION_START = "<!-- bench/serving_scale.py: start -->"
SECTION_END = "<!-- bench/serving_scale.py: end -->"
USS_TARGET_MIB = 100.0
SWAP_TARGET_SECONDS = 3.0
THROUGHPUT_TARGET = 0.8
SEEN_PER_USER = 10
BIG, ML, EMPTY = "1M users x 100k items", "ml-100k", "empty"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_serving_scale")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--data-dir", default="var/bench/serving-scale", help="artifacts")
    parser.add_argument("--port", type=int, default=8817)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000, help="stored events")
    parser.add_argument("--components", type=int, default=32)
    parser.add_argument("--dataset", default="../shared/data/ml-100k", help="relative to repo")
    parser.add_argument("--connections", default="8,32", help="wrk -c, comma-separated")
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--swaps", type=int, default=4)
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--measure-only", action="store_true", help="databases kept")
    parser.add_argument("--drop", action="store_true", help="drop the databases and exit")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--django", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args()


def server_env(args: argparse.Namespace, database: str) -> dict[str, str]:
    data_dir = (ROOT / args.data_dir / database).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return production_env(args.server_url, database, args.redis_url, data_dir)


# --- the Django side: generate, register, promote, time a load -------------------------


def django_main(arguments: list[str]) -> None:
    """``--django prepare USERS ITEMS EVENTS COMPONENTS`` | ``--django promote NUMBER`` |
    ``--django load``: run inside Django (the bench's own process has none)."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    django.setup()
    import scale_data

    command, *rest = arguments
    if command == "prepare":
        users, items, events, components = map(int, rest)
        result = scale_data.serving_shop(
            users=users,
            items=items,
            events=events,
            components=components,
            seen_per_user=SEEN_PER_USER,
        )
    elif command == "promote":
        result = scale_data.promote(number=int(rest[0]))
    else:
        result = scale_data.time_load()
    print(json.dumps(result), flush=True)


# --- preparation ------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> dict[str, dict]:
    shapes: dict[str, dict] = {}
    big_env = server_env(args, args.database)
    recreate_database(args.server_url, args.database)
    manage_ok(big_env, "migrate", "-v", "0")
    print(f"generating {args.users:,} users x {args.items:,} items ...", flush=True)
    shapes[BIG] = django_call(
        __file__,
        big_env,
        "prepare",
        str(args.users),
        str(args.items),
        str(args.events),
        str(args.components),
    )
    print(f"  {shapes[BIG]}", flush=True)
    ml = f"{args.database}_ml"
    ml_env = server_env(args, ml)
    recreate_database(args.server_url, ml)
    manage_ok(ml_env, "migrate", "-v", "0")
    dataset = (ROOT / args.dataset).resolve()
    if not dataset.is_dir():
        sys.exit(f"{dataset} is absent: the ML-100K case cannot be built")
    print("importing and training MovieLens 100K ...", flush=True)
    manage_ok(ml_env, "import_dataset", str(dataset), "--format", "movielens", "-v", "0")
    manage_ok(
        ml_env, "retrain", "--algorithm=lightfm", "--epochs=5", f"--no-components={args.components}"
    )
    empty = f"{args.database}_empty"
    recreate_database(args.server_url, empty)
    manage_ok(server_env(args, empty), "migrate", "-v", "0")
    for database in (args.database, ml):
        key = manage_key(server_env(args, database))
        with pg_connect(args.server_url, database) as connection, connection.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS bench_key (key text)")
            cur.execute("DELETE FROM bench_key")
            cur.execute("INSERT INTO bench_key VALUES (%s)", [key])
    return shapes


def manage_key(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "bench", "--scopes",
         "recommendations:read"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"create_api_key failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()


def case_inputs(args: argparse.Namespace, database: str) -> tuple[str, list[str], dict]:
    """The case's API key, up to 5,000 users with events, and its shape."""
    with pg_connect(args.server_url, database) as connection, connection.cursor() as cur:
        cur.execute("SELECT key FROM bench_key")
        key = cur.fetchone()[0]
        cur.execute(
            "SELECT user_external_id FROM recommender_event TABLESAMPLE SYSTEM (5) LIMIT 5000"
        )
        users = [row[0] for row in cur.fetchall()]
        cur.execute(
            "SELECT (SELECT count(*) FROM recommender_item), "
            "(SELECT count(*) FROM recommender_event), "
            "(SELECT artifact_size FROM recommender_modelversion WHERE status = 'active')"
        )
        items, events, artifact = cur.fetchone()
    return key, users, {"items": items, "events": events, "artifact_mib": artifact / 2**20}


# --- measurement ------------------------------------------------------------------------


def private_anon(pid: int) -> float:
    """MiB of the process's private anonymous memory (heap and anonymous maps: what no
    other process can share), from ``/proc/<pid>/smaps_rollup``."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name.strip()] = int(rest.split()[0])
    return values.get("Anonymous", 0) / 1024


def memory_of(server: servers.Service) -> dict[str, float]:
    pids = server.worker_pids()
    return {
        "uss": statistics.mean(smaps(pid)["uss"] for pid in pids),
        "rss": statistics.mean(smaps(pid)["rss"] for pid in pids),
        "anon": statistics.mean(private_anon(pid) for pid in pids),
    }


def readyz(port: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/readyz")
    return json.loads(connection.getresponse().read())


def loaded_by_worker(port: int, pids: list[int]) -> dict[int, int | None]:
    """Each worker's loaded version, asking ``/readyz`` until every worker answered."""
    seen: dict[int, int | None] = {}
    for _ in range(400):
        serving = readyz(port)["checks"]["serving"]
        default = serving.get("recommenders", {}).get("default", {})
        seen[serving["pid"]] = default.get("loaded_version")
        if set(seen) >= set(pids):
            break
    return seen


def wait_all_loaded(port: int, pids: list[int], version: int, deadline: float) -> float:
    """The wall-clock time (``time.time()``) when every worker reported ``version``;
    ``nan`` past ``deadline`` seconds."""
    started = time.perf_counter()
    while time.perf_counter() - started < deadline:
        if all(v == version for v in loaded_by_worker(port, pids).values()):
            return time.time()
        time.sleep(0.02)
    return float("nan")


@dataclass
class Case:
    name: str
    database: str
    key: str
    users: list[str]
    shape: dict
    server: servers.Service | None = None
    script: Path | None = None


def start(args: argparse.Namespace, case: Case, log_dir: Path) -> servers.Service:
    env = server_env(args, case.database)
    server = servers.recsite(
        env, port=args.port, workers=2, threads=1, log=log_dir / f"{case.database}.log"
    )
    pids = server.worker_pids()
    wait_all_loaded(args.port, pids, loaded_by_worker(args.port, pids)[pids[0]] or 1, 120)
    return server


def measure(args: argparse.Namespace) -> dict:
    wrk = wrk_load.ensure_wrk()
    log_dir = Path(tempfile.mkdtemp(prefix="recsite-serving-scale-"))
    results: dict = {"memory": {}, "wrk": {}, "swaps": [], "load": {}}
    empty = Case(EMPTY, f"{args.database}_empty", "", [], {})
    server = servers.recsite(
        server_env(args, empty.database), port=args.port, workers=2, threads=1,
        log=log_dir / "empty.log",
    )  # fmt: skip
    try:
        loaded_by_worker(args.port, server.worker_pids())
        results["memory"][EMPTY] = {"idle": memory_of(server)}
    finally:
        server.stop()
    cases = []
    for name, database in ((ML, f"{args.database}_ml"), (BIG, args.database)):
        key, users, shape = case_inputs(args, database)
        case = Case(name, database, key, users, shape)
        case.script = wrk_load.lua_script(
            log_dir / f"{database}.lua",
            [API_PATH.format(user) for user in users],
            {"Authorization": f"Api-Key {key}"},
        )
        cases.append(case)
    connections = [int(c) for c in args.connections.split(",")]
    for case in cases:
        results["wrk"][case.name] = {c: [] for c in connections}
    for round_number in range(args.rounds):
        for case in cases if round_number % 2 == 0 else cases[::-1]:
            server = start(args, case, log_dir)
            try:
                if case.name not in results["memory"]:
                    results["memory"][case.name] = {"idle": memory_of(server)}
                for c in connections:
                    run = wrk_load.run(
                        wrk, f"http://127.0.0.1:{args.port}", case.script, threads=2,
                        connections=c, seconds=args.seconds,
                    )  # fmt: skip
                    results["wrk"][case.name][c].append(run)
                    print(f"  {case.name} -c{c}: {run.rps:.0f} req/s", flush=True)
                results["memory"][case.name]["loaded"] = memory_of(server)
                if case.name == BIG and not results["swaps"]:
                    results["swaps"] = swaps(args, case, server)
            finally:
                server.stop()
    results["load"] = django_call(__file__, server_env(args, args.database), "load")
    results["shapes"] = {case.name: case.shape for case in cases}
    return results


def swaps(args: argparse.Namespace, case: Case, server: servers.Service) -> list[float]:
    """Promote v2 / roll back to v1 alternately (``promote`` of the other version); per
    swap the seconds from the commit until every worker reports it."""
    env = server_env(args, case.database)
    pids = server.worker_pids()
    times = []
    for n in range(args.swaps):
        target = 2 if n % 2 == 0 else 1
        committed = django_call(__file__, env, "promote", str(target))["committed_at"]
        times.append(wait_all_loaded(args.port, pids, target, 60) - committed)
        print(f"  swap to v{target}: {times[-1]:.2f} s after the commit", flush=True)
    if args.swaps % 2:
        django_call(__file__, env, "promote", "1")
    return times


# --- the report -------------------------------------------------------------------------


def best_rps(runs: list[wrk_load.WrkResult]) -> wrk_load.WrkResult:
    return max(runs, key=lambda r: r.rps)


def render(args, info, results: dict, command: str, when: datetime) -> str:
    memory = results["memory"]
    idle = memory[EMPTY]["idle"]["uss"]
    shapes = results["shapes"]
    lines = [
        SECTION_START,
        "",
        f"### Serving at scale ({when:%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{command}` on {info['CPU']}, {info['Cores']} cores (shared, noisy), {info['RAM']}, "
        f"PostgreSQL {info['postgres']}; load average at start "
        f"{info['Load average at start (1/5/15 min)']}. recsite under "
        "`recsite/gunicorn.conf.py`, 2 sync workers, production settings; the large "
        f"model is {args.users:,} users x {args.items:,} items, {args.components} random "
        f"factors and {SEEN_PER_USER} seen items per user through the real artifact writer, "
        "its catalogue real rows (COPY); MovieLens 100K imported and trained. wrk `-t2 "
        f"-c<N> -d{args.seconds:g}s`, a random user per request (`limit=20`), {args.rounds} "
        "round(s), the cases alternating; best round shown.",
        "",
        "| Case | Items | Events | Artifact | wrk | req/s (rounds) | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name in (ML, BIG):
        shape = shapes[name]
        for c, runs in results["wrk"][name].items():
            top = best_rps(runs)
            spread = ", ".join(f"{r.rps:,.0f}" for r in runs)
            lines.append(
                f"| {name} | {shape['items']:,} | {shape['events']:,} "
                f"| {shape['artifact_mib']:.0f} MiB | `-c{c}` | {top.rps:,.0f} ({spread}) "
                f"| {top.p50_ms:.1f} | {top.p99_ms:.1f} | {sum(r.non_2xx for r in runs)} |"
            )
    lines += [
        "",
        "Memory per worker (MiB, mean of the 2; USS = private clean + dirty pages, "
        "anonymous = heap and anonymous maps, which no other process can share):",
        "",
        "| Case | after start: USS / anonymous / RSS | after the load: USS / anonymous / RSS "
        "| USS beyond the idle worker |",
        "|---|---|---|---:|",
    ]
    for name in (EMPTY, ML, BIG):
        m = memory[name]
        after = m.get("loaded", m["idle"])
        lines.append(
            f"| {name} | {m['idle']['uss']:.0f} / {m['idle']['anon']:.0f} / "
            f"{m['idle']['rss']:.0f} | {after['uss']:.0f} / {after['anon']:.0f} / "
            f"{after['rss']:.0f} | {after['uss'] - idle:+.0f} |"
        )
    load = results["load"]
    swap_times = [t for t in results["swaps"] if t == t]
    lines += [
        "",
        f"Swaps of the large model under no load ({args.swaps}, promote / rollback): "
        f"from the commit until both workers report the new version "
        f"{', '.join(f'{t:.2f}' for t in results['swaps'])} s (the watcher looks every "
        "0.5 s). The load itself in one process (`LoadedModel.load` + `model_state_build`, "
        f"the catalogue already read): {load['load_seconds']:.2f} s, of which verifying "
        f"the artifact's checksums {load['verify_seconds']:.2f} s and the id indexes "
        f"{load['index_seconds']:.2f} s; reading the catalogue {load['catalog_seconds']:.2f} s.",
        "",
    ]
    big_rps = {c: best_rps(r).rps for c, r in results["wrk"][BIG].items()}
    ml_rps = {c: best_rps(r).rps for c, r in results["wrk"][ML].items()}
    big_uss = memory[BIG]["loaded"]["uss"] - idle
    lines.append(
        f"- USS beyond an idle worker {big_uss:.0f} MiB: "
        f"{'met' if big_uss <= USS_TARGET_MIB else 'MISSED'} (target <= {USS_TARGET_MIB:g})."
    )
    worst = max(swap_times) if swap_times else float("nan")
    lines.append(
        f"- Slowest swap {worst:.2f} s: "
        f"{'met' if worst <= SWAP_TARGET_SECONDS else 'MISSED'} (target <= "
        f"{SWAP_TARGET_SECONDS:g} s)."
    )
    for c in big_rps:
        ratio = big_rps[c] / ml_rps[c]
        lines.append(
            f"- `-c{c}`: {ratio:.2f}x the ML-100K req/s: "
            f"{'met' if ratio >= THROUGHPUT_TARGET else 'MISSED'} (target >= "
            f"{THROUGHPUT_TARGET:g}x)."
        )
    lines += ["", SECTION_END]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    if args.django:
        django_main(args.django)
        return
    databases = [args.database, f"{args.database}_ml", f"{args.database}_empty"]
    if args.drop:
        for database in databases:
            drop_database(args.server_url, database)
        return
    info = {**machine_info(), "postgres": postgres_version(args.server_url)}
    when = datetime.now(UTC)
    if not args.measure_only:
        prepare(args)
    if args.prepare_only:
        return
    results = measure(args)
    command = " ".join(["python bench/serving_scale.py", *map(shlex.quote, sys.argv[1:])])
    section = render(args, info, results, command, when)
    print(section)
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, section)
        print(f"updated {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
