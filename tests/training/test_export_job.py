"""The admin's "Export recommendations": a job row, the Celery task (eager, as the suite
runs tasks) writing the file, a download link with the same lines as the command."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from recommender.exports.services import export_job_create, export_job_execute
from recommender.models import ExportJob, ExportStatus, Item
from recsite.celery import app
from tests.factories import EventFactory
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec
from training import tasks  # noqa: F401  (registered, as a worker's autodiscovery does)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def eager():
    """Tasks run in this process (``CELERY_TASK_ALWAYS_EAGER``, as in development)."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def version(artifact_dir, settings, tmp_path):
    settings.RECSITE_EXPORT_DIR = tmp_path / "exports"
    spec = default_spec()
    create_catalog(spec)
    version = create_version(spec)
    for n, user in enumerate(["user-0", "user-1", "stranger"]):
        EventFactory(
            event_id=f"e{n}", user_external_id=user, item=Item.objects.get(external_id="item-4")
        )
    return version


def test_the_admin_action_runs_the_task_and_offers_the_file(
    admin_client, admin_user, version, tmp_path, django_capture_on_commit_callbacks
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
    assert job.path.startswith(str(tmp_path / "exports" / "default"))

    listing = admin_client.get(reverse("admin:recommender_exportjob_changelist"))
    download = reverse("admin:recommender_exportjob_download", args=[job.pk])
    assert download in listing.content.decode()
    body = b"".join(admin_client.get(download).streaming_content).decode()

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
