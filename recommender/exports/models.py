"""Export jobs: who asked for which version's batch recommendations, how far it got,
where the file is (its key in the artifact store) and when retention deleted it.
``recommender/models.py`` imports this module so Django registers the model in the
``recommender`` app; its models are referenced here by name."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """One batch export of a version's recommendations (``export_job_create`` writes it,
    ``export_job_execute`` moves it on). The row is its own audit trail: who started it,
    when, and how it ended."""

    recommender = models.ForeignKey(
        "recommender.Recommender", on_delete=models.CASCADE, related_name="export_jobs"
    )
    version = models.ForeignKey(
        "recommender.ModelVersion", on_delete=models.PROTECT, related_name="export_jobs"
    )
    status = models.CharField(
        max_length=16, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    format = models.CharField(max_length=8)
    limit = models.PositiveIntegerField(help_text="Items per user.")
    users_total = models.PositiveIntegerField(null=True, blank=True)
    users_done = models.PositiveIntegerField(default=0)
    fallback_users = models.PositiveIntegerField(
        default=0, help_text="Users ranked by popularity (unknown to the model)."
    )
    path = models.CharField(
        max_length=1000,
        blank=True,
        default="",
        help_text="The file's key in the artifact store (exports/<recommender>/...).",
    )
    file_deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the export retention deleted the file."
    )
    error = models.TextField(blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"export #{self.pk} of v{self.version_id} ({self.status})"
