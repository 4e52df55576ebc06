"""The S3 artifact store against a real S3 protocol server on loopback (moto's server,
``tests/s3_server.py``): publishing (manifest last), a cut upload, the host cache, a
store that stops answering, promote / rollback refusals, retention and
``check_artifacts``."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

from recommender.artifact_store import (
    artifact_load,
    artifact_publish,
    artifact_store,
    artifact_store_health,
    artifacts_sweep,
)
from recommender.artifacts import ArtifactError
from recommender.exceptions import (
    ArtifactStoreUnavailable,
    ArtifactUploadFailed,
    VersionNotPromotable,
)
from recommender.services.registry import model_version_promote, model_version_rollback
from recommender.services.retention import artifacts_retain
from tests.recommender.serving_helpers import create_version, default_spec, write_spec_artifact
from tests.s3_server import CuttingProxy

pytestmark = pytest.mark.django_db


def manifests(s3_store) -> list[str]:
    return [key for key in s3_store.keys() if key.endswith("/manifest.json")]


def test_a_published_artifact_is_in_the_bucket_and_loads_verified_from_the_cache(
    s3_store, settings
):
    info = write_spec_artifact(default_spec(), "v1")
    name = artifact_publish(info)

    assert name == "default/v1"
    assert f"artifacts/{name}/manifest.json" in s3_store.keys()
    assert f"artifacts/{name}/item_embeddings.npy" in s3_store.keys()
    # The staged copy moved into this host's cache, keyed by the manifest's digest.
    assert not info.path.exists()
    cached = settings.RECSITE_ARTIFACT_CACHE_DIR / info.sha256
    assert (cached / "manifest.json").is_file()

    loaded = artifact_load(uri=name, sha256=info.sha256)
    assert loaded.path == cached
    assert loaded.sha256 == info.sha256


def test_another_host_downloads_verifies_and_caches(s3_store, settings, tmp_path):
    info = write_spec_artifact(default_spec(), "v1")
    name = artifact_publish(info)
    other_cache = tmp_path / "other-host-cache"
    with override_settings(RECSITE_ARTIFACT_CACHE_DIR=other_cache):
        loaded = artifact_load(uri=name, sha256=info.sha256)
    assert loaded.path == other_cache / info.sha256
    assert sorted(p.name for p in loaded.path.iterdir()) == sorted(
        ["manifest.json", *loaded.manifest["files"]]
    )


def test_a_damaged_object_in_the_store_is_refused_and_never_cached(s3_store, tmp_path):
    info = write_spec_artifact(default_spec(), "v1")
    name = artifact_publish(info)
    key = f"artifacts/{name}/item_embeddings.npy"
    body = bytearray(s3_store.client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read())
    body[-1] ^= 0xFF
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=key, Body=bytes(body))

    other_cache = tmp_path / "other-host-cache"
    with override_settings(RECSITE_ARTIFACT_CACHE_DIR=other_cache):
        with pytest.raises(ArtifactError) as caught:
            artifact_load(uri=name, sha256=info.sha256)
    assert caught.value.code == "checksum_mismatch"
    assert not (other_cache / info.sha256).exists()
    assert [p.name for p in other_cache.iterdir()] == []  # the download was removed


def test_a_manifest_that_is_not_the_rows_is_refused(s3_store, tmp_path):
    info = write_spec_artifact(default_spec(), "v1")
    name = artifact_publish(info)
    with override_settings(RECSITE_ARTIFACT_CACHE_DIR=tmp_path / "other"):
        with pytest.raises(ArtifactError) as caught:
            artifact_load(uri=name, sha256="0" * 64)
    assert caught.value.code == "checksum_mismatch"


def test_the_cache_keeps_at_most_the_configured_number_of_versions(s3_store, settings):
    settings.RECSITE_ARTIFACT_CACHE_MAX_VERSIONS = 2
    published = [
        (artifact_publish(info), info.sha256)
        for info in (write_spec_artifact(default_spec(seed=s), f"v{s}") for s in (1, 2, 3))
    ]
    cache = settings.RECSITE_ARTIFACT_CACHE_DIR
    held = {p.name for p in cache.iterdir() if not p.name.startswith(".")}
    assert held == {published[1][1], published[2][1]}  # the least recently used went

    artifact_load(uri=published[0][0], sha256=published[0][1])  # downloaded again
    held = {p.name for p in cache.iterdir() if not p.name.startswith(".")}
    assert len(held) == 2 and published[0][1] in held


def test_a_cut_upload_fails_with_a_code_and_leaves_nothing_visible(s3_store, settings):
    proxy = CuttingProxy(s3_store.server.port, budget=4096)
    settings.AWS_S3_ENDPOINT_URL = proxy.url
    spec = default_spec(n_users=200, dim=16)
    info = write_spec_artifact(spec, "v1")
    try:
        with pytest.raises(ArtifactUploadFailed) as caught:
            artifact_publish(info)
    finally:
        proxy.close()
    assert caught.value.code == "artifact_upload_failed"
    assert proxy.cuts > 0
    assert manifests(s3_store) == []  # no reader ever sees it
    assert not info.path.exists() or (info.path / "manifest.json").is_file()  # local copy


def test_objects_without_a_manifest_are_swept_once_old(s3_store):
    s3_store.client.put_object(
        Bucket=s3_store.bucket, Key="artifacts/default/run-9-cut/user_biases.npy", Body=b"x"
    )
    assert artifacts_sweep(older_than=3600, now=time.time()) == []
    swept = artifacts_sweep(older_than=3600, now=time.time() + 7200)
    assert swept == [f"s3://{s3_store.bucket}/artifacts/default/run-9-cut/"]
    assert s3_store.keys() == []


def test_a_stopped_store_is_unavailable_and_reported(s3_store, tmp_path):
    info = write_spec_artifact(default_spec(), "v1")
    name = artifact_publish(info)
    assert artifact_store_health()["ok"] is True
    s3_store.server.stop()
    artifact_store()._health = None  # the probe is cached for a few seconds
    with override_settings(RECSITE_ARTIFACT_CACHE_DIR=tmp_path / "other"):
        with pytest.raises(ArtifactStoreUnavailable) as caught:
            artifact_load(uri=name, sha256=info.sha256)
        health = artifact_store_health()
    assert caught.value.code == "artifact_store_unavailable"
    assert caught.value.status == 503
    assert health["ok"] is False and health["kind"] == "s3" and "error" in health


def test_promote_and_rollback_are_refused_while_the_store_is_down(s3_store, settings, tmp_path):
    v1 = create_version(default_spec())
    v2 = create_version(default_spec(seed=5), promote=False)
    s3_store.server.stop()
    settings.RECSITE_ARTIFACT_CACHE_DIR = tmp_path / "admin-host"  # nothing cached here

    with pytest.raises(ArtifactStoreUnavailable) as caught:
        model_version_promote(version=v2, reason="store down")
    assert caught.value.detail["version"] == 2
    v1.refresh_from_db()
    assert v1.status == "active"

    s3_store.server.start()
    model_version_promote(version=v2, reason="store back")
    s3_store.server.stop()
    artifact_store()._health = None
    settings.RECSITE_ARTIFACT_CACHE_DIR = tmp_path / "another-admin-host"
    with pytest.raises(ArtifactStoreUnavailable):
        model_version_rollback(recommender=v1.recommender, reason="store down")


def test_promote_refuses_a_version_whose_artifact_is_not_in_the_store(s3_store, tmp_path):
    create_version(default_spec())
    v2 = create_version(default_spec(seed=5), promote=False)
    s3_store.client.delete_object(
        Bucket=s3_store.bucket, Key=f"artifacts/{v2.artifact_uri}/manifest.json"
    )
    with override_settings(RECSITE_ARTIFACT_CACHE_DIR=tmp_path / "admin-host"):
        with pytest.raises(VersionNotPromotable) as caught:
            model_version_promote(version=v2, reason="gone")
    assert caught.value.detail["artifact_error"] == "missing_file"


def test_retention_deletes_pruned_artifacts_from_the_bucket(s3_store):
    versions = [create_version(default_spec(seed=s)) for s in (1, 2, 3, 4)]
    recommender = versions[0].recommender
    recommender.versions_kept = 1
    recommender.save()

    result = artifacts_retain(recommender=recommender)

    assert result.pruned == {"default": [2, 1]}
    assert result.errors == []
    kept = {m.split("/")[2] for m in manifests(s3_store)}
    assert kept == {"v3", "v4"}  # the active version and the rollback target


def check(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_artifacts", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_check_artifacts_finds_missing_damaged_and_orphans_in_the_bucket(s3_store):
    v1 = create_version(default_spec(seed=1))
    v2 = create_version(default_spec(seed=2))
    orphan = artifact_publish(write_spec_artifact(default_spec(seed=3), "orphan"))
    code, out = check()
    assert code == 1, out
    assert f"artifact store s3://{s3_store.bucket}/artifacts: 2 version row(s)" in out
    assert f"artifact without row: s3://{s3_store.bucket}/artifacts/{orphan}/" in out

    code, out = check("--fix", "--min-age", "0")
    assert code == 0, out
    assert f"deleted orphan: s3://{s3_store.bucket}/artifacts/{orphan}/" in out
    assert len(manifests(s3_store)) == 2

    key = f"artifacts/{v2.artifact_uri}/item_biases.npy"
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"not the array")
    s3_store.client.delete_object(
        Bucket=s3_store.bucket, Key=f"artifacts/{v1.artifact_uri}/manifest.json"
    )
    code, out = check()
    assert code == 3, out
    assert f"row without artifact: default v1 ({v1.artifact_uri}): missing_file" in out
    assert "checksum mismatch: default v2" in out
    code, out = check("--no-verify")
    assert code == 3 and "size_mismatch" in out
