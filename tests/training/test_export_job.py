"""The admin's "Export recommendations": a job row, the Celery task (eager, as the suite
runs tasks) writing the file to the artifact store, a download link with the same lines
as the command; the export retention. The same against a real S3 server (moto's):
``test_export_job_s3.py``."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from recommender.artifact_check import artifacts_check
from recommender.exports.retention import exports_retain
from recommender.exports.services import export_job_create, export_job_execute
from recommender.models import ExportJob, ExportStatus, Recommender
from tests.training.conftest import export_version
from training.tasks import retain_exports  # registers the tasks, as a worker's autodiscovery does

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]


@pytest.fixture
def version(artifact_dir):
    return export_version()


def run_export(admin_client, version, capture) -> ExportJob:
    with capture(execute=True):
        admin_client.post(
            reverse("admin:recommender_modelversion_changelist"),
            {"action": "export_recommendations", "_selected_action": [version.pk]},
        )
    return ExportJob.objects.get()


def test_the_admin_action_runs_the_task_and_offers_the_file(
    admin_client, admin_user, version, tmp_path, artifact_dir, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:recommender_modelversion_changelist"),
            {"action": "export_recommendations", "_selected_action": [version.pk]},
        )
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert (job.status, job.error) == (ExportStatus.SUCCEEDED, "")
    assert (job.actor, job.actor_label) == (admin_user, admin_user.get_username())
    assert (job.users_done, job.users_total, job.fallback_users) == (3, 3, 1)
    assert job.path == f"exports/default/export-{job.pk}-v1.jsonl"
    assert (artifact_dir / job.path).is_file()  # in the store, nothing left beside it
    assert [p.name for p in (artifact_dir / "exports" / "default").iterdir()] == [
        f"export-{job.pk}-v1.jsonl"
    ]

    listing = admin_client.get(reverse("admin:recommender_exportjob_changelist"))
    download = reverse("admin:recommender_exportjob_download", args=[job.pk])
    assert download in listing.content.decode()
    response = admin_client.get(download)
    assert response["Content-Disposition"] == (f'attachment; filename="export-{job.pk}-v1.jsonl"')
    body = b"".join(response.streaming_content).decode()

    expected = tmp_path / "command.jsonl"
    call_command(
        "export_recommendations", "--output", str(expected), "--no-progress", "--workers", "1"
    )
    assert body == expected.read_text()
    assert [json.loads(line)["user_id"] for line in body.splitlines()] == [
        "stranger", "user-0", "user-1",
    ]  # fmt: skip


def test_a_job_that_cannot_load_its_artifact_fails_with_the_reason(
    version, django_capture_on_commit_callbacks
):
    version.artifact_uri = "default/gone"
    version.save(update_fields=["artifact_uri"])
    with django_capture_on_commit_callbacks(execute=True):
        job = export_job_create(version=version, actor=None, actor_label="test")
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED
    assert job.error
    assert job.path == ""


def test_a_redelivered_job_is_not_run_twice(version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = export_job_create(version=version, actor=None, actor_label="test", fmt="csv")
    job.refresh_from_db()
    finished = job.finished_at
    export_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.finished_at) == (ExportStatus.SUCCEEDED, finished)
    assert job.path.endswith(".csv")


def test_exporting_needs_the_permission(client, django_user_model, version):
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_modelversion", "view_exportjob"])
    )
    client.force_login(staff)
    response = client.post(
        reverse("admin:recommender_modelversion_changelist"),
        {"action": "export_recommendations", "_selected_action": [version.pk]},
    )
    # Django leaves out an action the user may not run: back to the list, nothing queued.
    assert response.status_code == 302
    assert not ExportJob.objects.exists()


def test_export_files_are_not_artifacts_for_check_artifacts(
    admin_client, version, django_capture_on_commit_callbacks
):
    run_export(admin_client, version, django_capture_on_commit_callbacks)
    report = artifacts_check()
    assert (report.unknown, report.partial, report.orphans) == ([], [], [])
    assert report.rows_ok


def test_exports_is_a_reserved_recommender_name(db):
    with pytest.raises(ValidationError) as caught:
        Recommender(name="exports").full_clean()
    assert "name" in caught.value.error_dict


def test_retention_deletes_old_files_and_the_link_says_so(
    admin_client, version, artifact_dir, settings, django_capture_on_commit_callbacks
):
    settings.RECSITE_EXPORT_RETENTION_DAYS = 7
    job = run_export(admin_client, version, django_capture_on_commit_callbacks)
    download = reverse("admin:recommender_exportjob_download", args=[job.pk])

    kept = exports_retain(now=timezone.now() + timedelta(days=6))
    assert (kept.deleted, kept.marked, kept.errors) == ([], 0, [])
    assert admin_client.get(download).status_code == 200

    later = timezone.now() + timedelta(days=8)
    result = exports_retain(now=later)
    assert (result.deleted, result.marked, result.errors) == ([job.path], 1, [])
    assert not (artifact_dir / job.path).exists()
    job.refresh_from_db()
    assert job.file_deleted_at == later
    assert admin_client.get(download).status_code == 404
    listing = admin_client.get(reverse("admin:recommender_exportjob_changelist"))
    assert f"deleted {later:%Y-%m-%d}" in listing.content.decode()


def test_a_file_deleted_by_hand_answers_404(
    admin_client, version, artifact_dir, django_capture_on_commit_callbacks
):
    job = run_export(admin_client, version, django_capture_on_commit_callbacks)
    (artifact_dir / job.path).unlink()
    download = reverse("admin:recommender_exportjob_download", args=[job.pk])
    assert admin_client.get(download).status_code == 404


def test_the_sweep_removes_a_killed_jobs_partial_file_once_old(artifact_dir, settings, db):
    folder = artifact_dir / "exports" / "default"
    folder.mkdir(parents=True)
    partial = folder / ".export-9-v1.jsonl.partial-0123abcd"
    partial.write_text("half a file")
    now = timezone.now()
    assert exports_retain(now=now).swept == []
    later = now + timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    assert exports_retain(now=later).swept == [str(partial)]
    assert not partial.exists()


def test_beat_runs_export_retention(settings):
    entries = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()]
    assert retain_exports.name in entries
