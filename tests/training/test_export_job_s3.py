"""Export jobs with the S3 artifact store, against a real S3 protocol server on loopback
(moto's, ``tests/s3_server.py``): the file is uploaded under ``exports/``, the download
link redirects to a presigned URL (or streams through the web host), multipart uploads
are all-or-nothing, the artifact side of the store ignores exports, and retention
deletes old files and aborts killed jobs' uploads."""

import urllib.request
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from recommender.artifact_check import artifacts_check
from recommender.artifact_store import artifacts_sweep, store_objects
from recommender.artifact_store.objects import S3Objects
from recommender.artifact_store.uri import S3Location
from recommender.exports.retention import exports_retain
from recommender.models import ExportJob, ExportStatus
from tests.training.conftest import export_version

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]

MIB = 1024 * 1024


@pytest.fixture
def version(s3_store):
    return export_version()


@pytest.fixture
def job(admin_client, version, django_capture_on_commit_callbacks) -> ExportJob:
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:recommender_modelversion_changelist"),
            {"action": "export_recommendations", "_selected_action": [version.pk]},
        )
    job = ExportJob.objects.get()
    assert (job.status, job.error) == (ExportStatus.SUCCEEDED, "")
    return job


def command_output(tmp_path) -> str:
    out = tmp_path / "command.jsonl"
    call_command("export_recommendations", "--output", str(out), "--no-progress")
    return out.read_text()


def test_the_file_is_in_the_bucket_and_the_link_redirects_to_a_presigned_url(
    job, admin_client, s3_store, tmp_path
):
    key = f"artifacts/exports/default/export-{job.pk}-v1.jsonl"
    assert key in s3_store.keys()
    response = admin_client.get(reverse("admin:recommender_exportjob_download", args=[job.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(f"{s3_store.server.url}/{s3_store.bucket}/{key}?")
    with urllib.request.urlopen(response["Location"]) as fetched:  # what the browser does
        body = fetched.read().decode()
        disposition = fetched.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="export-{job.pk}-v1.jsonl"'
    assert body == command_output(tmp_path)
    assert len(body.splitlines()) == 3


def test_with_proxy_download_the_web_host_streams_the_file(job, admin_client, settings, tmp_path):
    settings.RECSITE_EXPORT_PROXY_DOWNLOAD = True
    response = admin_client.get(reverse("admin:recommender_exportjob_download", args=[job.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert int(response["Content-Length"]) == len(body.encode())
    assert body == command_output(tmp_path)


def test_a_file_gone_from_the_bucket_answers_404(job, admin_client, s3_store):
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=f"artifacts/{job.path}")
    response = admin_client.get(reverse("admin:recommender_exportjob_download", args=[job.pk]))
    assert response.status_code == 404


def test_exports_are_neither_unknown_nor_swept_as_partial_artifacts(job, s3_store):
    report = artifacts_check()
    assert (report.unknown, report.partial, report.orphans) == ([], [], [])
    now = timezone.now().timestamp()
    assert artifacts_sweep(older_than=0, now=now + 86400) == []
    assert f"artifacts/{job.path}" in s3_store.keys()


def test_a_large_file_goes_up_in_parts_holding_one_part_in_memory(s3_store):
    objects = S3Objects(
        S3Location(s3_store.bucket, "artifacts"), lambda: s3_store.client, part_size=5 * MIB
    )
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with objects.writer("exports/default/big.jsonl") as out:
        for _ in range(11):
            out.write(chunk)
            assert len(out.buffer) < 5 * MIB
        assert "artifacts/exports/default/big.jsonl" not in s3_store.keys()  # not yet
    assert [part["PartNumber"] for part in out.parts] == [1, 2, 3]
    stream, size = objects.open("exports/default/big.jsonl")
    assert size == 11 * MIB
    assert stream.read() == chunk * 11


def test_a_failed_writer_leaves_no_object_and_no_upload(s3_store):
    objects = S3Objects(
        S3Location(s3_store.bucket, "artifacts"), lambda: s3_store.client, part_size=5 * MIB
    )
    with pytest.raises(RuntimeError):
        with objects.writer("exports/default/cut.jsonl") as out:
            out.write(b"x" * 6 * MIB)  # one part uploaded
            raise RuntimeError("the ranking failed")
    assert s3_store.keys() == []
    uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []


def test_retention_deletes_old_files_and_aborts_a_killed_jobs_upload(
    job, admin_client, s3_store, settings
):
    killed = s3_store.client.create_multipart_upload(
        Bucket=s3_store.bucket, Key="artifacts/exports/default/export-99-v1.jsonl"
    )
    s3_store.client.upload_part(
        Bucket=s3_store.bucket,
        Key="artifacts/exports/default/export-99-v1.jsonl",
        UploadId=killed["UploadId"],
        PartNumber=1,
        Body=b"half",
    )
    settings.RECSITE_EXPORT_RETENTION_DAYS = 7
    first = exports_retain(now=timezone.now())
    assert (first.deleted, first.marked, first.errors) == ([], 0, [])
    # moto reports every upload as initiated on 2010-11-10, so its age check cannot be
    # seen here (the file store's test checks it): the killed upload goes at once.
    assert first.swept == [
        f"s3://{s3_store.bucket}/artifacts/exports/default/export-99-v1.jsonl (upload)"
    ]
    assert f"artifacts/{job.path}" in s3_store.keys()

    later = timezone.now() + timedelta(days=8)
    result = exports_retain(now=later)
    assert (result.deleted, result.marked, result.errors) == ([job.path], 1, [])
    assert s3_store.keys() and not any("exports/" in key for key in s3_store.keys())
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []
    assert (
        admin_client.get(reverse("admin:recommender_exportjob_download", args=[job.pk])).status_code
        == 404
    )


def test_store_objects_is_the_s3_kind_with_an_s3_store(s3_store):
    assert isinstance(store_objects(), S3Objects)
