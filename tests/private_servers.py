"""Private Redis and PostgreSQL servers that a fault test may stop and restart.

The shared servers (5432, 6379) are never touched: other tests run against them. Each
server here listens on a free port of 127.0.0.1, keeps its files in a temporary
directory and is stopped and removed by the fixture that made it (``private_redis`` /
``private_postgres`` below, used as context managers by the test modules' fixtures)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
import redis

from tests.processes import Process, free_port


def _unavailable(reason: str) -> None:
    """Skip on a developer machine that lacks what a private server needs; fail in CI,
    which must never go green by skipping."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        _unavailable("needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)")
    if os.geteuid() != 0:
        _unavailable("needs root, to run a private PostgreSQL cluster as the postgres user")
    return found[-1].parent


class PrivateRedis:
    """``redis-server`` with nothing on disk (``--save "" --appendonly no``): a restart
    loses every key and every queued message, as a crash of an unpersisted Redis does."""

    def __init__(self, log_path: Path) -> None:
        if shutil.which("redis-server") is None:
            _unavailable("needs redis-server on the PATH for a private Redis")
        self.port = free_port()
        self.log_path = log_path
        self.process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> None:
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        self.process = Process(argv, dict(os.environ), self.log_path)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"the private redis-server never answered:\n{self.process.output()}")

    def stop(self) -> None:
        """SIGKILL: the server is gone at once, with whatever it held."""
        if self.process is not None:
            self.process.kill()
            self.process = None


@contextmanager
def private_redis(log_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _as_postgres(*argv: str) -> subprocess.CompletedProcess:
    """Run a PostgreSQL binary as the ``postgres`` user (initdb and the server refuse root)."""
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (trust authentication, user ``postgres``)
    whose data directory and socket live in one temporary directory owned by postgres."""

    def __init__(self, standby_of: PrivatePostgres | None = None) -> None:
        """A new cluster, or with ``standby_of`` a streaming replica of that running one
        (``pg_basebackup -R``: it follows the primary's WAL and answers read-only queries)."""
        self.bin = _postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="recsite-pg-"))
        self.data = self.root / "data"
        shutil.chown(self.root, user="postgres", group="postgres")
        if standby_of is None:
            _as_postgres(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A",
                "trust", "--no-sync", "-E", "UTF8",
            )  # fmt: skip
        else:
            _as_postgres(
                str(self.bin / "pg_basebackup"), "-D", str(self.data), "-R", "-X", "stream",
                "-c", "fast", "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres",
            )  # fmt: skip

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _pg_ctl(self, *argv: str) -> None:
        _as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", *argv,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start", "-w", "-t", "60")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as clients see it: sessions are cut and the next
        start replays the write-ahead log."""
        self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> None:
        connection = psycopg2.connect(self.url())
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def log(self, tail: int = 4000) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres(standby_of: PrivatePostgres | None = None) -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres(standby_of)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
