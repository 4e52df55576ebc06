"""Client processes posting prepared bodies to a local server on keep-alive connections,
all starting together: the load side of bench/ingest.py.

Imported as ``http_clients`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import http.client
import multiprocessing
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ClientJob:
    port: int
    api_key: str
    path: str
    bodies: list[bytes]
    expect_status: int


def post_all(job: ClientJob, start_at: float) -> tuple[int, float, str | None]:
    """Post every body in order on one keep-alive connection (re-opened if the server
    closes it). Returns (requests, seconds, first error)."""
    connection = http.client.HTTPConnection("127.0.0.1", job.port, timeout=60)
    headers = {
        "Authorization": f"Api-Key {job.api_key}",
        "Content-Type": "application/json",
        "Connection": "keep-alive",
    }
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for body in job.bodies:
        try:
            connection.request("POST", job.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return 0, 0.0, f"{type(exc).__name__}: {exc}"
        if response.status != job.expect_status:
            return 0, 0.0, f"HTTP {response.status}: {payload[:300]!r}"
    return len(job.bodies), time.perf_counter() - started, None


def run_clients(jobs: list[ClientJob]) -> float:
    """Run the jobs in parallel processes, all starting together; returns wall seconds."""
    start_at = time.time() + 0.5
    with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
        results = pool.starmap(post_all, [(job, start_at) for job in jobs])
    errors = [error for _, _, error in results if error]
    if errors:
        sys.exit("the server refused a request: " + errors[0])
    # Wall time from the common start to the last client done.
    return max(seconds for _, seconds, _ in results)


def split(bodies: list[bytes], parts: int) -> list[list[bytes]]:
    return [bodies[index::parts] for index in range(parts)]
