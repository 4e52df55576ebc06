"""Artifact retention as training and beat apply it: after every successful run, and from
the periodic task, with the sweep of partial artifacts where writers leave them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from recommender.artifacts import load_artifact
from recommender.models import VersionStatus
from recommender.selectors import rollback_target_get
from recommender.services import model_version_promote
from tests.processes import ROOT
from training.models import RunStatus, TrainingRun, Trigger
from training.runner import training_run_execute_now
from training.tasks import retain_artifacts

pytestmark = pytest.mark.django_db


@pytest.fixture
def recommender(recommender):
    """The shared small recommender, keeping the artifacts of its newest 3 versions."""
    recommender.versions_kept = 3
    recommender.save()
    return recommender


@pytest.fixture
def train(recommender, django_capture_on_commit_callbacks):
    """A ``manage.py retrain``-style run kept as a candidate, with its after-commit effects
    (retention) executed as they are in production."""

    def train():
        with django_capture_on_commit_callbacks(execute=True):
            run = training_run_execute_now(
                recommender=recommender, trigger=Trigger.CLI, options={"no_promote": True}
            )
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.version is not None, run.decision_reason
        return run

    return train


def directories(artifact_dir: Path) -> set[str]:
    return {path.name for path in (artifact_dir / "default").iterdir()}


def test_eight_retrains_leave_the_kept_the_active_and_the_rollback_target(
    recommender, artifact_dir, train
):
    runs = [train()]
    model_version_promote(version=runs[0].version, reason="first")
    runs.append(train())
    model_version_promote(version=runs[1].version, reason="second")  # v1: rollback target
    runs += [train() for _ in range(6)]

    versions = {run.version.number: run.version for run in runs}
    assert rollback_target_get(recommender=recommender) == versions[1]
    expected = {1, 2, 6, 7, 8}  # rollback target, active, the newest versions_kept=3
    assert directories(artifact_dir) == {Path(versions[n].artifact_uri).name for n in expected}
    for number in expected:
        load_artifact(artifact_dir / versions[number].artifact_uri)  # intact
    deleted = recommender.versions.filter(artifact_deleted_at__isnull=False)
    assert sorted(deleted.values_list("number", flat=True)) == [3, 4, 5]
    assert "retention: pruned default: v5" in TrainingRun.objects.get(pk=runs[-1].pk).log


def test_a_failed_deletion_is_logged_on_the_run_and_does_not_fail_it(
    recommender, artifact_dir, train
):
    recommender.versions_kept = 1
    recommender.save()
    first = train()
    damaged = artifact_dir / first.version.artifact_uri
    (damaged / "manifest.json").unlink()  # no longer an artifact: deletion refuses it

    second = train()

    second.refresh_from_db()
    assert second.status == RunStatus.SUCCEEDED
    assert second.version.status == VersionStatus.CANDIDATE
    assert "retention: pruned default: v1, 1 error(s): default v1:" in second.log
    assert damaged.exists()


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from recommender import artifacts

    write_file = artifacts._save_npy

    def write_then_die(path, array):
        write_file(path, array)
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would, mid-artifact

    artifacts._save_npy = write_then_die
    artifacts.write_artifact(
        sys.argv[1],
        artifacts.artifact_name_new("run-9"),
        arrays={name: np.zeros((2, 2) if name.endswith("embeddings") else 2)
                for name in artifacts.family_arrays("lightfm")} | {
            "seen_indptr": np.zeros(3), "seen_indices": np.zeros(0),
            "item_feature_biases": np.zeros(2), "popularity": np.zeros(2)},
        id_maps={"users": ["u1", "u2"], "items": ["i1", "i2"]},
        meta=artifacts.ArtifactMeta(),
    )
    """
)


def test_the_beat_task_sweeps_the_hidden_directory_of_a_killed_writer(
    recommender, artifact_dir, train
):
    kept = train().version
    folder = artifact_dir / "default"
    writer = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(folder)], cwd=ROOT, capture_output=True
    )
    assert writer.returncode == -signal.SIGKILL, writer.stderr.decode()
    [partial] = [path for path in folder.iterdir() if path.name.startswith(".run-9-")]
    assert ".tmp-" in partial.name and any(partial.iterdir())

    retain_artifacts()  # younger than the hard time limit: maybe a live writer
    assert partial.exists()
    old = partial.stat().st_mtime - django_settings.CELERY_TASK_TIME_LIMIT - 60
    os.utime(partial, (old, old))
    retain_artifacts()

    assert not partial.exists()
    assert directories(artifact_dir) == {Path(kept.artifact_uri).name}


def test_beat_runs_retention_periodically(settings):
    entries = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert retain_artifacts.name in entries
