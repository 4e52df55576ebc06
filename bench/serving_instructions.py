"""Instructions per recommendation request, counted by valgrind's callgrind, A/B between
code versions.

    .venv/bin/python bench/serving_cpu.py --prepare                # once: the database
    .venv/bin/python bench/serving_instructions.py                 # this checkout
    .venv/bin/python bench/serving_instructions.py --base HEAD~2   # vs another commit

CPU seconds per request move by tens of percent on this shared 2-core machine (other
jobs, turbo, caches); an instruction count does not: the same code, inputs and seed give
the same count within a fraction of a percent, whatever else runs. Each measurement is
two fresh processes under ``valgrind --tool=callgrind`` running ``serving_cpu.py``'s
in-process loop (recsite's WSGI application called directly, after 300 warm-up calls):
one with REQUESTS requests, one with a single request; the difference divided by
REQUESTS - 1 is what a request costs in recsite's own process, the served-list recording
included (its flusher writes everything at exit). The watcher thread is off (the model
loads on the first request) and the hash seed fixed, so nothing depends on the wall
clock. Not counted: gunicorn, the kernel, Redis and PostgreSQL. Needs valgrind (apt-get
install valgrind). Prints a table; writes nothing."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT
from serving import server_env
from serving_cpu import export

DETERMINISM = {
    "PYTHONHASHSEED": "0",
    "RECSITE_SERVING_WATCH": "false",  # load on the first request, no polling thread
    "RECSITE_SERVED_FLUSH_SECONDS": "86400",  # the flusher writes once, at exit
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="recsite_bench_cpu", help="serving_cpu.py's")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--base", help="a git revision to compare this checkout against")
    return parser.parse_args()


def instructions(env: dict[str, str], source: Path, requests: int, key: str, users: Path) -> int:
    """Instructions callgrind counted for one in-process run of ``requests`` requests."""
    with tempfile.TemporaryDirectory(prefix="recsite-callgrind-") as tmp:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                str(ROOT / "bench" / "serving_cpu.py"),
                "_inproc",
                str(requests),
                key,
                str(users),
            ],
            cwd=source,
            env=env,
            capture_output=True,
            text=True,
        )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        sys.exit(f"the callgrind run failed:\n{result.stderr[-3000:]}")
    return int(found.group(1))


def per_request(env: dict[str, str], source: Path, args: argparse.Namespace, key: str) -> float:
    users = data_dir(args) / "users.txt"
    with ThreadPoolExecutor(max_workers=2) as pool:
        loaded, one = pool.map(
            lambda n: instructions(env, source, n, key, users), (args.requests, 1)
        )
    return (loaded - one) / (args.requests - 1)


def data_dir(args: argparse.Namespace) -> Path:
    """Where ``serving_cpu.py --prepare`` left the API key and the users."""
    return ROOT / "var" / "bench" / f"cpu-{args.database}"


def main() -> None:
    args = parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is missing: apt-get install valgrind")
    key_file = data_dir(args) / "api_key.txt"
    if not key_file.exists():
        sys.exit(f"no prepared database: run bench/serving_cpu.py --prepare (no {key_file})")
    key = key_file.read_text().strip()
    env = {**server_env(args, data_dir(args)), **DETERMINISM}
    with tempfile.TemporaryDirectory(prefix="recsite-instructions-") as tmp:
        sources = {"this checkout": ROOT}
        if args.base:
            sources = {f"base {args.base}": export(args.base, Path(tmp) / "base"), **sources}
        counts = {}
        for name, source in sources.items():
            counts[name] = per_request(env, source, args, key)
            print(f"{name}: {counts[name]:,.0f} instructions/request", flush=True)
    print(f"\n| code | instructions per request ({args.requests:,} requests, in process) |")
    print("|---|---:|")
    first = next(iter(counts.values()))
    for name, count in counts.items():
        print(f"| {name} | {count / 1e6:.3f} M ({count / first:.2f}x) |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
