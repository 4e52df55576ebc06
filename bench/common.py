"""What the benchmark scripts share: the machine they ran on, PostgreSQL scratch
databases, running ``manage.py`` against one, and writing their own marked section of
docs/BENCHMARKS.md.

Imported as ``common`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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


def measured_header(command: str, info: dict[str, str]) -> list[str]:
    """The lines that open a BENCHMARKS.md section: when, the command, the machine."""
    return [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`.",
        "",
        "| Machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
    ]


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


def server_settings(server_url: str, names: list[str]) -> str:
    """``name value`` of each server setting, comma-separated (for the machine table)."""
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        values = []
        for name in names:
            cursor.execute("SELECT current_setting(%s)", [name])
            values.append(f"{name} {cursor.fetchone()[0]}")
        return ", ".join(values)


def drop_database(server_url: str, name: str) -> None:
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_database(server_url: str, name: str, *, template: str | None = None) -> None:
    """``name`` afresh: empty, or a file copy of ``template`` (no session may be connected
    to it; ``FILE_COPY`` copies the files instead of writing every page to the WAL)."""
    drop_database(server_url, name)
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        cursor.execute(f'CREATE DATABASE "{name}"{copy}')


def database_exists(server_url: str, name: str) -> bool:
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


# The demo shop's generator shape at N events (bench/scale.py's sizes): N / 100 users and
# N / 200 items, so users and items per event stay the same at every size.
EVENTS_PER_USER = 100
EVENTS_PER_ITEM = 200
_DEMO_SHOP = (
    "import json, sys, django; django.setup(); import scale_data; "
    "users, items, events = map(int, sys.argv[1:]); "
    "print(json.dumps(scale_data.demo_shop_copy(users=users, items=items, events=events)))"
)


def demo_shop_write(env: dict[str, str], *, events: int) -> dict[str, float]:
    """Write the demo shop at ``events`` events (bench/scale_data.py: ``COPY``) into the
    migrated database of ``env``; the phases' seconds."""
    users, items = events // EVENTS_PER_USER, events // EVENTS_PER_ITEM
    done = subprocess.run(
        [sys.executable, "-c", _DEMO_SHOP, str(users), str(items), str(events)],
        cwd=ROOT,
        env={
            **env,
            "PYTHONPATH": str(ROOT / "bench"),
            "DJANGO_SETTINGS_MODULE": "recsite.settings",
        },
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"writing the demo shop failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def demo_shop_template(server_url: str, prefix: str, *, events: int) -> tuple[str, float | None]:
    """Make sure database ``<prefix>_<events>`` holds the migrated demo shop at
    ``events`` events, to be cloned (``recreate_database(..., template=name)``) by the
    benchmarks that need a large events table: written once (~6 min at 10M; under a name
    of its own, renamed when complete, so an interrupted fill is never reused) and kept.
    Returns its name and the seconds spent writing it (None: it was there already).
    Drop it by hand when done."""
    name = f"{prefix}_{events}"
    if database_exists(server_url, name):
        return name, None
    partial = f"{name}_partial"
    recreate_database(server_url, partial)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recsite-bench-shop-") as data_dir:
        env = command_env(f"{server_url.rstrip('/')}/{partial}", Path(data_dir))
        manage_ok(env, "migrate", "-v", "0")
        demo_shop_write(env, events=events)
    with pg_connect(server_url) as connection, connection.cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
    return name, time.perf_counter() - started


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


def publish_section(start_marker: str, end_marker: str, section: str, *, write: bool) -> None:
    """Print a section's body; with ``write``, also put it into BENCHMARKS.md."""
    print()
    print(section.split("\n", 2)[2].rsplit(end_marker, 1)[0].strip())
    if write:
        write_section(start_marker, end_marker, section)
        print(f"\nUpdated {BENCHMARKS_MD.relative_to(ROOT)}")


def django_call(script: str, env: dict[str, str], *arguments: str) -> dict:
    """Run ``script``'s Django mode (``--django ARGUMENTS``) in a process of its own (the
    bench's process has no Django); its last stdout line, as JSON."""
    done = subprocess.run(
        [sys.executable, script, "--django", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"--django {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
