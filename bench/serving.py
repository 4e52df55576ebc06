"""Serving benchmark: the recommendations endpoint under load, during hot swaps, and memory.

    .venv/bin/python bench/serving.py                 # both models, updates docs/BENCHMARKS.md
    .venv/bin/python bench/serving.py --only ml-100k --seconds 5 --no-write

For each model (MovieLens 100K imported with ``manage.py import_dataset``, skipped with a
message when ``../shared/data/ml-100k`` is absent; and a generated catalogue of 100,000
items from ``manage.py generate_demo_data``), on a fresh PostgreSQL database:

1. trains two versions with ``manage.py retrain`` (v1 promoted, v2 kept as a candidate);
2. starts gunicorn (``recsite/gunicorn.conf.py``, 2 workers, Redis as the cache) with
   ``bench/serving_settings.py``, which adds ``/bench/bare/<user>``: a plain Django view
   doing the same numpy scoring with the same loaded state, without DRF, the API key or
   any query (the framework's limit);
3. load: CLIENTS processes x THREADS threads, each a closed loop of GETs over keep-alive
   connections (re-opened every 20 requests so both workers get traffic), against the
   API and the bare view in alternation (ROUNDS rounds of SECONDS each); throughput,
   p50 and p99 latency as seen by the client;
4. the same load on the API during SWAPS promote / rollback swaps (one every
   SWAP_INTERVAL seconds, by a separate process calling the services): non-2xx
   responses, and per swap the time from its commit until every worker answered with
   the new version;
5. RSS, PSS and USS per worker (``/proc/<pid>/smaps_rollup``) with 1 and with 4 workers,
   after every worker has served requests (so the model's pages are mapped);
6. prints a table and writes the "Serving" section of docs/BENCHMARKS.md.

Never part of CI: it takes several minutes and loads the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

SECTION_START = "<!-- bench/serving.py: start -->"
SECTION_END = "<!-- bench/serving.py: end -->"
API_PATH = "/api/v1/recommendations/{}?limit=20"
BARE_PATH = "/bench/bare/{}"
VERSION_RE = re.compile(rb'"model_version":\s*(\d+|null)')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_serving", help="re-created")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--port", type=int, default=8797)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per gunicorn worker (the default)"
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--client-threads", type=int, default=4, help="threads per client")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured round")
    parser.add_argument("--rounds", type=int, default=2, help="API / bare alternations")
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--swap-interval", type=float, default=3.0)
    parser.add_argument("--dataset", default="../shared/data/ml-100k", help="relative to repo")
    parser.add_argument("--items", type=int, default=100_000, help="generated catalogue")
    parser.add_argument("--users", type=int, default=10_000, help="generated catalogue")
    parser.add_argument("--events", type=int, default=200_000, help="generated catalogue")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--components", type=int, default=32)
    parser.add_argument("--only", choices=["ml-100k", "generated"], help="one model only")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    return parser.parse_args()


# --- database, commands, server -------------------------------------------------------


def query(args: argparse.Namespace, sql: str) -> list[tuple]:
    with pg_connect(args.server_url, args.database) as connection, connection.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def server_env(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DATABASE_URL=f"{args.server_url.rstrip('/')}/{args.database}",
        REDIS_URL=args.redis_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        RECSITE_DATA_DIR=str(data_dir),
        PROMETHEUS_MULTIPROC_DIR=str(data_dir / "prometheus"),
        RECSITE_API_THROTTLE_RATE="1000000/s",
        LOG_LEVEL="WARNING",
    )
    return env


def manage(env: dict[str, str], *arguments: str, ok: tuple[int, ...] = (0,)) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode not in ok:
        sys.exit(
            f"manage.py {' '.join(arguments)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


class Server:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], workers: int, log: Path):
        self.port = args.port
        self.log = log
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.process = subprocess.Popen(
            [str(gunicorn), "-c", "recsite/gunicorn.conf.py", "recsite.wsgi"],
            cwd=ROOT,
            env={
                **env,
                "DJANGO_SETTINGS_MODULE": "bench.serving_settings",
                "GUNICORN_BIND": f"127.0.0.1:{args.port}",
                "GUNICORN_WORKERS": str(workers),
                "GUNICORN_THREADS": str(args.threads),
                "GUNICORN_LOG_LEVEL": "warning",
            },
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited; see {log}:\n{log.read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        sys.exit(f"gunicorn not ready within 120 s; see {log}")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# --- the load generator ---------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    port: int
    api_key: str
    path: str  # with {} for the user id
    users: list[str]
    seconds: float
    threads: int
    record: bool  # keep (time, status, worker, version, latency) of every response


def _thread_loop(job: Job, start_at: float, seed: int, out: dict) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Api-Key {job.api_key}"}
    latencies: list[float] = []
    records: list[tuple[float, int, str, int | None, float]] = []
    errors = 0
    connection = None
    time.sleep(max(0.0, start_at - time.time()))
    stop_at = time.perf_counter() + job.seconds
    sent = 0
    while time.perf_counter() < stop_at:
        if connection is None or sent % 20 == 0:
            if connection is not None:
                connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=30)
        path = job.path.format(rng.choice(job.users))
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = None
            body, status = b"", 599
        latency = time.perf_counter() - started
        latencies.append(latency)
        sent += 1
        if status >= 300:
            errors += 1
        if job.record:
            match = VERSION_RE.search(body)
            version = int(match.group(1)) if match and match.group(1) != b"null" else None
            worker = response.getheader("X-Recsite-Worker", "?") if status != 599 else "?"
            records.append((time.time(), status, worker, version, latency))
    if connection is not None:
        connection.close()
    out.update(latencies=latencies, records=records, errors=errors)


def _client_process(job: Job, start_at: float, seed: int) -> dict:
    outs = [{} for _ in range(job.threads)]
    threads = [
        threading.Thread(target=_thread_loop, args=(job, start_at, seed * 100 + n, outs[n]))
        for n in range(job.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "latencies": [x for out in outs for x in out["latencies"]],
        "records": [x for out in outs for x in out["records"]],
        "errors": sum(out["errors"] for out in outs),
    }


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    records: list = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def run_load(job: Job, clients: int) -> LoadResult:
    start_at = time.time() + 0.5
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        parts = pool.starmap(_client_process, [(job, start_at, n) for n in range(clients)])
    latencies = sorted(x for part in parts for x in part["latencies"])
    if not latencies:
        sys.exit("the load generator sent nothing")
    return LoadResult(
        requests=len(latencies),
        seconds=job.seconds,
        errors=sum(part["errors"] for part in parts),
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        records=sorted(x for part in parts for x in part["records"]),
    )


# --- the swapper (a separate process with Django) -------------------------------------


def swapper_main(count: int, interval: float) -> None:
    """``bench/serving.py _swap N INTERVAL``: alternate promote v2 / rollback to v1 through
    the services; print one JSON line per swap with its commit time."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    django.setup()
    from recommender.models import Recommender
    from recommender.services.registry import model_version_promote, model_version_rollback

    recommender = Recommender.objects.get(name="default")
    v2 = recommender.versions.get(number=2)
    for n in range(count):
        time.sleep(interval)
        if n % 2 == 0:
            model_version_promote(version=v2, reason="bench", actor_label="bench")
            target = 2
        else:
            model_version_rollback(recommender=recommender, reason="bench", actor_label="bench")
            target = 1
        print(json.dumps({"at": time.time(), "version": target}), flush=True)


def switch_times(records: list, swaps: list[dict]) -> list[float]:
    """Per swap: seconds from its commit until every worker answered with its version
    (``nan`` when some worker sent no answer before the next swap: not observed)."""
    workers = {worker for _, _, worker, _, _ in records if worker != "?"}
    times = []
    for index, swap in enumerate(swaps):
        until = swaps[index + 1]["at"] if index + 1 < len(swaps) else float("inf")
        first: dict[str, float] = {}
        for at, _, worker, version, _ in records:
            if swap["at"] <= at < until and version == swap["version"] and worker not in first:
                first[worker] = at
        if set(first) >= workers:
            times.append(max(first.values()) - swap["at"])
        else:
            times.append(float("nan"))
    return times


# --- memory -----------------------------------------------------------------------------


def smaps(pid: int) -> dict[str, float]:
    """MiB: rss, pss, uss (private clean + dirty) of one process."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name.strip()] = int(rest.split()[0])
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {
        "rss": values["Rss"] / 1024,
        "pss": values["Pss"] / 1024,
        "uss": uss / 1024,
    }


def memory(args, env, api_key, users, workers: int, log: Path) -> dict[str, float]:
    server = Server(args, env, workers, log)
    try:
        pids = server.worker_pids()
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while seen < {str(pid) for pid in pids} and time.monotonic() < deadline:
            job = Job(args.port, api_key, API_PATH, users, 1.0, 4, True)
            seen |= {worker for _, _, worker, _, _ in run_load(job, 2).records}
        samples = [smaps(pid) for pid in pids]
    finally:
        server.stop()
    return {key: statistics.mean(s[key] for s in samples) for key in ("rss", "pss", "uss")}


# --- one model ----------------------------------------------------------------------------


def prepare_model(args: argparse.Namespace, env: dict[str, str], which: str) -> dict | str:
    recreate_database(args.server_url, args.database)
    manage(env, "migrate", "--no-input", "-v", "0")
    if which == "ml-100k":
        dataset = (ROOT / args.dataset).resolve()
        if not dataset.is_dir():
            return f"skipped: {args.dataset} is absent"
        manage(env, "import_dataset", str(dataset), "--format", "movielens")
    else:
        manage(
            env,
            "generate_demo_data",
            f"--users={args.users}",
            f"--items={args.items}",
            f"--events={args.events}",
            "--seed=7",
        )
    overrides = [f"--epochs={args.epochs}", f"--components={args.components}"]
    started = time.perf_counter()
    manage(env, "retrain", *overrides)
    manage(env, "retrain", "--no-promote", "--seed=2", *overrides, ok=(0, 3))
    trained = time.perf_counter() - started
    versions = query(
        args,
        "SELECT v.number, v.status, v.artifact_size FROM recommender_modelversion v "
        "ORDER BY v.number",
    )
    if [number for number, _, _ in versions] != [1, 2]:
        sys.exit(f"expected versions 1 and 2, got {versions}")
    sql = "SELECT DISTINCT user_external_id FROM recommender_event LIMIT 2000"
    users = [row[0] for row in query(args, sql)]
    shape = query(
        args,
        "SELECT (SELECT count(*) FROM recommender_item), (SELECT count(*) FROM recommender_event),"
        " (SELECT count(DISTINCT user_external_id) FROM recommender_event)",
    )[0]
    api_key = manage(env, "create_api_key", "bench", "--scopes", "recommendations:read").strip()
    return {
        "items": shape[0],
        "events": shape[1],
        "users_total": shape[2],
        "artifact_mib": versions[0][2] / 2**20,
        "train_seconds": trained,
        "users": users,
        "api_key": api_key,
    }


def bench_model(args: argparse.Namespace, env: dict[str, str], tmp: Path, which: str) -> dict:
    print(f"[{which}] preparing the database and training two versions ...", flush=True)
    model = prepare_model(args, env, which)
    if isinstance(model, str):
        print(f"[{which}] {model}")
        return {"skipped": model}
    print(
        f"[{which}] {model['items']:,} items, {model['events']:,} events, "
        f"artifact {model['artifact_mib']:.1f} MiB, trained in {model['train_seconds']:.0f} s",
        flush=True,
    )
    key, users = model["api_key"], model["users"]
    server = Server(args, env, args.workers, tmp / f"gunicorn-{which}.log")
    try:
        api_job = Job(args.port, key, API_PATH, users, args.seconds, args.client_threads, False)
        bare_job = Job(args.port, key, BARE_PATH, users, args.seconds, args.client_threads, False)
        for job in (api_job, bare_job):  # warm-up
            run_load(Job(**{**job.__dict__, "seconds": 2.0}), args.clients)
        rounds: dict[str, list[LoadResult]] = {"api": [], "bare": []}
        for n in range(args.rounds):
            for name, job in (("api", api_job), ("bare", bare_job)):
                result = run_load(job, args.clients)
                rounds[name].append(result)
                print(
                    f"[{which}] round {n + 1} {name}: {result.rps:,.0f} req/s, p50 "
                    f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                    f"{result.errors} non-2xx",
                    flush=True,
                )
        swap_seconds = args.swaps * args.swap_interval + 2.0
        swapper = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__)),
                "_swap",
                str(args.swaps),
                str(args.swap_interval),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        swap_job = Job(args.port, key, API_PATH, users, swap_seconds, args.client_threads, True)
        during = run_load(swap_job, args.clients)
        out, err = swapper.communicate(timeout=60)
        if swapper.returncode != 0:
            sys.exit(f"the swapper failed:\n{err[-3000:]}")
        swaps = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        switched = switch_times(during.records, swaps)
        print(
            f"[{which}] during {len(swaps)} swaps: {during.rps:,.0f} req/s, "
            f"{during.errors} non-2xx, all workers switched after {spread(switched)}",
            flush=True,
        )
    finally:
        server.stop()
    rss = {
        n: memory(args, env, key, users, n, tmp / f"gunicorn-{which}-mem{n}.log") for n in (1, 4)
    }
    for n, values in rss.items():
        print(
            f"[{which}] {n} worker(s): RSS {values['rss']:.1f} MiB, PSS {values['pss']:.1f}, "
            f"USS {values['uss']:.1f} per worker",
            flush=True,
        )
    return {
        "model": {k: v for k, v in model.items() if k not in ("users", "api_key")},
        "api": best(rounds["api"]),
        "bare": best(rounds["bare"]),
        "during": during,
        "swaps": len(swaps),
        "switched": switched,
        "memory": rss,
    }


def spread(times: list[float], sep: str = ", max ") -> str:
    """``median<sep>max`` of the observed switch times, and how many were not observed."""
    observed = [t for t in times if t == t]
    if not observed:
        return f"not observed{sep}not observed"
    text = f"{statistics.median(observed):.2f} s{sep}{max(observed):.2f} s"
    missed = len(times) - len(observed)
    return text + (f" ({missed} swaps not observed on every worker)" if missed else "")


def best(results: list[LoadResult]) -> LoadResult:
    """The median round by throughput (with two rounds: the better one)."""
    ordered = sorted(results, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


# --- the report -------------------------------------------------------------------------


def render(args, info, results: dict[str, dict], command: str) -> str:
    lines = [
        SECTION_START,
        "## Serving",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`.",
        "",
        "| Machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
        f"gunicorn `recsite/gunicorn.conf.py`, {args.workers} workers x {args.threads} threads,"
        f" DEBUG off, PostgreSQL + Redis. Load: {args.clients} client processes x"
        f" {args.client_threads} threads (closed loop, keep-alive, Python `http.client`) on"
        f" the same machine; `limit=20`, users drawn from those with events; best of"
        f" {args.rounds} alternating {args.seconds:g}-s rounds. The bare view is a plain"
        " Django view doing the same numpy scoring on the same loaded state, without DRF,"
        " the API key or any query.",
        "",
        "| Model | Items | Events | Artifact | Endpoint | req/s | p50 ms | p99 ms |"
        " vs bare: throughput | p99 |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for which, result in results.items():
        if "skipped" in result:
            lines.append(f"| {which} | {result['skipped']} | | | | | | | | |")
            continue
        model, api, bare = result["model"], result["api"], result["bare"]
        head = (
            f"| {which} | {model['items']:,} | {model['events']:,}"
            f" | {model['artifact_mib']:.1f} MiB"
        )
        ratio, p99_ratio = api.rps / bare.rps, api.p99_ms / bare.p99_ms
        lines.append(
            f"{head} | `GET /api/v1/recommendations/{{user}}` | {api.rps:,.0f} |"
            f" {api.p50_ms:.1f} | {api.p99_ms:.1f} | {ratio:.2f}x | {p99_ratio:.2f}x |"
        )
        lines.append(
            f"| | | | | bare Django view | {bare.rps:,.0f} | {bare.p50_ms:.1f} |"
            f" {bare.p99_ms:.1f} | | |"
        )
        verdicts.append(
            f"{which}: throughput {'met' if ratio >= 0.5 else 'MISSED'},"
            f" p99 {'met' if p99_ratio <= 2.0 else 'MISSED'}"
        )
    lines += [
        "",
        "Targets: the API at >= 0.5x the bare view's throughput and p99 <= 2x its p99 ("
        + "; ".join(verdicts)
        + ").",
        "",
        f"Hot swaps under the same load on the API ({args.swap_interval:g} s apart, promote v2"
        " / rollback to v1 through the services from another process):",
        "",
        "| Model | Swaps | Requests | Non-2xx | All workers switched: median | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for which, result in results.items():
        if "skipped" in result:
            continue
        during, switched = result["during"], result["switched"]
        lines.append(
            f"| {which} | {result['swaps']} | {during.requests:,} | {during.errors} |"
            f" {spread(switched, ' | ')} |"
        )
    lines += [
        "",
        "Memory per gunicorn worker after serving (MiB, from `/proc/<pid>/smaps_rollup`;"
        " PSS splits shared pages between the processes mapping them, USS is private):",
        "",
        "| Model | Artifact | Workers | RSS | PSS | USS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for which, result in results.items():
        if "skipped" in result:
            continue
        for n, values in result["memory"].items():
            lines.append(
                f"| {which} | {result['model']['artifact_mib']:.1f} MiB | {n} |"
                f" {values['rss']:.1f} | {values['pss']:.1f} | {values['uss']:.1f} |"
            )
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    command = " ".join(["python bench/serving.py", *map(shlex.quote, sys.argv[1:])])
    info = machine_info()
    info["PostgreSQL"] = postgres_version(args.server_url)
    info["Redis"] = redis.Redis.from_url(args.redis_url).info("server")["redis_version"]
    print("Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="recsite-bench-serving-") as tmp:
        env = server_env(args, Path(tmp))
        try:
            for which in ("ml-100k", "generated"):
                if args.only in (None, which):
                    # Run ids restart with each database: one artifact directory per model.
                    artifacts = str(Path(tmp) / which / "artifacts")
                    model_env = {**env, "RECSITE_ARTIFACT_DIR": artifacts}
                    results[which] = bench_model(args, model_env, Path(tmp), which)
        finally:
            drop_database(args.server_url, args.database)
    section = render(args, info, results, command)
    print()
    print(section.split("\n", 2)[2].rsplit(SECTION_END, 1)[0].strip())
    if not args.no_write:
        write_section(SECTION_START, SECTION_END, section)
        print(f"\nUpdated {BENCHMARKS_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_swap":
        swapper_main(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()
