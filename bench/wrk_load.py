"""wrk for ``bench/serving.py``: found or installed, driven by a generated Lua script that
picks a random path per request, and its ``--latency`` report parsed.

Imported as ``wrk_load`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "wrk is needed: install the Debian/Ubuntu package (`sudo apt-get install wrk`) or build"
    " https://github.com/wg/wrk and put `wrk` on the PATH"
)
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def ensure_wrk() -> str:
    """The path of ``wrk``; installed with apt-get (as root, or through ``sudo -n``) when it
    is missing and that is possible, otherwise exit saying how to install it."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    prefix: list[str] | None = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        prefix = [sudo, "-n"] if sudo else None
    if apt and prefix is not None:
        print("wrk is missing: installing it with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [*prefix, apt, "install", "-y", "--no-install-recommends", "wrk"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run([*prefix, apt, "update"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit(INSTALL_HINT)


def lua_script(path: Path, paths: list[str], headers: dict[str, str]) -> Path:
    """Write a wrk script sending GET to a random one of ``paths`` (each thread seeds its
    own generator) with ``headers``; returns ``path``."""

    def literal(text: str) -> str:
        if not text.isascii():
            raise ValueError(f"not ASCII (quote it first): {text!r}")
        return json.dumps(text)  # an ASCII JSON string is a valid Lua string literal

    lines = [
        "local paths = {",
        *(f"  {literal(p)}," for p in paths),
        "}",
        "local headers = {",
        *(f"  [{literal(k)}] = {literal(v)}," for k, v in headers.items()),
        "}",
        "local threads = 0",
        "function setup(thread)",
        "  threads = threads + 1",
        "  thread:set('thread_number', threads)",
        "end",
        "function init(args)",
        "  math.randomseed(os.time() * 1000 + (thread_number or 0))",
        "end",
        "function request()",
        "  return wrk.format('GET', paths[math.random(#paths)], headers)",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # wrk: "Non-2xx or 3xx responses"
    socket_errors: int  # connect + read + write + timeout


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse(output: str) -> WrkResult:
    """Read wrk's ``--latency`` report."""
    done = re.search(r"(\d+) requests in " + _TIME, output)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", output)
    p50 = re.search(r"^\s*50(?:\.000)?%\s+" + _TIME, output, re.MULTILINE)
    p99 = re.search(r"^\s*99(?:\.000)?%\s+" + _TIME, output, re.MULTILINE)
    if not (done and rps and p50 and p99):
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2), done.group(3)) / 1000,
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1), p50.group(2)),
        p99_ms=_ms(p99.group(1), p99.group(2)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def run(
    wrk: str, url: str, script: Path, *, threads: int, connections: int, seconds: float
) -> WrkResult:
    """``wrk -t<threads> -c<connections> -d<seconds>s --latency -s <script> <url>``."""
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return parse(result.stdout)
