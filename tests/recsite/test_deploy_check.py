"""The production environment documented in docs/OPERATIONS.md passes Django's deployment
checks with no warning, and behind the TLS proxy plain HTTP is redirected except for the
load balancer's probes. The environment is read from the document itself, so the two
cannot drift apart."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def documented_environment() -> dict[str, str]:
    """The ``export NAME=value`` lines of the "Environment" section's shell block."""
    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    section = text.split("\n## Environment\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    env = {}
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            for word in words[1:]:
                name, _, value = word.partition("=")
                env[name] = value
    return env


def production_env(tmp_path: Path) -> dict[str, str]:
    """The documented environment, with a real secret, local directories and a database
    URL nothing answers on (the checks must not need the database)."""
    documented = documented_environment()
    assert {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "RECSITE_BEHIND_TLS_PROXY"} <= set(documented)
    # Nothing the test session set for itself: the browser tests' session-wide
    # DJANGO_ALLOW_ASYNC_UNSAFE (async.E001) made this fail after them in the same worker.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "RECSITE_", "SECURE_", "DEBUG"))
        and key != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    return {
        **env,
        **documented,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": "postgres://recsite:secret@127.0.0.1:1/recsite",
        "RECSITE_DATA_DIR": str(tmp_path / "var"),
        "RECSITE_ARTIFACT_STORE": (tmp_path / "artifacts").as_uri(),
        "STATIC_ROOT": str(tmp_path / "static"),
    }


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_with_the_documented_production_environment(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr


def test_check_deploy_still_catches_a_weak_setup(tmp_path):
    """The control: the same check fails without the proxy flag (no HTTPS redirect, no
    HSTS) and with a short key, so the test above is not passing by accident."""
    env = {**production_env(tmp_path), "RECSITE_BEHIND_TLS_PROXY": "false", "SECRET_KEY": "short"}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W009"):
        assert check in result.stderr


PROBE = """
import django
django.setup()
from django.test import Client
host = "recsite.example.com"
http, https = Client(HTTP_HOST=host), Client(HTTP_HOST=host, HTTP_X_FORWARDED_PROTO="https")
for path in ("/healthz", "/readyz", "/metrics", "/api/v1/models/active", "/admin/login/"):
    plain, secure = http.get(path), https.get(path)
    print(path, plain.status_code, plain.get("Location", "-"), secure.status_code,
          secure.get("Strict-Transport-Security", "-"), sep="|")
"""


def test_plain_http_is_redirected_except_the_probes_and_the_metrics_scrape(tmp_path):
    env = {**production_env(tmp_path), "DJANGO_SETTINGS_MODULE": "recsite.settings"}
    result = run(["-c", PROBE], env)
    assert result.returncode == 0, result.stderr
    answers = {line.split("|")[0]: line.split("|")[1:] for line in result.stdout.splitlines()}
    assert answers["/healthz"][:2] == ["200", "-"]
    assert answers["/readyz"][0] in ("200", "503")  # the database is unreachable here
    assert answers["/readyz"][1] == "-"
    assert answers["/metrics"][:2] == ["200", "-"]
    for path in ("/api/v1/models/active", "/admin/login/"):
        status, location, secure_status, hsts = answers[path]
        assert (status, location) == ("301", f"https://recsite.example.com{path}")
        assert secure_status != "301"
        assert hsts == "max-age=31536000; includeSubDomains; preload"
