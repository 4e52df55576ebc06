"""What the benchmark scripts share: the machine they ran on, PostgreSQL scratch
databases, running ``manage.py`` against one, and writing their own marked section of
docs/BENCHMARKS.md.

Imported as ``common`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import os
import platform
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"
BENCHMARKS_INTRO = (
    "# Benchmarks\n\nNumbers written by the scripts in `bench/` (never run in CI)."
    " Re-run a script to update its section.\n"
)


def machine_info() -> dict[str, str]:
    """CPU model, cores, RAM, OS, Python and the load average right now."""
    cpu, ram = platform.processor() or "unknown", "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "CPU": cpu,
        "Cores": str(os.cpu_count()),
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Load average at start (1/5/15 min)": " / ".join(f"{n:.2f}" for n in os.getloadavg()),
    }


@contextmanager
def pg_connect(server_url: str, dbname: str = "postgres") -> Iterator:
    """An autocommit connection to ``dbname`` on the server of ``server_url``."""
    parts = urlsplit(server_url)
    connection = psycopg2.connect(
        dbname=dbname,
        user=parts.username or None,
        password=parts.password or None,
        host=parts.hostname or None,
        port=parts.port or None,
        connect_timeout=5,
    )
    connection.autocommit = True
    try:
        yield connection
    finally:
        connection.close()


def postgres_version(server_url: str) -> str:
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return str(cursor.fetchone()[0])


def drop_database(server_url: str, name: str) -> None:
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(server_url: str, name: str) -> None:
    drop_database(server_url, name)
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')


def write_section(start_marker: str, end_marker: str, section: str) -> None:
    """Replace the text between the markers (``section`` carries them), or append it;
    the rest of BENCHMARKS.md stays as it is."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else BENCHMARKS_INTRO
    if start_marker in text and end_marker in text:
        head, rest = text.split(start_marker, 1)
        tail = rest.split(end_marker, 1)[1].lstrip("\n")
        text = head + section.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text)


def command_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        RECSITE_DATA_DIR=str(data_dir),
        LOG_LEVEL="WARNING",
    )
    return env


@dataclass(frozen=True)
class Timed:
    wall: float  # seconds from start to exit
    cpu: float  # user + system CPU seconds of the process (all its threads)
    done: subprocess.CompletedProcess[str]


def timed_run(command: list[str], env: dict[str, str]) -> Timed:
    """Run a command to completion; its wall time and CPU time (less sensitive than wall
    time to other jobs on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall=wall, cpu=cpu, done=done)


def manage(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``manage.py ARGS`` and return (wall seconds, the completed process)."""
    timed = timed_run([sys.executable, str(ROOT / "manage.py"), *args], env)
    return timed.wall, timed.done


def manage_ok(env: dict[str, str], *args: str) -> float:
    seconds, done = manage(env, *args)
    if done.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds
