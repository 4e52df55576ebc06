"""Fixtures shared by the whole suite.

Integration tests ask for ``postgres`` or ``redis``: they skip (with the reason) in the
SQLite pass where those servers are not configured, and *fail* when a server is
configured but unreachable, so CI never goes green by skipping."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from rest_framework.test import APIClient

from recommender.models import Scope
from recommender.services import api_key_create
from tests.processes import Server, Worker, free_port


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs) -> None:
    """Under ``pytest -n N`` each xdist worker gets its own Redis database: the configured
    one for the first, the ones below it for the others (15, 14, ... for the default
    ``/15``), set in the worker's environment before it loads the settings. Sharing one,
    a Celery worker started by a test would take the messages of a test running in
    another xdist worker, and a ``cache.clear()`` (FLUSHDB) in one would drop the other's
    queued messages."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    for index, spec in enumerate(specs):
        spec.env["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{(base - index) % 16}"))


@pytest.fixture(autouse=True)
def serving_registry_reset():
    """Every test starts and ends with an empty per-process serving registry, so no test
    serves a model (or a load error) left by another."""
    from recommender.serving.registry import registry

    registry.reset()
    yield registry
    registry.reset()


@pytest.fixture(autouse=True)
def api_key_cache_reset():
    """No test authenticates with a key another test validated (and then deleted)."""
    from recommender.auth import key_cache

    key_cache.clear()
    yield
    key_cache.clear()


@pytest.fixture
def make_api_client(db):
    """``make_api_client(*scopes)`` -> an APIClient sending a fresh key with those scopes."""

    def make(*scopes: str) -> APIClient:
        _, key = api_key_create(name="test-client", scopes=list(scopes) or list(Scope.values))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return make


@pytest.fixture
def postgres(settings):
    """Skip unless the suite runs on PostgreSQL (the second CI pass)."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: runs in the DATABASE_URL=postgres://... pass")


@pytest.fixture
def redis_url() -> str:
    """The configured Redis, which must answer; skip when REDIS_URL is not set."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis: runs in the REDIS_URL=redis://... pass")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"REDIS_URL={url} is set but Redis does not answer: {exc}")
    return url


@pytest.fixture
def subprocess_env(postgres, redis_url, settings, tmp_path) -> dict[str, str]:
    """The environment for a server or worker subprocess that shares this test's
    database (the test database, by URL), Redis and artifact directory."""
    from django.db import connection

    db = connection.settings_dict
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    return {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "REDIS_URL": redis_url,
        "RECSITE_DATA_DIR": str(tmp_path / "subprocess-data"),
        "RECSITE_ARTIFACT_DIR": str(settings.RECSITE_ARTIFACT_DIR),
    }


@pytest.fixture
def not_eager() -> Iterator[None]:
    """Runs must reach a worker through the broker, whatever an earlier test set."""
    from recsite.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def worker_env(subprocess_env, not_eager) -> dict[str, str]:
    return {**subprocess_env, "CELERY_TASK_ALWAYS_EAGER": "false"}


@pytest.fixture
def start_worker(worker_env, tmp_path) -> Iterator[Callable[..., Worker]]:
    """``start_worker(concurrency=1, **env)`` -> a running ``celery worker`` subprocess,
    killed (SIGKILL, whole process group) at teardown."""
    workers: list[Worker] = []

    def start(concurrency: int = 1, **env: str) -> Worker:
        log = tmp_path / f"worker-{len(workers)}.log"
        worker = Worker({**worker_env, **env}, log, concurrency=concurrency)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()


@pytest.fixture
def server_env(subprocess_env, tmp_path) -> dict[str, str]:
    """A production-like gunicorn environment (DEBUG off) with 3 workers × 2 threads."""
    return {
        **subprocess_env,
        "DEBUG": "false",
        "SECRET_KEY": "integration-test-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "GUNICORN_WORKERS": "3",
        "GUNICORN_THREADS": "2",
        "GUNICORN_LOG_LEVEL": "warning",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def start_server(server_env, tmp_path) -> Iterator[Callable[..., Server]]:
    """``start_server(**env)`` -> a gunicorn subprocess on a free port (not yet ready:
    call ``wait_ready``), stopped at teardown."""
    servers: list[Server] = []

    def start(**env: str) -> Server:
        log = tmp_path / f"gunicorn-{len(servers)}.log"
        server = Server({**server_env, **env}, log, free_port())
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
def artifact_dir(settings, tmp_path):
    """Artifacts of this test under its own temporary directory."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    return settings.RECSITE_ARTIFACT_DIR
