"""gunicorn configuration: ``gunicorn -c recsite/gunicorn.conf.py recsite.wsgi``.

Every value comes from the environment (README, "Configuration"); command-line flags
still override them. Each worker process imports ``recsite.wsgi``, which loads the active
models (memory-mapped, so the workers of a host share one copy in the page cache) and
starts the serving watcher thread before the worker accepts requests.

Prometheus: the workers write their metrics into ``PROMETHEUS_MULTIPROC_DIR`` (default
``$RECSITE_DATA_DIR/prometheus``), emptied when the server starts; ``/metrics`` on any
worker reports all of them.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

_BASE_DIR = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


bind = os.environ.get("GUNICORN_BIND", "").strip() or "127.0.0.1:8000"
workers = _int("GUNICORN_WORKERS", 2 * (os.cpu_count() or 1))
# One thread: gunicorn's sync worker, one request at a time per process, behind the
# buffering reverse proxy (docs/OPERATIONS.md) that holds slow clients. A recommendation
# request no longer waits on PostgreSQL (the seen filter's lists are cached per process),
# so threads only added hand-offs: with 4 threads a request cost 8 % more worker CPU and
# the p99 under wrk -c32 was 1.7x the sync worker's (docs/BENCHMARKS.md, "Serving").
# More than one thread selects the gthread worker.
threads = _int("GUNICORN_THREADS", 1)
# Long enough for a worker to load the active models when it starts (a multi-GB model
# takes seconds to checksum); requests themselves take milliseconds.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# Never preload: each worker must load the models and start its watcher after the fork.
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "").strip() or None
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "").strip() or "info"

# One BLAS thread per worker: the workers are the parallelism. OpenBLAS's own threads on
# top of them fight over the cores: scoring 100k items took 18 ms instead of 1.6 ms
# under load. Read by numpy when a worker imports it, after the fork.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

_data_dir = Path(os.environ.get("RECSITE_DATA_DIR", "").strip() or _BASE_DIR / "var")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_data_dir / "prometheus"))

# After PROMETHEUS_MULTIPROC_DIR is set: prometheus_client reads it when first imported.
from prometheus_client import multiprocess  # noqa: E402


def on_starting(server) -> None:
    """Start with an empty metrics directory: old workers' files would be added up."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for path in glob.glob(str(directory / "*.db")):
        os.remove(path)


def child_exit(server, worker) -> None:
    """Drop a dead worker's per-process gauges (the loaded version, the model age)."""
    multiprocess.mark_process_dead(worker.pid)
