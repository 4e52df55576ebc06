"""The online loop's data: the lists served, the attribution cursor and its aggregates,
experiments with their arms and audit trail.

``recommender/models.py`` imports this module so Django registers the models in the
``recommender`` app; models of that module are referenced here by name
(``"recommender.Recommender"``), so neither module imports the other's names."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from recommender.ids import MAX_ID_LENGTH

ARM_NAME_MAX_LENGTH = 64
CONTROL_ARM = "control"


class ServedListKind(models.TextChoices):
    RECOMMENDATIONS = "recommendations", "Recommendations for a user"
    SIMILAR = "similar", "Items similar to an item"


class ServedList(models.Model):
    """One list a client was shown: written in batches off the request path
    (``recommender.online.recording``), deleted after ``RECSITE_SERVED_RETENTION_DAYS``.
    Items are kept as external ids (a deleted item does not change what was shown);
    the item at ``item_ids[i]`` was shown at position ``first_position + i``."""

    # The response's recommendation_id: a UUIDv7, so the key is time-ordered.
    id = models.UUIDField(primary_key=True, editable=False)
    recommender = models.ForeignKey(
        "recommender.Recommender", on_delete=models.CASCADE, related_name="+"
    )
    model_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version that ranked it; empty: popularity fallback."
    )
    experiment = models.ForeignKey(
        "recommender.Experiment",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,  # experiments are never deleted; no check on the COPY path
    )
    arm = models.CharField(max_length=ARM_NAME_MAX_LENGTH, blank=True, default="")
    user_external_id = models.CharField(
        max_length=MAX_ID_LENGTH, blank=True, default="", help_text="Empty for similar items."
    )
    kind = models.CharField(max_length=16, choices=ServedListKind.choices)
    first_position = models.PositiveIntegerField(default=1)
    item_ids = models.JSONField(default=list)
    sources = models.JSONField(
        default=list, help_text='Per item, what ranked it: e.g. "model", "popularity".'
    )
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            # attribution: a user's lists before an event
            models.Index(fields=["user_external_id", "created_at"], name="served_user_time_idx"),
            # retention and the attribution pass over new lists
            models.Index(fields=["created_at"], name="served_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.kind}, {len(self.item_ids)} items)"


class AttributionCursor(models.Model):
    """Where the attribution pass stopped; one row (``name="default"``), locked by the
    pass, so passes never overlap and a pass that fails changes nothing."""

    name = models.CharField(max_length=32, unique=True)
    last_event_id = models.BigIntegerField(default=0, help_text="Events up to this key are done.")
    lists_done_until = models.DateTimeField(
        null=True, blank=True, help_text="Served lists created up to this time are counted."
    )
    events_attributed = models.PositiveBigIntegerField(default=0)
    events_unattributed = models.PositiveBigIntegerField(default=0)
    unknown_ids = models.PositiveBigIntegerField(
        default=0, help_text="Events naming a recommendation_id that matches no list."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"attribution cursor {self.name}: event {self.last_event_id}"


class OnlineHourly(models.Model):
    """Counts per hour, recommender, version, experiment arm and position: ``lists``
    (counted on the row of the list's first position), ``impressions`` (items shown),
    ``clicks`` and ``conversions`` (attributed events whose type the recommender counts
    as such). Version 0: the popularity fallback (no model)."""

    hour = models.DateTimeField()
    recommender = models.ForeignKey(
        "recommender.Recommender", on_delete=models.CASCADE, related_name="+"
    )
    model_version = models.PositiveIntegerField(default=0)
    experiment_id = models.BigIntegerField(default=0, help_text="0: no experiment.")
    arm = models.CharField(max_length=ARM_NAME_MAX_LENGTH, blank=True, default="")
    position = models.PositiveIntegerField()
    lists = models.PositiveBigIntegerField(default=0)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    conversions = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["recommender", "hour", "model_version", "experiment_id", "arm", "position"],
                name="online_hourly_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h v{self.model_version} {self.arm} #{self.position}"


class ExperimentUserStat(models.Model):
    """Per experiment, arm and user: what the per-user experiment metric needs."""

    experiment = models.ForeignKey(
        "recommender.Experiment", on_delete=models.CASCADE, related_name="user_stats"
    )
    arm = models.CharField(max_length=ARM_NAME_MAX_LENGTH)
    user_external_id = models.CharField(max_length=MAX_ID_LENGTH)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    conversions = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "arm", "user_external_id"], name="experiment_user_stat_key"
            )
        ]
        indexes = [models.Index(fields=["user_external_id"], name="experiment_user_idx")]

    def __str__(self) -> str:
        return f"{self.experiment_id}/{self.arm}/{self.user_external_id}"


class ExperimentStatus(models.TextChoices):
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class PrimaryMetric(models.TextChoices):
    CTR = "ctr", "Clicks per impression (per user)"
    CONVERSION_RATE = "conversion_rate", "Conversions per impression (per user)"


class Experiment(models.Model):
    """An A/B test on one recommender's traffic. Users are assigned to arms by a hash of
    (salt, user id) (``recommender.online.assignment.arm_for``): sticky, nothing stored.
    At most one running experiment per recommender, enforced by the database."""

    recommender = models.ForeignKey(
        "recommender.Recommender", on_delete=models.CASCADE, related_name="experiments"
    )
    name = models.CharField(max_length=200)
    primary_metric = models.CharField(
        max_length=32, choices=PrimaryMetric.choices, default=PrimaryMetric.CTR
    )
    salt = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.RUNNING
    )
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [("manage_experiment", "Can start and stop experiments")]
        constraints = [
            models.UniqueConstraint(
                fields=["recommender"],
                condition=models.Q(status="running"),
                name="experiment_one_running",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class ExperimentArm(models.Model):
    """One arm: the version it serves (of the experiment's recommender, or another one
    for a treatment) and its share of the users. The control is the version active when
    the experiment started."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    name = models.CharField(max_length=ARM_NAME_MAX_LENGTH)
    order = models.PositiveSmallIntegerField()
    version = models.ForeignKey(
        "recommender.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    share = models.FloatField()

    class Meta:
        ordering = ["experiment", "order"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="experiment_arm_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.share:.0%})"


class ExperimentEventKind(models.TextChoices):
    CREATE = "create", "Started"
    STOP = "stop", "Stopped"
    PROMOTE = "promote", "Winner promoted"


class ExperimentEvent(models.Model):
    """The audit trail of experiments: every state change is one row."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=ExperimentEventKind.choices)
    arm = models.CharField(max_length=ARM_NAME_MAX_LENGTH, blank=True, default="")
    promotion = models.ForeignKey(
        "recommender.PromotionEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.experiment_id}"
