"""Settings come from the environment; the embedded default needs none."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from recsite.env import env_bool, env_int, env_list, parse_event_types

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "RECSITE_DATA_DIR"}
    }
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "recsite.settings"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def test_no_environment_means_sqlite_filesystem_broker_and_local_cache(tmp_path):
    result = run_python(
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.CELERY_BROKER_URL);"
        "print(s.CACHES['default']['BACKEND']);"
        "print(s.DATABASES['default']['NAME'])",
        RECSITE_DATA_DIR=str(tmp_path),
        DEBUG="true",  # the development default needs no other variable
    )
    assert result.returncode == 0, result.stderr
    engine, broker, cache, name = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert cache.endswith("LocMemCache")
    assert name == str(tmp_path / "db.sqlite3")
    assert (tmp_path / "broker" / "queue").is_dir()


def test_migrate_runs_on_a_fresh_embedded_default(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "RECSITE_DATA_DIR": str(tmp_path), "DATABASE_URL": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "db.sqlite3").stat().st_size > 0


def test_a_command_with_the_web_hosts_metrics_directory_set_finds_it(tmp_path):
    """The web hosts' environment names a PROMETHEUS_MULTIPROC_DIR gunicorn creates; a
    management command run with it (no gunicorn) must not fail on a missing directory."""
    metrics_dir = tmp_path / "not-yet" / "prometheus"
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "RECSITE_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert metrics_dir.is_dir()


def test_urls_select_postgres_and_redis(tmp_path):
    result = run_python(
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);"
        "print(s.CELERY_BROKER_URL);"
        "print(s.CACHES['default']['BACKEND'])",
        RECSITE_DATA_DIR=str(tmp_path),
        DATABASE_URL="postgres://u@db.example:5432/x",
        REDIS_URL="redis://cache.example:6379/0",
        DEBUG="true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "redis://cache.example:6379/0",
        "django.core.cache.backends.redis.RedisCache",
    ]


@pytest.mark.parametrize("debug", [None, "false"])
def test_debug_off_without_secret_key_refuses_to_start(tmp_path, debug):
    """DEBUG is off unless asked for: with no environment at all, start-up stops and
    names the variable to set."""
    env = {"RECSITE_DATA_DIR": str(tmp_path)} | ({"DEBUG": debug} if debug else {})
    result = run_python("import django; django.setup()", **env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_off_with_secret_key_starts(tmp_path):
    result = run_python(
        "import django; django.setup(); from django.conf import settings as s; print(s.DEBUG)",
        DEBUG="false",
        SECRET_KEY="x" * 60,
        ALLOWED_HOSTS="recs.example.com",
        RECSITE_DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_env_helpers_name_the_variable(monkeypatch):
    monkeypatch.setenv("X_BOOL", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_list("X_LIST", []) == ["a", "b", "c"]


def test_event_types_parse_and_reject_bad_weights():
    assert parse_event_types("view:1, like:3,purchase") == {
        "view": 1.0,
        "like": 3.0,
        "purchase": 1.0,
    }
    with pytest.raises(ImproperlyConfigured, match="like"):
        parse_event_types("like:lots")


def test_the_migrations_match_the_models(tmp_path):
    """Every model change has its migration (state-only ones included, like the covering
    index of 0006, whose database side is hand-written)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=Path(__file__).resolve().parents[2],
        env={
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            "RECSITE_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
