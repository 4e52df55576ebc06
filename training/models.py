"""Training runs: one row per attempt to train a recommender, whatever triggered it.

The database enforces that a recommender has at most one queued-or-running run; a
duplicate Celery delivery cannot train twice because claiming a run is a conditional
UPDATE from ``queued`` to ``running``; a worker that dies stops heart-beating and the
reaper fails its run, which frees the slot."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from recommender.models import ModelVersion, Recommender

# The log keeps its last LOG_MAX_CHARS characters (about 64 KB).
LOG_MAX_CHARS = 64 * 1024


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Admin"
    API = "api", "API"
    CLI = "cli", "Command line"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


# A run in one of these holds its recommender's training slot.
LIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_STATUSES = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.SKIPPED,
)


class Decision(models.TextChoices):
    NONE = "", "—"
    PROMOTED = "promoted", "Promoted"
    KEPT_CHAMPION = "kept_champion", "Kept the champion"
    REJECTED = "rejected", "Rejected by a gate"
    CANDIDATE = "candidate", "Kept as a candidate (manual policy or --no-promote)"
    DRY_RUN = "dry_run", "Dry run: nothing saved"


class TrainingRun(models.Model):
    recommender = models.ForeignKey(
        Recommender, on_delete=models.CASCADE, related_name="training_runs"
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    triggered_by_label = models.CharField(
        max_length=200, blank=True, default="", help_text='e.g. "cli", "api-key:<prefix>".'
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    cancel_requested = models.BooleanField(
        default=False, help_text="Set on a running run; the pipeline stops between phases."
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="dry_run, no_promote, algorithm, hyper-parameter overrides.",
    )
    hyperparameters = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "What the run fits: the family and every hyper-parameter, resolved when it was "
            "created (recommender.config_schema.run_hyperparameters)."
        ),
    )

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the task was last sent to the broker (empty for a run started in "
        "the foreground); the reaper sends a run queued for long again.",
    )
    worker = models.CharField(max_length=255, blank=True, default="", help_text="host:pid")

    phase = models.CharField(max_length=64, blank=True, default="")
    progress = models.FloatField(default=0.0, help_text="0..1")
    phase_timings = models.JSONField(default=dict, blank=True, help_text="{phase: seconds}")
    log = models.TextField(blank=True, default="", help_text="The last ~64 KB.")

    data_stats = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(
        default=dict, blank=True, help_text='{"candidate": {...}, "popularity": {...}, ...}'
    )
    gate_results = models.JSONField(default=list, blank=True)
    # The auto algorithm's search: one JSON document on the run (like metrics and
    # gate_results) because it is only ever read whole, with its run, and written by that
    # run alone; see training.run_search for its shape.
    search = models.JSONField(
        default=dict,
        blank=True,
        help_text="auto runs: the budget, every trial (family, parameters, validation "
        "metric, seconds, state), the winner and the runner-up.",
    )
    decision = models.CharField(
        max_length=16, choices=Decision.choices, blank=True, default=Decision.NONE
    )
    decision_reason = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_runs",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("start_training_run", "Can start (and cancel) a training run")]
        constraints = [
            # The invariant: at most one queued-or-running run per recommender.
            models.UniqueConstraint(
                fields=["recommender"],
                condition=models.Q(status__in=["queued", "running"]),
                name="training_run_one_live_per_recommender",
            ),
        ]
        indexes = [
            models.Index(fields=["recommender", "-created_at"], name="run_rec_time_idx"),
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat_idx"),
            # /metrics: runs by outcome and the last of each (training/metrics.py), an
            # index-only scan on PostgreSQL (INCLUDE is ignored elsewhere).
            models.Index(
                fields=["recommender", "status", "finished_at"],
                include=["decision"],
                name="run_rec_status_finished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} of {self.recommender_id} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        """Wall time from claim to finish, or so far while running; None before it starts."""
        if self.started_at is None:
            return None
        end = self.finished_at or (timezone.now() if self.status == RunStatus.RUNNING else None)
        return (end - self.started_at).total_seconds() if end else None
