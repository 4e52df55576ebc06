"""The servers ``bench/serving.py`` measures side by side: recsite under its own gunicorn
configuration, the seeds' design peer and the bare DRF view. The two peers are run from
``../shared/bench`` (never copied into the project); the peer's FastAPI and uvicorn are
installed at pinned versions into ``var/bench/peer-site``, outside the project's
requirements, and its pickled model is trained once and kept in ``var/bench/seed-peer``.

Imported as ``servers`` (the scripts run as ``python bench/<name>.py``)."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from common import ROOT

SHARED_BENCH = (ROOT.parent / "shared" / "bench").resolve()
SEED_PEER = SHARED_BENCH / "seed_peer.py"
DRF_LIMIT = SHARED_BENCH / "drf_limit.py"
# The seed peer's web stack, bench-only (not in requirements*.txt): exact pins.
PEER_PINS = ("fastapi==0.165.0", "uvicorn==0.55.0")
PEER_SITE = ROOT / "var" / "bench" / "peer-site"
SEED_MODELS = ROOT / "var" / "bench" / "seed-peer"
PEER_WORKERS = 2
BARE_WORKERS = 2
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the project's server settings, plus ``extra``."""
    dropped = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PYTHONPATH"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **extra}


class Service:
    """A server process (its own process group) on 127.0.0.1:``port``, ready when
    ``ready_path`` answers 200."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        port: int,
        env: dict[str, str],
        log: Path,
        ready_path: str = "/",
        cwd: Path = ROOT,
        ready_within: float = 120.0,
    ):
        self.name, self.port, self.log = name, port, log
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"{name} exited; see {log}:\n{log.read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", ready_path)
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        sys.exit(f"{name} not ready within {ready_within:.0f} s; see {log}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def recsite(
    env: dict[str, str], *, port: int, workers: int, threads: int, log: Path, cwd: Path = ROOT
) -> Service:
    """recsite under ``recsite/gunicorn.conf.py`` with its production settings, from the
    checkout ``cwd`` (another commit's tree for an A/B comparison)."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return Service(
        "recsite",
        [str(gunicorn), "-c", "recsite/gunicorn.conf.py", "recsite.wsgi"],
        port=port,
        env={
            **env,
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
            "GUNICORN_LOG_LEVEL": "warning",
        },
        log=log,
        ready_path="/readyz",
        cwd=cwd,
    )


def bare_drf(*, port: int, items: int, factors: int, log: Path) -> Service:
    """``drf_limit.py`` as its docstring starts it: gunicorn ``-w 2`` (sync workers)."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return Service(
        "bare DRF view",
        [
            str(gunicorn),
            "-w",
            str(BARE_WORKERS),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(SHARED_BENCH),
            "--log-level",
            "warning",
            "drf_limit:application",
        ],
        port=port,
        env=clean_env(N_ITEMS=str(items), FACTORS=str(factors), **ONE_BLAS_THREAD),
        log=log,
        cwd=SHARED_BENCH,
    )


def peer_site() -> Path:
    """``var/bench/peer-site`` holding exactly ``PEER_PINS`` (pip-installed when not)."""
    marker = PEER_SITE / ".pins"
    wanted = "\n".join(PEER_PINS)
    if marker.exists() and marker.read_text() == wanted:
        return PEER_SITE
    shutil.rmtree(PEER_SITE, ignore_errors=True)
    print(f"installing {' '.join(PEER_PINS)} into {PEER_SITE.relative_to(ROOT)} ...", flush=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(PEER_SITE),
            *PEER_PINS,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"pip could not install the seed peer's {PEER_PINS}:\n{result.stderr[-3000:]}")
    marker.write_text(wanted)
    return PEER_SITE


def seed_model(dataset: Path) -> Path:
    """The seed peer's pickled model trained on ``dataset`` (its ``train`` command), kept
    under a name derived from the peer's code, the ratings and the LightFM version."""
    digest = hashlib.sha256()
    digest.update(SEED_PEER.read_bytes())
    digest.update((dataset / "u.data").read_bytes())
    digest.update(metadata.version("rectools-lightfm").encode())
    path = SEED_MODELS / f"seed-{digest.hexdigest()[:16]}.pkl"
    if path.exists():
        return path
    SEED_MODELS.mkdir(parents=True, exist_ok=True)
    print("training the seed peer's model (once) ...", flush=True)
    partial = path.with_suffix(".partial")
    result = subprocess.run(
        [sys.executable, str(SEED_PEER), "train", str(dataset), str(partial)],
        cwd=SHARED_BENCH,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"training the seed peer failed:\n{result.stderr[-3000:]}")
    partial.rename(path)
    return path


def seed_peer(*, port: int, model: Path, site: Path, log: Path) -> Service:
    """``seed_peer.py`` as its docstring starts it: uvicorn ``--workers 2``, with the
    project's Python (LightFM from its virtualenv) and ``site`` first on the path."""
    return Service(
        "seed peer",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(SHARED_BENCH),
            "seed_peer:app",
            "--workers",
            str(PEER_WORKERS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        port=port,
        env=clean_env(SEED_MODEL=str(model), PYTHONPATH=str(site), **ONE_BLAS_THREAD),
        log=log,
        cwd=SHARED_BENCH,
    )
