"""The backup and restore procedure of docs/OPERATIONS.md, followed step by step with the
real tools (pg_dump / pg_restore on the test database, tar on the artifact directory):
after a restore from an older backup, training again must not collide with the artifacts
of the runs the database forgot, and ``check_artifacts`` reports those as orphans."""

from __future__ import annotations

import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from recommender.models import ModelVersion, Recommender
from recommender.services import demo_data_generate
from training.models import RunStatus, TrainingRun, Trigger
from training.runner import training_run_execute_now

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def database() -> tuple[list[str], str]:
    """pg_dump / pg_restore connection options and the (test) database name."""
    db = connection.settings_dict
    options = ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432)]
    return [*options, "-U", db["USER"] or "postgres"], db["NAME"]


def sh(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=300)


def check_artifacts(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_artifacts", *args, stdout=out)
    except SystemExit as exit:
        return int(exit.code), out.getvalue()
    return 0, out.getvalue()


def train(recommender: Recommender) -> TrainingRun:
    run = training_run_execute_now(recommender=recommender, trigger=Trigger.CLI)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.version is not None, run.decision_reason
    return run


def test_a_restore_from_an_older_backup_then_training_again_does_not_collide(
    postgres, settings, tmp_path
):
    artifacts = tmp_path / "artifacts"
    settings.RECSITE_ARTIFACT_DIR = artifacts
    demo_data_generate(users=150, items=80, events=6000, seed=7, days=28)
    recommender, _ = Recommender.objects.get_or_create(name="default")
    recommender.algorithm = "lightfm"
    recommender.hyperparameters = {"lightfm": {"epochs": 5, "no_components": 16}}
    recommender.save()
    first = train(recommender)
    options, name = database()

    # Backup: the database first, then the artifact directory.
    sh("pg_dump", "-Fc", "-f", tmp_path / "recsite.dump", *options, name)
    sh("tar", "-C", artifacts, "-cf", tmp_path / "artifacts.tar", ".")

    forgotten = [train(recommender) for _ in range(2)]  # after the backup

    # Restore: the artifact directory first (merged, never overwriting), then the database.
    sh("tar", "-C", artifacts, "-xf", tmp_path / "artifacts.tar", "--skip-old-files")
    connection.close()
    sh("pg_restore", "--clean", "--if-exists", "--no-owner", *options, "-d", name,
       tmp_path / "recsite.dump")  # fmt: skip
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [1]

    code, out = check_artifacts()
    assert code == 1, out  # orphans only: every row has its artifact
    for run in forgotten:
        assert f"artifact without row: {artifacts / run.version.artifact_uri}" in out

    again = train(recommender)
    assert again.pk == forgotten[0].pk  # the id a forgotten run had: "run-<id>" collided
    assert again.version.number == 2
    assert again.version.artifact_uri != forgotten[0].version.artifact_uri

    code, out = check_artifacts("--fix", "--min-age", "0")
    assert code == 0, out
    assert not any((artifacts / run.version.artifact_uri).exists() for run in forgotten)
    for version in (first.version, again.version):
        assert (artifacts / version.artifact_uri / "manifest.json").is_file()
