"""Fixtures shared by the whole suite.

Integration tests ask for ``postgres`` or ``redis``: they skip (with the reason) in the
SQLite pass where those servers are not configured, and *fail* when a server is
configured but unreachable, so CI never goes green by skipping."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from rest_framework.test import APIClient

from recommender.models import Scope
from recommender.services import api_key_create
from tests.processes import Server, Worker, free_port
from tests.s3_server import S3Server


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
def served_lists_reset():
    """No test writes (or counts) the served lists another test's requests buffered."""
    from recommender.online.recording import recording_reset

    recording_reset()
    yield
    recording_reset()


@pytest.fixture(autouse=True)
def seen_cache_reset():
    """No test serves a user's recent items cached by another test's requests."""
    from recommender.serving.seen import seen_cache_reset as reset

    reset()
    yield
    reset()


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


@pytest.fixture
def s3_server() -> Iterator[S3Server]:
    """A real S3 protocol server (moto's) on a free loopback port, stopped at teardown."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


@dataclass
class S3Store:
    """The bucket a test's ``s3://`` artifact store lives in, a client to look at it
    with, and the environment that points a subprocess at it."""

    bucket: str
    prefix: str
    server: S3Server
    client: Any
    env: dict[str, str]

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(obj["Key"] for obj in listed.get("Contents", []))


@pytest.fixture
def s3_store(settings, monkeypatch, s3_server, tmp_path) -> S3Store:
    """``RECSITE_ARTIFACT_STORE=s3://<a fresh bucket>/artifacts`` on ``s3_server``, with
    this test's own cache directory."""
    import boto3

    bucket = f"recsite-test-{uuid.uuid4().hex[:12]}"
    env = {
        "AWS_ACCESS_KEY_ID": "recsite-test",
        "AWS_SECRET_ACCESS_KEY": "recsite-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server.url,
        "RECSITE_ARTIFACT_STORE": f"s3://{bucket}/artifacts",
        "RECSITE_ARTIFACT_STORE_TIMEOUT_SECONDS": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings.RECSITE_ARTIFACT_STORE = env["RECSITE_ARTIFACT_STORE"]
    settings.AWS_S3_ENDPOINT_URL = s3_server.url
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    settings.RECSITE_ARTIFACT_STORE_TIMEOUT_SECONDS = 2.0
    settings.RECSITE_ARTIFACT_CACHE_DIR = tmp_path / "artifact-cache"
    client = boto3.client("s3", endpoint_url=s3_server.url)
    client.create_bucket(Bucket=bucket)
    return S3Store(bucket=bucket, prefix="artifacts", server=s3_server, client=client, env=env)
