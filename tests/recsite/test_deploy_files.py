"""docs/deploy/: the systemd units, the compose file and the Dockerfile agree with the
code (settings documented in the README, the commands OPERATIONS.md gives, the files the
image needs) and with each other. ``systemd-analyze verify`` runs when it is installed;
Docker is not exercised here (docs/OPERATIONS.md, "Deployment files", says what was)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
UNITS = {name: DEPLOY / "systemd" / f"recsite-{name}.service" for name in ("web", "worker", "beat")}
ENV_FILE = "/etc/recsite/recsite.env"
# Variables of the images compose runs, not recsite's settings.
FOREIGN = {"POSTGRES_DB", "POSTGRES_HOST_AUTH_METHOD"}


def documented_settings() -> set[str]:
    """The variables named in the first column of the README's configuration table."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS[name])
    return parser


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def exec_start(name: str) -> list[str]:
    """The unit's command without the virtualenv's path."""
    argv = shlex.split(unit(name)["Service"]["ExecStart"])
    return [Path(argv[0]).name, *argv[1:]]


def test_the_readme_table_is_read():
    assert {"DATABASE_URL", "SECRET_KEY", "GUNICORN_BIND", "RECSITE_ARTIFACT_DIR"} <= (
        documented_settings()
    )


def test_every_variable_compose_sets_for_recsite_is_a_documented_setting():
    services = compose()["services"]
    recsite = {name for name, service in services.items() if "build" in service}
    assert recsite == {"migrate", "web", "worker", "beat"}
    names = {var for name in recsite for var in services[name]["environment"]}
    assert names - documented_settings() == set()
    for name in ("db", "redis"):
        assert set(services[name].get("environment", {})) <= FOREIGN


def test_every_variable_of_the_example_environment_file_is_a_documented_setting():
    lines = (DEPLOY / "systemd" / "recsite.env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "RECSITE_ARTIFACT_DIR"} <= names
    assert names - documented_settings() == set()


def test_compose_runs_postgresql_15_redis_7_and_one_beat():
    services = compose()["services"]
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert "deploy" not in services["beat"]  # no replicas: exactly one beat
    env = services["web"]["environment"]
    assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379/")
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # never a secret in the repository


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_compose_and_the_units_run_the_same_commands(name):
    in_compose = compose()["services"][name]["command"]
    # compose's single host also caps the worker at one run at a time.
    extra = ["-c", "1"] if name == "worker" else []
    assert in_compose == exec_start(name) + extra


def test_the_units_run_what_operations_md_documents():
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert exec_start("web")[:4] == ["gunicorn", "-c", "recsite/gunicorn.conf.py", "recsite.wsgi"]
    assert "celery -A recsite worker -Q training,celery --prefetch-multiplier 1" in operations
    assert " ".join(exec_start("worker")).startswith(
        "celery -A recsite worker -Q training,celery --prefetch-multiplier 1"
    )
    assert " ".join(exec_start("beat")).startswith("celery -A recsite beat")


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_each_unit_reads_the_environment_file_and_runs_unprivileged(name):
    service = unit(name)["Service"]
    assert service["EnvironmentFile"] == ENV_FILE
    assert service["User"] == "recsite" and service["WorkingDirectory"] == "/srv/recsite/app"


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    """With the virtualenv's path pointed at this one (the units name /srv/recsite/venv)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    venv = Path(sys.executable).parent.parent
    for path in UNITS.values():
        text = path.read_text().replace("/srv/recsite/venv", str(venv))
        (tmp_path / path.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def dockerfile_copies() -> list[str]:
    sources = []
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources.extend(line.split()[1:-1])
    return sources


def test_the_image_copies_the_code_templates_and_static_files():
    copied = set(dockerfile_copies())
    local_apps = {app.split(".")[0] for app in settings.INSTALLED_APPS} & {
        p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
    }
    needed = {
        "manage.py",
        "requirements.lock",
        settings.ROOT_URLCONF.split(".")[0],
        *local_apps,
        *(Path(d).relative_to(ROOT).as_posix() for d in settings.TEMPLATES[0]["DIRS"]),
        *(Path(d).relative_to(ROOT).as_posix() for d in settings.STATICFILES_DIRS),
    }
    assert needed <= {Path(source).name for source in copied}
    for source in copied:
        assert (ROOT / source).exists(), source


def test_the_dockerignore_lets_every_copied_path_through():
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert "*" in lines
    assert {Path(source).name for source in dockerfile_copies()} <= allowed


def test_the_image_and_compose_agree_on_paths():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    env = compose()["services"]["web"]["environment"]
    for name in ("RECSITE_DATA_DIR", "RECSITE_ARTIFACT_DIR", "STATIC_ROOT"):
        assert f"{name}={env[name]}" in dockerfile
    assert "--require-hashes -r /tmp/requirements.lock" in dockerfile
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"alias {env['STATIC_ROOT']}/;" in nginx
