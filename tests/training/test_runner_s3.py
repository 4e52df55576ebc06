"""Training runs publishing to an S3 artifact store (moto's real server on loopback):
the version row is created only after the upload is complete; a cut upload fails the
run with its code and leaves no row and no visible artifact."""

from __future__ import annotations

import pytest

from recommender.artifact_store import artifact_load
from recommender.models import ModelVersion
from tests.s3_server import CuttingProxy
from training.models import RunStatus, Trigger
from training.runner import training_run_execute_now

pytestmark = pytest.mark.django_db


def manifests(s3_store) -> list[str]:
    return [key for key in s3_store.keys() if key.endswith("/manifest.json")]


def test_a_run_uploads_its_artifact_before_the_version_row(recommender, s3_store, tmp_path):
    run = training_run_execute_now(recommender=recommender, trigger=Trigger.CLI)

    assert run.status == RunStatus.SUCCEEDED, run.error
    version = run.version
    assert manifests(s3_store) == [f"artifacts/{version.artifact_uri}/manifest.json"]
    assert version.artifact_uri.startswith("default/run-")
    assert "published" in run.log
    # Any host can fetch and verify it by the row's digest.
    loaded = artifact_load(uri=version.artifact_uri, sha256=version.artifact_sha256)
    assert loaded.sha256 == version.artifact_sha256


def test_a_cut_upload_fails_the_run_and_leaves_no_row_and_no_visible_artifact(
    recommender, s3_store, settings
):
    proxy = CuttingProxy(s3_store.server.port, budget=4096)
    settings.AWS_S3_ENDPOINT_URL = proxy.url
    try:
        run = training_run_execute_now(recommender=recommender, trigger=Trigger.CLI)
    finally:
        proxy.close()

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("artifact: ArtifactUploadFailed:"), run.error
    assert run.error.endswith("[artifact_upload_failed]"), run.error
    assert not ModelVersion.objects.exists()
    assert manifests(s3_store) == []
    staging = settings.RECSITE_ARTIFACT_CACHE_DIR / ".staging" / "default"
    assert not staging.exists() or list(staging.iterdir()) == []  # the local copy too
