"""``manage.py check_artifacts``: rows without artifacts, artifacts without rows, checksum
mismatches, and ``--fix`` deleting orphans only."""

from __future__ import annotations

import os
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from recommender.artifacts import ArtifactMeta, artifact_name_new, write_artifact
from tests.factories import ModelVersionFactory, RecommenderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(artifact_dir):
    recommender = RecommenderFactory(name="default")
    return [ModelVersionFactory(recommender=recommender) for _ in range(2)]


def check(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_artifacts", *args, stdout=out)
    except SystemExit as exit:
        return int(exit.code), out.getvalue()
    return 0, out.getvalue()


def orphan(artifact_dir: Path, age: float = 0.0) -> Path:
    """An artifact no row points at (e.g. written after the backup a restore came from)."""
    path = write_artifact(
        artifact_dir / "default",
        artifact_name_new("run-99"),
        arrays={
            "user_embeddings": np.zeros((1, 2)),
            "user_biases": np.zeros(1),
            "item_embeddings": np.zeros((1, 2)),
            "item_biases": np.zeros(1),
            "item_feature_embeddings": np.zeros((1, 2)),
            "item_feature_biases": np.zeros(1),
            "popularity": np.zeros(1),
            "seen_indptr": np.zeros(2),
            "seen_indices": np.zeros(0),
        },
        id_maps={"users": ["u"], "items": ["i"]},
        meta=ArtifactMeta(),
    ).path
    if age:
        then = (path / "manifest.json").stat().st_mtime - age
        os.utime(path / "manifest.json", (then, then))
    return path


def test_a_consistent_directory_exits_0(versions):
    code, out = check()
    assert code == 0, out
    assert "2 version row(s)" in out and "0 missing, 0 damaged, 0 orphan(s)" in out


def test_a_row_without_its_artifact_exits_3(versions, artifact_dir):
    shutil.rmtree(artifact_dir / versions[0].artifact_uri)
    code, out = check()
    assert code == 3
    assert f"row without artifact: default v1 ({versions[0].artifact_uri}): missing_file" in out


def test_a_checksum_mismatch_exits_3(versions, artifact_dir):
    path = artifact_dir / versions[1].artifact_uri / "item_biases.npy"
    path.write_bytes(path.read_bytes()[:-4] + b"\x00\x00\x80\x7f")  # same size, other bytes
    code, out = check()
    assert code == 3
    assert "checksum mismatch: default v2" in out and "fails its sha256" in out
    assert check("--no-verify")[0] == 0  # presence only


def test_an_artifact_without_a_row_exits_1(versions, artifact_dir):
    path = orphan(artifact_dir)
    code, out = check()
    assert code == 1
    assert f"artifact without row: {path.resolve()}" in out


def test_fix_deletes_old_orphans_and_never_an_artifact_a_row_points_at(versions, artifact_dir):
    path = orphan(artifact_dir, age=7200)
    code, out = check("--fix", "--min-age", "3600")
    assert code == 0, out
    assert f"deleted orphan: {path.resolve()}" in out
    assert not path.exists()
    for version in versions:
        assert (artifact_dir / version.artifact_uri / "manifest.json").is_file()


def test_fix_keeps_an_orphan_younger_than_min_age(versions, artifact_dir):
    path = orphan(artifact_dir)  # maybe a run whose version row has not committed yet
    code, out = check("--fix")
    assert code == 1
    assert path.exists()
    assert "1 orphan(s) kept (younger than --min-age)" in out


def test_an_artifact_of_a_version_marked_deleted_is_an_orphan(versions, artifact_dir):
    """Retention marked the row, then failed to delete the files: --fix finishes it."""
    old = versions[0]
    old.artifact_deleted_at = old.created_at
    old.save(update_fields=["artifact_deleted_at"])
    code, _ = check("--fix", "--min-age", "0")
    assert code == 0
    assert not (artifact_dir / old.artifact_uri).exists()
    assert (artifact_dir / versions[1].artifact_uri).exists()


def test_a_directory_that_is_not_an_artifact_is_reported_and_left_alone(versions, artifact_dir):
    stranger = artifact_dir / "default" / "notes"
    stranger.mkdir()
    code, out = check("--fix", "--min-age", "0")
    assert code == 0
    assert f"not an artifact (left alone): {stranger.resolve()}" in out
    assert stranger.exists()


def test_a_negative_min_age_is_a_bad_argument(versions):
    with pytest.raises(CommandError) as caught:
        call_command("check_artifacts", "--fix", "--min-age", "-1")
    assert caught.value.returncode == 2
