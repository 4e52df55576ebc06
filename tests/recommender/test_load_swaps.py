"""Recommendations under sustained load while the active version changes 20 times.

A load generator in a second process (``bench/serving.py``'s: closed-loop threads over
keep-alive ``http.client`` connections, re-opened every 20 requests so both workers get
traffic) hammers ``/api/v1/recommendations/<user>`` on a 2-worker gunicorn while this
process alternates quiet windows (no swap) with swap windows (a change every second:
promote a version never served before, roll back to v1, and so on). Every response must
be a 2xx, the p99 latency of requests started in swap windows within 1.5x the p99 of those
started in quiet windows, and after each change every worker must answer with the new
version within 3 s (told apart by ``X-Recsite-Worker``, the version read from
``model_version``).

Quiet and swap windows alternate, rather than one quiet phase then one swap phase, so that
the other processes of a shared machine (other tests, other jobs) weigh on both alike: on
a 2-core machine they moved a single phase's p99 by more than the swaps did.

Each promotion targets a version never served before, so a worker can only answer with it
after loading it; a rollback goes back to v1, which a worker stuck on v1 would answer at
once, but such a worker fails the promotion before it."""

from __future__ import annotations

import bisect
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recommender.models import ModelVersion, Scope
from recommender.services import api_key_create
from recommender.services.registry import model_version_promote, model_version_rollback
from tests.processes import Server
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
SWAPS = 20
BLOCKS = 10  # quiet window, swap window (SWAPS / BLOCKS swaps), settle; BLOCKS times
QUIET_SECONDS = 1.0
SWAP_INTERVAL = 1.0
SETTLE_SECONDS = 0.5  # after a swap window (the last load may still run): in neither
CONVERGE_WITHIN = 3.0
P99_RATIO_MAX = 1.5
CLIENTS, CLIENT_THREADS = 1, 4
# The size of MovieLens 100K (943 users, 1,682 items): loading a version takes a few ms.
# At 10,000 items (~25 ms of mostly GIL-holding Python per load and worker) the swap
# windows had up to 31% less throughput on a 2-core machine shared with other jobs and
# the p99 ratio ranged from 0.95 to 2.2 over 4 runs: see docs/RELIABILITY.md.
USERS, ITEMS, DIM = 1_000, 2_000, 32

LOADGEN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from serving import Job, run_load
spec = json.loads(sys.argv[2])
result = run_load(Job(**spec["job"]), spec["clients"])
json.dump(result.records, sys.stdout)
"""


def start_load(server: Server, key: str, seconds: float) -> subprocess.Popen:
    """Start the load generator process; it prints every response's
    ``[end time, status, worker, version, latency]`` as JSON when done."""
    job = {
        "port": int(server.url.rsplit(":", 1)[1]),
        "api_key": key,
        "path": "/api/v1/recommendations/{}?limit=20",
        "users": [f"user-{u}" for u in range(0, USERS, 7)],
        "seconds": seconds,
        "threads": CLIENT_THREADS,
        "record": True,
    }
    return subprocess.Popen(
        [sys.executable, "-c", LOADGEN, str(ROOT / "bench"),
         json.dumps({"job": job, "clients": CLIENTS})],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def load_records(process: subprocess.Popen, timeout: float) -> list[list]:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, "the load generator failed"
    return json.loads(out)


def phase(records: list[list], windows: list[tuple[float, float]]) -> dict[str, float]:
    """Requests started in one of ``windows``: count, throughput, p50, p99, non-2xx."""
    inside = [r for r in records if any(start <= r[0] - r[4] < end for start, end in windows)]
    latencies = sorted(r[4] for r in inside)
    seconds = sum(end - start for start, end in windows)
    return {
        "requests": len(inside),
        "rps": len(inside) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "errors": sum(1 for r in inside if r[1] >= 300),
    }


def convergence(
    records: list[list], swaps: list[tuple[float, int]], workers: set[str]
) -> list[float]:
    """Per swap: seconds from its commit until every worker had answered with its version
    (``inf`` when some worker did not within ``CONVERGE_WITHIN``). Records are sorted by
    end time."""
    ends = [record[0] for record in records]
    result = []
    for at, version in swaps:
        first: dict[str, float] = {}
        for end, _, worker, served, _ in records[bisect.bisect_left(ends, at) :]:
            if end > at + CONVERGE_WITHIN:
                break
            if served == version and worker not in first:
                first[worker] = end
        result.append(max(first.values()) - at if set(first) >= workers else float("inf"))
    return result


@pytest.fixture
def versions(postgres, settings, tmp_path) -> list[ModelVersion]:
    """v1 active, v2..v11 candidates (each with its own factors)."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"  # where the server looks too
    spec = default_spec(n_users=USERS, n_items=ITEMS, dim=DIM)
    create_catalog(spec)
    made = [create_version(spec)]
    for seed in range(1, SWAPS // 2 + 1):
        spec = default_spec(n_users=USERS, n_items=ITEMS, dim=DIM, seed=seed)
        made.append(create_version(spec, promote=False))
    return made


def test_swaps_under_load_lose_no_request_and_reach_every_worker_quickly(versions, start_server):
    _, key = api_key_create(name="load", scopes=[Scope.RECOMMENDATIONS_READ])
    # Four threads per worker (the gthread worker, the production default until the sync
    # worker; the swap path is the same in both); no throttle (one key sends well over
    # 1,000 req/s).
    server = start_server(
        GUNICORN_WORKERS=str(WORKERS),
        GUNICORN_THREADS="4",
        RECSITE_API_THROTTLE_RATE="1000000/s",
    )
    server.wait_ready()
    pids = server.worker_pids(WORKERS)
    for n in range(40):  # warm both workers up (imports, connections), outside the windows
        assert server.ask(key, user=f"user-{n}").status_code == 200
    per_block = SWAPS // BLOCKS
    # 2 s to start, the windows, and time for every worker to answer after the last swap
    seconds = 2.0 + BLOCKS * (QUIET_SECONDS + per_block * SWAP_INTERVAL + SETTLE_SECONDS) + 1.5
    generator = start_load(server, key, seconds)

    v1, fresh = versions[0], versions[1:]
    quiet: list[tuple[float, float]] = []
    swapping: list[tuple[float, float]] = []
    swaps: list[tuple[float, int]] = []
    at = time.time() + 2.0  # the generator's clients have started and warmed up
    for block in range(BLOCKS):
        quiet.append((at, at + QUIET_SECONDS))
        at += QUIET_SECONDS
        block_start = at
        for n in range(block * per_block, (block + 1) * per_block):
            time.sleep(max(0.0, at - time.time()))
            if n % 2 == 0:
                event = model_version_promote(version=fresh[n // 2], reason="load test")
            else:
                event = model_version_rollback(recommender=v1.recommender, reason="load test")
            swaps.append((time.time(), event.to_version.number))  # committed, key bumped
            at += SWAP_INTERVAL
        swapping.append((block_start, at))
        at += SETTLE_SECONDS
    records = load_records(generator, timeout=seconds + 60)

    assert [r for r in records if r[1] >= 300] == []
    workers = {record[2] for record in records}
    switched = convergence(records, swaps, workers)
    baseline, during = phase(records, quiet), phase(records, swapping)
    ratio = during["p99_ms"] / baseline["p99_ms"]
    for name, numbers in (("quiet", baseline), (f"{SWAPS} swaps", during)):
        print(
            f"{name}: {numbers['requests']:,} requests, {numbers['rps']:,.0f} req/s, "
            f"p50 {numbers['p50_ms']:.1f} ms, p99 {numbers['p99_ms']:.1f} ms, "
            f"{numbers['errors']} non-2xx"
        )
    print(
        f"p99 ratio {ratio:.2f} (target <= {P99_RATIO_MAX}); every worker served the new "
        f"version after: median {sorted(switched)[len(switched) // 2]:.2f} s, "
        f"max {max(switched):.2f} s (target {CONVERGE_WITHIN} s)"
    )
    assert workers == pids, "every worker served requests"
    assert max(switched) <= CONVERGE_WITHIN, switched
    assert ratio <= P99_RATIO_MAX
