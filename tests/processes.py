"""Real subprocesses for integration tests: a Celery worker and a multi-worker gunicorn.

Each runs in its own process group (so a kill takes the whole tree) with its output in a
log file the test can show when something goes wrong. The fixtures that start them live
in ``tests/conftest.py`` (``start_worker``, ``start_server``)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds
    (a generous bound on a condition, never a fixed wait)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


class Process:
    """A subprocess in its own session, logging to ``log_path``."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group."""
        if self.alive():
            os.killpg(self.process.pid, signum)

    def kill(self, graceful: bool = False) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if not self.log.closed:
            self.log.close()

    def output(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]


class Worker(Process):
    """``celery worker`` on the ``celery`` and ``training`` queues, prefork pool."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1) -> None:
        super().__init__(
            [
                sys.executable, "-m", "celery", "-A", "recsite", "worker",
                "-Q", "celery,training", "-c", str(concurrency), "--pool", "prefork",
                "--without-mingle", "--without-gossip", "-l", "info",
            ],
            env, log_path,
        )  # fmt: skip

    def pool_children(self) -> list[int]:
        """The prefork pool's child pids (the processes that run tasks)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        text = children.read_text() if children.exists() else ""
        return [int(pid) for pid in text.split()]


class Server(Process):
    """gunicorn with ``recsite/gunicorn.conf.py``."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        gunicorn = Path(sys.executable).parent / "gunicorn"
        super().__init__(
            [str(gunicorn), "-c", "recsite/gunicorn.conf.py", "recsite.wsgi"],
            {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            log_path,
        )

    def kill(self, graceful: bool = True) -> None:
        super().kill(graceful=graceful)

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"gunicorn exited ({self.process.returncode}):\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail(f"gunicorn never became ready:\n{self.output()}")

    def worker_pids(self, expected: int, timeout: float = 30.0) -> set[str]:
        """Every live worker's pid, from the per-worker loaded-version gauge in /metrics."""
        deadline = time.monotonic() + timeout
        pids: set[str] = set()
        while time.monotonic() < deadline:
            text = requests.get(f"{self.url}/metrics", timeout=5).text
            pids = set(re.findall(r'recsite_model_loaded_version\{pid="(\d+)"', text))
            if len(pids) >= expected:
                return pids
            time.sleep(0.3)
        pytest.fail(f"only {len(pids)} of {expected} workers reported:\n{self.output()}")

    def ask(self, key: str, user: str = "user-3", **params) -> requests.Response:
        """One recommendations request on a new connection, so any worker may take it."""
        return requests.get(
            f"{self.url}/api/v1/recommendations/{user}",
            params=params,
            headers={"Authorization": f"Api-Key {key}", "Connection": "close"},
            timeout=10,
        )
