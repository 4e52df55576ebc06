"""CPU per request of recsite's recommendations endpoint, A/B between code versions.

    .venv/bin/python bench/serving_cpu.py --prepare            # once: database + two versions
    .venv/bin/python bench/serving_cpu.py --pairs 4             # this checkout only
    .venv/bin/python bench/serving_cpu.py --pairs 4 --base HEAD~3   # vs another commit
    .venv/bin/python bench/serving_cpu.py --vs-env RECSITE_SERVED_RECORDING=false  # vs a setting

On a shared, noisy machine requests per second move by tens of percent from one run to
the next; what a code change moves reliably is the CPU a request costs. For each run this
starts recsite under gunicorn (``recsite/gunicorn.conf.py``, production settings as in
``bench/serving.py``: DEBUG off, PostgreSQL, Redis, API key, throttle, metrics) on the
prepared MovieLens 100K database, drives ``wrk -t2 -cCONNECTIONS`` at random users for
SECONDS, and reads from ``/proc`` the ``utime + stime`` of the gunicorn workers and of the
PostgreSQL backends of the database, and PostgreSQL's ``xact_commit + xact_rollback``
(statements, since every read runs in autocommit), each divided by the requests.

With ``--in-process`` each run is instead a fresh Python process that calls recsite's WSGI
application (the one gunicorn serves) directly, one request at a time, REQUESTS times
after a warm-up, and reports ``time.process_time`` per request: no server, no threads,
no GIL hand-offs, so far less noise from a busy machine, but no concurrency either.

With ``--base REV`` the commit REV is exported (``git archive``) into a scratch directory
and the runs alternate base / this checkout, PAIRS times, on the same database. With
``--vs-env KEY=VALUE`` the runs alternate this checkout as it is / with that setting in
its environment (e.g. recording served lists off). Prints a table; writes nothing
(docs/BENCHMARKS.md quotes its figures by hand)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import servers
import wrk_load
from common import ROOT, pg_connect
from serving import API_PATH, prepare_model, server_env

TICKS = os.sysconf("SC_CLK_TCK")
QUERY = "limit=20"  # of every request


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_cpu")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--port", type=int, default=8796)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="1: the sync worker (default)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--pairs", type=int, default=3, help="runs per code version")
    parser.add_argument("--base", help="a git revision to compare this checkout against")
    parser.add_argument(
        "--vs-env", metavar="KEY=VALUE", help="compare this checkout with a setting changed"
    )
    parser.add_argument("--prepare", action="store_true", help="(re)create the database")
    parser.add_argument("--in-process", action="store_true", help="WSGI calls, no server")
    parser.add_argument("--requests", type=int, default=3000, help="per in-process run")
    parser.add_argument("--dataset", default="../shared/data/ml-100k", help="relative to repo")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--components", type=int, default=32)
    return parser.parse_args()


def cpu_seconds(pid: int) -> float:
    """``utime + stime`` of a process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def database_counters(args: argparse.Namespace) -> tuple[int, dict[int, float]]:
    """Statements so far in the database and the CPU seconds of each of its backends."""
    with pg_connect(args.server_url, args.database) as connection, connection.cursor() as cur:
        cur.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            [args.database],
        )
        statements = int(cur.fetchone()[0])
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [args.database],
        )
        backends = {pid: cpu_seconds(pid) for (pid,) in cur.fetchall()}
    return statements, backends


def one_run(args, env, wrk: str, script: Path, source: Path, log: Path) -> dict[str, float]:
    server = servers.recsite(
        env, port=args.port, workers=args.workers, threads=args.threads, log=log, cwd=source
    )
    try:
        wrk_load.run(
            wrk, server.url, script, threads=2, connections=args.connections, seconds=2
        )  # warm-up: connections, the first throttle lease, the model's pages
        time.sleep(1.0)  # let PostgreSQL's statistics catch up with the warm-up
        workers = server.worker_pids()
        before_workers = {pid: cpu_seconds(pid) for pid in workers}
        before_statements, before_backends = database_counters(args)
        load = os.getloadavg()[0]
        result = wrk_load.run(
            wrk,
            server.url,
            script,
            threads=2,
            connections=args.connections,
            seconds=args.seconds,
        )
        per_worker = sorted(cpu_seconds(pid) - before_workers[pid] for pid in workers)
        worker_cpu = sum(per_worker)
        _, after_backends = database_counters(args)
        backend_cpu = sum(
            cpu - before_backends.get(pid, 0.0) for pid, cpu in after_backends.items()
        )
        time.sleep(1.0)  # statistics are flushed by the backends at most every second
        after_statements, _ = database_counters(args)
    finally:
        server.stop()
    if result.non_2xx or result.socket_errors:
        sys.exit(f"{result.non_2xx} non-2xx, {result.socket_errors} socket errors; see {log}")
    requests = result.requests
    return {
        "rps": result.rps,
        "p99": result.p99_ms,
        "worker_ms": 1000 * worker_cpu / requests,
        "pg_ms": 1000 * backend_cpu / requests,
        # minus the two statistics reads of this script
        "statements": (after_statements - before_statements - 2) / requests,
        "load": load,
        # 1.0 when the workers share the load evenly, 0.0 when one does all of it
        "balance": per_worker[0] / per_worker[-1] if per_worker[-1] else 0.0,
    }


def in_process_main(requests: int, key: str, users_file: str, query: str = QUERY) -> None:
    """``serving_cpu.py _inproc REQUESTS KEY USERS_FILE [QUERY]`` (run with the checkout as
    its working directory): CPU seconds per request of WSGI calls, printed as JSON."""
    import io
    import json
    import random

    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings")
    from recsite.wsgi import application

    users = Path(users_file).read_text().split("\n")
    rng = random.Random(7)
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def call(user: str) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": f"/api/v1/recommendations/{user}",
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Api-Key {key}",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        }
        result = application(environ, start_response)
        b"".join(result)
        result.close()

    for _ in range(300):
        call(rng.choice(users))
    statuses.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        call(rng.choice(users))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    bad = [s for s in statuses if not s.startswith("200")]
    if bad:
        sys.exit(f"{len(bad)} answers were not 200: {bad[:3]}")
    print(json.dumps({"cpu_ms": 1000 * cpu / requests, "wall_ms": 1000 * wall / requests}))


def in_process_run(
    requests: int, env, source: Path, key: str, users_file: Path, query: str = QUERY
) -> dict[str, float]:
    """One in-process run in a fresh Python process (``in_process_main``)."""
    import json

    load = os.getloadavg()[0]
    # One BLAS thread, as recsite/gunicorn.conf.py gives each worker.
    blas = dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1")
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__)),
            "_inproc",
            str(requests),
            key,
            str(users_file),
            query,
        ],
        cwd=source,
        env={**blas, **env},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"the in-process run failed:\n{result.stderr[-3000:]}")
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "load": load}


def export(revision: str, into: Path) -> Path:
    """The tree of ``revision`` written into ``into`` (no .git)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    args = parse_args()
    wrk = wrk_load.ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="recsite-cpu-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = ROOT / "var" / "bench" / f"cpu-{args.database}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = server_env(args, data_dir)
        # manage.py counts ingest there too (PROMETHEUS_MULTIPROC_DIR is set)
        (data_dir / "prometheus").mkdir(exist_ok=True)
        users_file = data_dir / "users.txt"
        key_file = data_dir / "api_key.txt"
        if args.prepare or not key_file.exists():
            print("preparing the database and training two versions ...", flush=True)
            model = prepare_model(args, env, "ml-100k")
            if isinstance(model, str):
                sys.exit(model)
            users_file.write_text("\n".join(model["users"]))
            key_file.write_text(model["api_key"])
        users = users_file.read_text().split("\n")
        headers = {"Authorization": f"Api-Key {key_file.read_text().strip()}"}
        paths = [API_PATH.format(quote(user, safe="")) for user in users]
        script = wrk_load.lua_script(tmp / "recsite.lua", paths, headers)
        sources = {"this checkout": ROOT}
        envs = {"this checkout": env}
        if args.base:
            base = export(args.base, tmp / "base")
            sources = {f"base {args.base}": base, "this checkout": ROOT}
            envs[f"base {args.base}"] = env
        if args.vs_env:
            key, _, value = args.vs_env.partition("=")
            sources[args.vs_env] = ROOT
            envs[args.vs_env] = {**env, key: value}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in sources}
        if args.in_process:
            in_process(args, envs, sources, key_file.read_text().strip(), users_file)
            return
        for n in range(args.pairs):
            for name, source in sources.items():
                run = one_run(args, envs[name], wrk, script, source, tmp / f"gunicorn-{n}.log")
                results[name].append(run)
                print(
                    f"{name}: {run['rps']:,.0f} req/s, p99 {run['p99']:.1f} ms, worker CPU "
                    f"{run['worker_ms']:.3f} ms/request, PostgreSQL {run['pg_ms']:.3f} ms, "
                    f"{run['statements']:.3f} statements/request, load {run['load']:.1f}, "
                    f"worker balance {run['balance']:.2f}",
                    flush=True,
                )
    print(
        "\n| code | worker CPU ms/request | PostgreSQL CPU ms/request | statements/request "
        "| req/s | p99 ms |\n|---|---:|---:|---:|---:|---:|"
    )
    for name, runs in results.items():

        def span(key: str, digits: int = 2, runs: list = runs) -> str:
            values = [r[key] for r in runs]
            return f"{min(values):.{digits}f}-{max(values):.{digits}f}"

        median = statistics.median(r["worker_ms"] for r in runs)
        print(
            f"| {name} | {span('worker_ms')} (median {median:.2f}) | {span('pg_ms')} "
            f"| {span('statements', 3)} | {span('rps', 0)} | {span('p99', 1)} |"
        )


def in_process(
    args, envs: dict[str, dict[str, str]], sources: dict[str, Path], key: str, users_file: Path
) -> None:
    results: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(args.pairs):
        for name, source in sources.items():
            run = in_process_run(args.requests, envs[name], source, key, users_file)
            results[name].append(run["cpu_ms"])
            print(
                f"{name}: CPU {run['cpu_ms']:.3f} ms/request, wall {run['wall_ms']:.3f} ms, "
                f"load {run['load']:.1f}",
                flush=True,
            )
    print("\n| code | CPU ms/request, in process |\n|---|---:|")
    for name, values in results.items():
        print(
            f"| {name} | {min(values):.3f}-{max(values):.3f} "
            f"(median {statistics.median(values):.3f}) |"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["_inproc"]:
        in_process_main(int(sys.argv[2]), sys.argv[3], sys.argv[4], *sys.argv[5:6])
    else:
        main()
