"""Serving benchmark: recsite's recommendations endpoint side by side with the seeds' design
and a bare DRF view under wrk, during hot swaps, and memory.

    .venv/bin/python bench/serving.py                 # both models, updates docs/BENCHMARKS.md
    .venv/bin/python bench/serving.py --only ml-100k --seconds 5 --rounds 1 --no-write

For each model (MovieLens 100K imported with ``manage.py import_dataset``, skipped with a
message when ``../shared/data/ml-100k`` is absent; and a generated catalogue of 100,000
items from ``manage.py generate_demo_data``), on a fresh PostgreSQL database:

1. trains two versions with ``manage.py retrain`` (v1 promoted, v2 kept as a candidate);
2. starts, side by side: (a) recsite, gunicorn with ``recsite/gunicorn.conf.py`` and its
   production settings (DEBUG off, PostgreSQL, Redis as cache and throttle store, the
   API key, the throttle at THROTTLE_RATE, which never refuses here, the seen filter,
   Prometheus metrics); (b) the seeds' design, ``../shared/bench/seed_peer.py`` (FastAPI
   + a pickled LightFM model, uvicorn ``--workers 2``; MovieLens 100K only: its model is
   trained from the dataset's files); (c) the framework's limit,
   ``../shared/bench/drf_limit.py`` (a bare DRF view doing the same numpy scoring over
   random factors of the model's shape, gunicorn ``-w 2``). The peers run from
   ``../shared/bench``; the peer's FastAPI and uvicorn are pip-installed at pinned
   versions into ``var/bench/peer-site`` (``servers.PEER_PINS``);
3. wrk (installed with apt-get when missing and possible) at ``-t2 -c8`` and ``-t2 -c32``:
   each request a random user (a generated Lua script), ``limit=20``; ROUNDS rounds, each
   measuring every server at every concurrency for SECONDS (the order of the servers
   rotates per round); per server and concurrency the best round's req/s with its p50
   and p99 (wrk ``--latency``), the non-2xx responses over all rounds, and the ratios
   recsite/peer and recsite/bare;
4. the same endpoint during SWAPS promote / rollback swaps (one every SWAP_INTERVAL
   seconds, by a separate process calling the services), under this file's own Python
   load generator (it reads each response's version and worker): non-2xx responses,
   and per swap the time from its commit until every worker answered with the new
   version;
5. RSS, PSS and USS per recsite worker (``/proc/<pid>/smaps_rollup``) with 1 and with 4
   workers, after every worker has served requests (so the model's pages are mapped);
6. prints a table and writes the "Serving" section of docs/BENCHMARKS.md.

Never part of CI: it takes about 15 minutes and loads the machine.
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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis
import servers
import wrk_load
from common import (
    ROOT,
    drop_database,
    machine_info,
    measured_header,
    pg_connect,
    postgres_version,
    publish_section,
    recreate_database,
)

SECTION_START = "<!-- bench/serving.py: start -->"
SECTION_END = "<!-- bench/serving.py: end -->"
API_PATH = "/api/v1/recommendations/{}?limit=20"
PEER_PATH = "/recommendations/{}?limit=20&offset=0"
BARE_PATH = "/drf/{}"
# Above anything this benchmark reaches, so it never refuses; leases of 100 requests
# (rate / 100, at most 100), as for any rate from 10,000/s.
THROTTLE_RATE = "20000/s"
SERVERS = ("recsite", "peer", "bare")
VERSION_RE = re.compile(rb'"model_version":\s*(\d+|null)')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_serving", help="re-created")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--port", type=int, default=8797, help="recsite")
    parser.add_argument("--peer-port", type=int, default=8798)
    parser.add_argument("--bare-port", type=int, default=8799)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per gunicorn worker (1, the default: sync)"
    )
    parser.add_argument("--connections", default="8,32", help="wrk -c, comma-separated")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="all servers, all -c, per round")
    parser.add_argument(
        "--clients", type=int, default=2, help="swaps and memory: load client processes"
    )
    parser.add_argument("--client-threads", type=int, default=4, help="threads per client")
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
    return production_env(args.server_url, args.database, args.redis_url, data_dir)


def production_env(
    server_url: str, database: str, redis_url: str, data_dir: Path
) -> dict[str, str]:
    """recsite's environment as production runs it (DEBUG off, PostgreSQL, Redis, the
    throttle at THROTTLE_RATE) on ``database``, writing into ``data_dir``."""
    return servers.clean_env(
        DATABASE_URL=f"{server_url.rstrip('/')}/{database}",
        REDIS_URL=redis_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        RECSITE_DATA_DIR=str(data_dir),
        PROMETHEUS_MULTIPROC_DIR=str(data_dir / "prometheus"),
        RECSITE_API_THROTTLE_RATE=THROTTLE_RATE,
        LOG_LEVEL="WARNING",
    )


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
    server = servers.recsite(env, port=args.port, workers=workers, threads=args.threads, log=log)
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
    overrides = [
        "--algorithm=lightfm",
        f"--epochs={args.epochs}",
        f"--no-components={args.components}",
    ]
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


@dataclass(frozen=True)
class Target:
    name: str  # one of SERVERS
    url: str
    script: Path


def side_by_side(
    args: argparse.Namespace, wrk: str, targets: list[Target], which: str
) -> dict[tuple[str, int], list[wrk_load.WrkResult]]:
    """wrk against every target at every concurrency, ROUNDS times, the order of the
    targets rotating per round; every run kept."""
    connections = [int(c) for c in args.connections.split(",")]
    for target in targets:  # warm-up: caches, connection pools, the first lease
        wrk_load.run(
            wrk,
            target.url,
            target.script,
            threads=args.wrk_threads,
            connections=max(connections),
            seconds=2,
        )
    runs: dict[tuple[str, int], list[wrk_load.WrkResult]] = {}
    for n in range(args.rounds):
        order = targets[n % len(targets) :] + targets[: n % len(targets)]
        for count in connections:
            for target in order:
                result = wrk_load.run(
                    wrk,
                    target.url,
                    target.script,
                    threads=args.wrk_threads,
                    connections=count,
                    seconds=args.seconds,
                )
                runs.setdefault((target.name, count), []).append(result)
                print(
                    f"[{which}] round {n + 1} -c{count} {target.name}: {result.rps:,.0f} req/s,"
                    f" p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms,"
                    f" {result.non_2xx} non-2xx, {result.socket_errors} socket errors,"
                    f" load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    return runs


def start_targets(
    args: argparse.Namespace, env: dict[str, str], tmp: Path, which: str, model: dict
) -> tuple[list[servers.Service], list[Target]]:
    """recsite, the seed peer (MovieLens 100K only) and the bare DRF view, each with its
    wrk script; the caller stops the services (also when this fails half-way)."""
    scripts = tmp / "wrk"
    scripts.mkdir(exist_ok=True)
    users = model["users"]
    started: list[servers.Service] = []
    targets: list[Target] = []
    try:
        recsite = servers.recsite(
            env,
            port=args.port,
            workers=args.workers,
            threads=args.threads,
            log=tmp / f"gunicorn-{which}.log",
        )
        started.append(recsite)
        paths = [API_PATH.format(quote(user, safe="")) for user in users]
        headers = {"Authorization": f"Api-Key {model['api_key']}"}
        script = wrk_load.lua_script(scripts / f"{which}-recsite.lua", paths, headers)
        targets.append(Target("recsite", recsite.url, script))
        if "seed_model" in model:
            peer = servers.seed_peer(
                port=args.peer_port,
                model=model["seed_model"],
                site=model["peer_site"],
                log=tmp / f"peer-{which}.log",
            )
            started.append(peer)
            paths = [PEER_PATH.format(int(user)) for user in users]
            script = wrk_load.lua_script(scripts / f"{which}-peer.lua", paths, {})
            targets.append(Target("peer", peer.url, script))
        bare = servers.bare_drf(
            port=args.bare_port,
            items=model["items"],
            factors=args.components,
            log=tmp / f"bare-{which}.log",
        )
        started.append(bare)
        paths = [BARE_PATH.format(n) for n in range(len(users))]
        script = wrk_load.lua_script(scripts / f"{which}-bare.lua", paths, {})
        targets.append(Target("bare", bare.url, script))
    except BaseException:
        for service in started:
            service.stop()
        raise
    return started, targets


def swaps_under_load(
    args: argparse.Namespace, env: dict[str, str], key: str, users: list[str], which: str
) -> tuple[LoadResult, list[dict], list[float]]:
    swap_seconds = args.swaps * args.swap_interval + 2.0
    swapper = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "_swap", str(args.swaps), str(args.swap_interval)],
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
    return during, swaps, switched


def api_post(url: str, path: str, key: str, body: dict | None = None) -> dict:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        payload = json.dumps(body or {})
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
        connection.request("POST", path, body=payload, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read() or b"{}")
        if response.status >= 300:
            sys.exit(f"POST {path} answered {response.status}: {answer}")
        return answer
    finally:
        connection.close()


def with_experiment(
    args: argparse.Namespace, env: dict[str, str], wrk: str, target: Target, which: str
) -> dict[str, list[wrk_load.WrkResult]]:
    """recsite at the highest concurrency with and without a running 2-arm experiment (v1
    control, v2 treatment, half the users each: every worker serves both versions),
    alternating, ROUNDS times each."""
    key = manage(env, "create_api_key", "bench-experiments", "--scopes", "training:write")
    key = key.strip()
    count = max(int(c) for c in args.connections.split(","))
    runs: dict[str, list[wrk_load.WrkResult]] = {"off": [], "on": []}
    for n in range(args.rounds):
        for state in ("off", "on") if n % 2 == 0 else ("on", "off"):
            experiment = None
            if state == "on":
                experiment = api_post(
                    target.url,
                    "/api/v1/experiments",
                    key,
                    {
                        "recommender": "default",
                        "name": f"bench {n}",
                        "treatments": [{"version": 2, "share": 0.5}],
                    },
                )
                time.sleep(3)  # every worker loads v2 (signalled through Redis)
            result = wrk_load.run(
                wrk,
                target.url,
                target.script,
                threads=args.wrk_threads,
                connections=count,
                seconds=args.seconds,
            )
            runs[state].append(result)
            print(
                f"[{which}] experiment {state} -c{count}: {result.rps:,.0f} req/s,"
                f" p99 {result.p99_ms:.1f} ms, {result.non_2xx} non-2xx",
                flush=True,
            )
            if experiment is not None:
                api_post(target.url, f"/api/v1/experiments/{experiment['id']}/stop", key)
                time.sleep(1)
    return runs


def bench_model(
    args: argparse.Namespace, env: dict[str, str], tmp: Path, which: str, wrk: str
) -> dict:
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
    if which == "ml-100k":
        dataset = (ROOT / args.dataset).resolve()
        model["peer_site"] = servers.peer_site()
        model["seed_model"] = servers.seed_model(dataset)
    else:
        print(f"[{which}] the seed peer serves MovieLens 100K only: recsite vs the bare view")
    key, users = model["api_key"], model["users"]
    started, targets = start_targets(args, env, tmp, which, model)
    try:
        load_before = os.getloadavg()
        runs = side_by_side(args, wrk, targets, which)
        for service in started[1:]:  # the peers; recsite stays for the rest
            service.stop()
        experiment = with_experiment(args, env, wrk, targets[0], which)
        during, swaps, switched = swaps_under_load(args, env, key, users, which)
    finally:
        for service in started:
            service.stop()
    rss = {
        n: memory(args, env, key, users, n, tmp / f"gunicorn-{which}-mem{n}.log") for n in (1, 4)
    }
    for n, values in rss.items():
        print(
            f"[{which}] {n} worker(s): RSS {values['rss']:.1f} MiB, PSS {values['pss']:.1f}, "
            f"USS {values['uss']:.1f} per worker",
            flush=True,
        )
    hidden = ("users", "api_key", "seed_model", "peer_site")
    return {
        "model": {k: v for k, v in model.items() if k not in hidden},
        "runs": runs,
        "experiment": experiment,
        "load_before": load_before,
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


def best(results: list[wrk_load.WrkResult]) -> wrk_load.WrkResult:
    """The round with the most requests per second."""
    return max(results, key=lambda r: r.rps)


# --- the report -------------------------------------------------------------------------

LABELS = {
    "recsite": "recsite `GET /api/v1/recommendations/{user}`",
    "peer": "seed peer (FastAPI + pickled LightFM, uvicorn 2 workers)",
    "bare": "bare DRF view (`drf_limit.py`, gunicorn `-w 2`)",
}
PEER_THROUGHPUT_MIN, BARE_THROUGHPUT_MIN = 1.0, 0.6  # issue 14; and p99 <= the peer's


def ratio_rows(which: str, runs: dict) -> tuple[list[str], list[str]]:
    """Table rows of recsite against the peers per concurrency, and the verdicts."""
    rows, verdicts = [], []
    for count in sorted({c for _, c in runs}):
        mine = best(runs[("recsite", count)])
        cells, checks = [], []
        for peer, minimum in (("peer", PEER_THROUGHPUT_MIN), ("bare", BARE_THROUGHPUT_MIN)):
            if (peer, count) not in runs:
                cells += ["n/a", "n/a"]
                continue
            theirs = best(runs[(peer, count)])
            rps, p99 = mine.rps / theirs.rps, mine.p99_ms / theirs.p99_ms
            cells += [f"{rps:.2f}x", f"{p99:.2f}x"]
            checks.append(f"{rps:.2f}x {peer} {'met' if rps >= minimum else 'MISSED'}")
            if peer == "peer":
                checks.append(f"p99 {p99:.2f}x {'met' if p99 <= 1.0 else 'MISSED'}")
        rows.append(f"| {which} | `-c{count}` | " + " | ".join(cells) + " |")
        verdicts.append(f"{which} `-c{count}`: " + ", ".join(checks))
    return rows, verdicts


def worker_kind(threads: int) -> str:
    """gunicorn's worker class for ``threads`` per worker, as the section names it."""
    return "sync workers" if threads == 1 else f"gthread workers x {threads} threads"


def render(args, info, results: dict[str, dict], command: str) -> str:
    lines = [
        SECTION_START,
        "## Serving",
        "",
        *measured_header(command, info),
        "",
        "The machine is shared (other jobs ran during the measurement) and its 2 cores"
        " carry the servers, PostgreSQL, Redis and wrk: absolute figures move from run to"
        " run, so compare the servers by the ratios of the same run.",
        "",
        f"Three servers side by side, each with 2 processes: recsite under"
        f" `recsite/gunicorn.conf.py` ({args.workers} {worker_kind(args.threads)},"
        f" DEBUG off, PostgreSQL, Redis, the API key, the throttle at {THROTTLE_RATE} (it"
        " never refuses here; Redis is asked once per 100 requests per process), the seen"
        " filter, Prometheus metrics); the seeds' design (`../shared/bench/seed_peer.py`:"
        " FastAPI + a pickled LightFM model trained on the same MovieLens 100K files,"
        " `model.predict` over every item, seen items from its training matrix, uvicorn"
        f" `--workers 2`, {' '.join(servers.PEER_PINS)}); the framework's limit"
        " (`../shared/bench/drf_limit.py`: a bare DRF view doing the same numpy scoring"
        " over random factors of the model's shape, no database, no auth, gunicorn `-w 2`"
        " sync workers). Load: wrk"
        f" `-t{args.wrk_threads} -c<N> -d{args.seconds:g}s --latency` on the same machine,"
        " each request a random user (of up to 2,000 with events; a Lua script),"
        f" `limit=20`. Rounds: {args.rounds}; in each every server is measured at every"
        " concurrency, the order of the servers rotating per round. Shown: the best"
        " round's req/s with its p50 and p99, the range of req/s over the rounds, and the"
        " non-2xx responses and socket errors over all rounds. The seed peer serves"
        " MovieLens 100K only: the generated 100k-item catalogue is measured against the"
        " bare view alone.",
        "",
        "| Model | Items | wrk | Server | req/s | rounds | p50 ms | p99 ms | non-2xx |"
        " socket errors |",
        "|---|---:|---|---|---:|---|---:|---:|---:|---:|",
    ]
    ratio_lines, verdicts = [], []
    for which, result in results.items():
        if "skipped" in result:
            lines.append(f"| {which} | {result['skipped']} | | | | | | | | |")
            continue
        runs, items = result["runs"], f"{result['model']['items']:,}"
        for count in sorted({c for _, c in runs}):
            for name in SERVERS:
                if (name, count) not in runs:
                    continue
                top, all_runs = best(runs[(name, count)]), runs[(name, count)]
                low, high = min(r.rps for r in all_runs), max(r.rps for r in all_runs)
                lines.append(
                    f"| {which} | {items} | `-c{count}` | {LABELS[name]} | {top.rps:,.0f} |"
                    f" {low:,.0f}-{high:,.0f} | {top.p50_ms:.1f} | {top.p99_ms:.1f} |"
                    f" {sum(r.non_2xx for r in all_runs)} |"
                    f" {sum(r.socket_errors for r in all_runs)} |"
                )
        rows, checks = ratio_rows(which, runs)
        ratio_lines += rows
        verdicts += checks
    loads = [
        f"{which} {result['load_before'][0]:.1f}"
        for which, result in results.items()
        if "load_before" in result
    ]
    lines += [
        "",
        "Load average (1 min) when the wrk rounds started: " + ", ".join(loads) + ".",
        "",
        "recsite against the others in the same run (best rounds):",
        "",
        "| Model | wrk | req/s vs peer | p99 vs peer | req/s vs bare | p99 vs bare |",
        "|---|---|---:|---:|---:|---:|",
        *ratio_lines,
        "",
        f"Targets (issue 14): recsite's throughput >= {PEER_THROUGHPUT_MIN:.1f}x the seed peer"
        f" and >= {BARE_THROUGHPUT_MIN:.1f}x the bare view, p99 <= the peer's p99.",
        "",
        *[f"- {verdict}" for verdict in verdicts],
        "",
        f"Hot swaps under load on recsite ({args.swap_interval:g} s apart, promote v2"
        " / rollback to v1 through the services from another process; load from this"
        f" script's Python generator, {args.clients} processes x {args.client_threads}"
        " threads, which reads each response's version and worker):",
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
        "recsite with a running 2-arm experiment (v1 control, v2 treatment, half the users"
        " each, so every worker scores with both versions) against none, alternating, at the"
        " highest concurrency (best round):",
        "",
        "| Model | no experiment req/s | p99 ms | 2-arm experiment req/s | p99 ms | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for which, result in results.items():
        if "skipped" in result:
            continue
        off, on = best(result["experiment"]["off"]), best(result["experiment"]["on"])
        lines.append(
            f"| {which} | {off.rps:,.0f} | {off.p99_ms:.1f} | {on.rps:,.0f} | {on.p99_ms:.1f} |"
            f" {on.rps / off.rps:.2f}x |"
        )
    lines += [
        "",
        "Memory per recsite gunicorn worker after serving (MiB, from"
        " `/proc/<pid>/smaps_rollup`; PSS splits shared pages between the processes mapping"
        " them, USS is private):",
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
    wrk = wrk_load.ensure_wrk()
    info = machine_info()
    info["PostgreSQL"] = postgres_version(args.server_url)
    info["Redis"] = redis.Redis.from_url(args.redis_url).info("server")["redis_version"]
    info["wrk"] = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split(" [")[0]
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
                    results[which] = bench_model(args, model_env, Path(tmp), which, wrk)
        finally:
            drop_database(args.server_url, args.database)
    section = render(args, info, results, command)
    publish_section(SECTION_START, SECTION_END, section, write=not args.no_write)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_swap":
        swapper_main(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()
