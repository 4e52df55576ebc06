"""The catalog, user profiles and interaction events.

External ids are strings chosen by the client apps; database ids never leave the
service. Events point at items by foreign key (resolved once per batch at ingest) so
training joins nothing, and are unique on the client's event id so a resent batch is
never stored twice."""

from __future__ import annotations

from collections.abc import Iterable

from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django_celery_beat.validators import crontab_validator
from rest_framework_api_key.models import AbstractAPIKey

from recommender.artifact_store.uri import EXPORTS_PREFIX
from recommender.config_schema import (
    SETTINGS,
    ChampionNoOverlapPolicy,
    DuplicateAggregation,
    HoldoutStrategy,
    PromotionPolicy,
    config_clean,
)

# Registers the export jobs' model in this app (it lives in its own package).
from recommender.exports.models import ExportJob, ExportStatus
from recommender.families import Algorithm
from recommender.ids import MAX_ID_LENGTH

# Registers the online loop's models in this app (they live in their own package).
from recommender.online.models import (
    AttributionCursor,
    Experiment,
    ExperimentArm,
    ExperimentEvent,
    ExperimentUserStat,
    OnlineHourly,
    ServedList,
)

__all__ = [
    "AttributionCursor",
    "Algorithm",
    "ChampionNoOverlapPolicy",
    "DuplicateAggregation",
    "ExportJob",
    "ExportStatus",
    "Experiment",
    "ExperimentArm",
    "ExperimentEvent",
    "ExperimentUserStat",
    "HoldoutStrategy",
    "OnlineHourly",
    "PromotionPolicy",
    "ServedList",
]


class Item(models.Model):
    external_id = models.CharField(max_length=MAX_ID_LENGTH, unique=True)
    title = models.CharField(max_length=500, blank=True, default="")
    active = models.BooleanField(default=True, help_text="Inactive items are never recommended.")
    categories = models.JSONField(
        default=list, blank=True, help_text="Categories / tags: the item features."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]
        indexes = [models.Index(fields=["updated_at"], name="item_updated_idx")]

    def __str__(self) -> str:
        return f"{self.external_id} {self.title}".strip()


class UserProfile(models.Model):
    """Optional user features (demographics, segments); users exist without one."""

    external_id = models.CharField(max_length=MAX_ID_LENGTH, unique=True)
    features = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.external_id


# The client of events the operator loads (``import_dataset``, ``generate_demo_data``) and
# of every event stored before events were scoped by client.
OPERATOR_CLIENT = "operator"
CLIENT_MAX_LENGTH = 64


def api_key_client(name: str) -> str:
    """The client an API key sends events as: its name, so a rotated key (a new key with
    the same name) keeps its app's event ids idempotent, and two apps never share them."""
    return f"api:{name}"


class Event(models.Model):
    client = models.CharField(
        max_length=CLIENT_MAX_LENGTH,
        default=OPERATOR_CLIENT,
        help_text='Who sent it: "api:<key name>", or "operator" (imports, demo data).',
    )
    event_id = models.CharField(
        max_length=MAX_ID_LENGTH,
        help_text="The client's id; unique per client, makes ingestion idempotent.",
    )
    user_external_id = models.CharField(max_length=MAX_ID_LENGTH)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=32)
    weight = models.FloatField(
        null=True, blank=True, help_text="The event's own weight (e.g. a rating); 1 when empty."
    )
    timestamp = models.DateTimeField()
    recommendation_id = models.CharField(max_length=64, blank=True, default="")
    position = models.PositiveIntegerField(
        null=True, blank=True, help_text="Where the client showed the item (1 = first), if sent."
    )
    ingested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # training reads a time window
            models.Index(fields=["timestamp"], name="event_time_idx"),
            # serving reads one user's recent items: with the item in the index (PostgreSQL
            # INCLUDE) that is an index-only scan, ~10x less work than visiting the rows
            models.Index(
                fields=["user_external_id", "-timestamp"],
                name="event_user_time_item_idx",
                include=["item"],
            ),
        ]
        constraints = [
            # Idempotency per client: one app's ids never collide with another's. event_id
            # first, so a lookup by event_id alone (the admin's search) uses it too.
            models.UniqueConstraint(
                fields=["event_id", "client"], name="event_client_event_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.user_external_id} {self.event_type} {self.item_id}"


class EventIngestDay(models.Model):
    """How many events were ingested on one UTC day, counted by the write itself
    (``services.ingest``): the dashboard's chart reads 14 rows instead of counting the
    day's events (a third of a 10M-event table, seconds). Deleting events later (erasure,
    retention) does not change how many were ingested that day."""

    day = models.DateField(unique=True)
    events = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.day}: {self.events}"


class ErasureKind(models.TextChoices):
    USER = "user", "A user's events and profile"
    EVENTS = "events", "Events"
    ITEMS = "items", "Items and their events"
    EXPIRED = "expired", "Events past retention"


class DataErasure(models.Model):
    """The audit trail of data deletions: one row per erasure, written in the same
    transaction as the delete. A user erasure keeps the user's external id: serving
    reads it to stop using the user at once, until a model trained without them is
    active (the id is the client's pseudonym, kept as the record of the request)."""

    kind = models.CharField(max_length=8, choices=ErasureKind.choices)
    subject = models.CharField(
        max_length=255, blank=True, default="", help_text="The user id of a user erasure."
    )
    events_deleted = models.PositiveBigIntegerField(default=0)
    items_deleted = models.PositiveIntegerField(default=0)
    profiles_deleted = models.PositiveIntegerField(default=0)
    detail = models.JSONField(
        default=dict, blank=True, help_text="What was selected, e.g. the first item ids."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=200, blank=True, default="", help_text='e.g. "admin:alice", "api-key:<prefix>".'
    )
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.subject}".strip()


class Scope(models.TextChoices):
    RECOMMENDATIONS_READ = "recommendations:read", "Read recommendations"
    EVENTS_WRITE = "events:write", "Write events"
    CATALOG_WRITE = "catalog:write", "Write the catalog"
    TRAINING_WRITE = "training:write", "Start training runs, promote and roll back"


class ApiKey(AbstractAPIKey):
    """One key per client app, limited to the scopes it needs."""

    scopes = models.JSONField(default=list, help_text="Any of: " + ", ".join(Scope.values))

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


# --- The model registry --------------------------------------------------------------


def default_event_weights() -> dict[str, float]:
    """A new recommender weighs event types as configured in ``RECSITE_EVENT_TYPES``."""
    return dict(settings.RECSITE_EVENT_TYPES)


def default_schedule_timezone() -> str:
    """A new recommender's schedule is in ``RECSITE_SCHEDULE_TIMEZONE`` (UTC by default)."""
    return settings.RECSITE_SCHEDULE_TIMEZONE


def default_click_event_types() -> list[str]:
    """The event types online metrics count as clicks: ``click`` when it is a known type."""
    return [name for name in ("click",) if name in settings.RECSITE_EVENT_TYPES]


def default_conversion_event_types() -> list[str]:
    """The event types online metrics count as conversions: ``purchase`` when known."""
    return [name for name in ("purchase",) if name in settings.RECSITE_EVENT_TYPES]


def validate_schedule_cron(value: str) -> None:
    """A five-field cron expression (``minute hour day-of-month month day-of-week``), read
    in the recommender's ``schedule_timezone``."""
    value = (value or "").strip()
    if not value:
        return
    fields = value.split()
    if len(fields) != 5:
        raise ValidationError(
            f"{value!r} is not a cron expression: give 5 fields (minute hour day-of-month "
            f'month day-of-week), for example "0 3 * * *"; got {len(fields)}.',
            code="invalid_cron",
        )
    try:
        crontab_validator(" ".join(fields))
    except ValidationError as exc:
        raise ValidationError(
            f"{value!r} is not a valid cron expression: {'; '.join(exc.messages)}.",
            code="invalid_cron",
        ) from None
    # Beat builds Celery's crontab from it, which also refuses dates that never occur
    # ("31 2": February 31st); refuse them here rather than crash beat later.
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except ValueError as exc:
        raise ValidationError(
            f"{value!r} is not a valid cron expression: {exc}", code="invalid_cron"
        ) from None


class Recommender(models.Model):
    """One named model: its hyper-parameters, data, evaluation, gates, policy, retention
    and schedule. Most installs have one, ``default`` (created by a data migration).

    The allowed values of every setting are ``recommender.config_schema``'s; full_clean
    (the admin form) checks them with ``clean_fields``."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True, default="")

    # The model family and its hyper-parameters (recommender.families: the one schema)
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices, default=Algorithm.AUTO)
    hyperparameters = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'Per family, the values that differ from its defaults, e.g. {"ease": {"lambda": '
            "500}}; the admin form edits them one field per parameter."
        ),
    )
    num_threads = models.PositiveIntegerField(default=SETTINGS["num_threads"].default)
    random_seed = models.IntegerField(default=SETTINGS["random_seed"].default)
    tuning_budget_seconds = models.PositiveIntegerField(
        default=SETTINGS["tuning_budget_seconds"].default,
        help_text=SETTINGS["tuning_budget_seconds"].help,
    )

    # Data
    event_weights = models.JSONField(
        default=default_event_weights,
        help_text='Weight per event type, e.g. {"view": 1, "like": 3}; other types are ignored.',
    )
    duplicate_aggregation = models.CharField(
        max_length=8, choices=DuplicateAggregation.choices, default=DuplicateAggregation.SUM
    )
    window_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Train on the last N days of events; empty = all."
    )
    use_item_features = models.BooleanField(default=True)
    use_user_features = models.BooleanField(default=False)

    # Evaluation
    holdout_strategy = models.CharField(
        max_length=16, choices=HoldoutStrategy.choices, default=HoldoutStrategy.PER_USER_RECENT
    )
    holdout_fraction = models.FloatField(default=0.2)
    eval_k = models.PositiveIntegerField(default=10)
    key_metric = models.CharField(
        max_length=64,
        default="precision_at_k",
        help_text="The metric the gates and the champion comparison use.",
    )

    # Quality gates: a candidate failing any of them is rejected.
    gate_min_users = models.PositiveIntegerField(default=10)
    gate_min_items = models.PositiveIntegerField(default=10)
    gate_min_events = models.PositiveIntegerField(default=100)
    gate_min_lift_over_popularity = models.FloatField(
        default=0.0,
        help_text=(
            "Relative lift of the key metric over the popularity baseline the candidate "
            "needs: candidate >= popularity * (1 + lift). 0 = must not be worse than "
            "popularity; 0.1 = at least 10% better; negative values tolerate a loss."
        ),
    )
    champion_tolerance = models.FloatField(
        default=0.02,
        help_text=(
            "Relative tolerance against the active version, both measured on the held-out "
            "events newer than the active version's data: the candidate passes when "
            "candidate >= champion * (1 - tolerance)."
        ),
    )
    champion_no_overlap_policy = models.CharField(
        max_length=8,
        choices=ChampionNoOverlapPolicy.choices,
        default=ChampionNoOverlapPolicy.HOLD,
        help_text=(
            "When no held-out event is newer than the active version's data (e.g. a retrain "
            "on unchanged data), the two cannot be compared on the same events: hold the "
            "candidate for staff to promote, or skip the comparison with a warning."
        ),
    )

    # Policy and retention
    promotion_policy = models.CharField(
        max_length=8, choices=PromotionPolicy.choices, default=PromotionPolicy.AUTO
    )
    refit_on_full_data = models.BooleanField(
        default=True,
        help_text="After evaluation, refit on all data (holdout included) before saving.",
    )
    versions_kept = models.PositiveIntegerField(
        default=5,
        help_text=(
            "Artifacts of the newest N versions are kept; older ones are deleted (their "
            "records stay). The active version and the rollback target are always kept."
        ),
    )

    # Online metrics: which attributed events count as clicks and as conversions
    click_event_types = models.JSONField(
        default=default_click_event_types,
        blank=True,
        help_text='Event types counted as clicks in online metrics, e.g. ["click"].',
    )
    conversion_event_types = models.JSONField(
        default=default_conversion_event_types,
        blank=True,
        help_text='Event types counted as conversions in online metrics, e.g. ["purchase"].',
    )

    # Schedule (synced to django-celery-beat by training.schedules.recommender_schedule_sync)
    schedule_cron = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[validate_schedule_cron],
        help_text='Cron expression in the schedule\'s time zone, e.g. "30 18 * * *" (daily at '
        "18:30); empty = no schedule.",
    )
    schedule_timezone = models.CharField(
        max_length=64,
        default=default_schedule_timezone,
        help_text="The IANA time zone the cron is read in, e.g. Europe/London, "
        "America/New_York, Asia/Colombo, UTC. Daylight saving: a time that does not exist "
        "on the day the clocks go forward runs that much later (02:30 -> 03:30); a time "
        "that occurs twice when they go back runs once, the first time.",
    )
    schedule_enabled = models.BooleanField(default=False)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="recommender",
        editable=False,
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean_fields(self, exclude: Iterable[str] | None = None) -> None:
        """Django's own field checks, the reserved name, then the schema's, each error on
        its field."""
        skip = set(exclude or ())
        errors: dict[str, list] = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = dict(exc.error_dict)
        if "name" not in skip and "name" not in errors and self.name == EXPORTS_PREFIX:
            # The artifact store keeps batch exports in that folder, beside the recommenders'.
            errors["name"] = [ValidationError(f"{EXPORTS_PREFIX!r} is a reserved name.")]
        values = {
            name: getattr(self, name)
            for name in SETTINGS
            if name not in skip and name not in errors
        }
        try:
            config_clean(values)
        except ValidationError as exc:
            for name, field_errors in exc.error_dict.items():
                errors.setdefault(name, []).extend(field_errors)
        if errors:
            raise ValidationError(errors)


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"


class ModelVersion(models.Model):
    """One trained model of a recommender, numbered 1, 2, 3... Rows are never deleted:
    retention deletes the artifact and sets ``artifact_deleted_at``."""

    recommender = models.ForeignKey(Recommender, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE
    )
    status_reason = models.TextField(blank=True, default="", help_text="Why it was rejected.")
    artifact_uri = models.CharField(max_length=1000)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.BigIntegerField(help_text="Bytes.")
    artifact_deleted_at = models.DateTimeField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    data_window = models.JSONField(default=dict, blank=True)
    data_stats = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recommender", "-number"]
        permissions = [
            ("promote_modelversion", "Can promote a model version"),
            ("rollback_modelversion", "Can roll back to the previous model version"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["recommender", "number"], name="model_version_number_unique"
            ),
            # The invariant: at most one active version per recommender.
            models.UniqueConstraint(
                fields=["recommender"],
                condition=models.Q(status="active"),
                name="model_version_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recommender_id}/v{self.number} ({self.status})"


class PromotionKind(models.TextChoices):
    AUTO = "auto", "Automatic promotion after training"
    PROMOTE = "promote", "Manual promotion"
    ROLLBACK = "rollback", "Rollback"


class PromotionEvent(models.Model):
    """The audit trail of the active pointer: every change is one row."""

    recommender = models.ForeignKey(
        Recommender, on_delete=models.CASCADE, related_name="promotion_events"
    )
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=PromotionKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=200, blank=True, default="", help_text='e.g. "cli", "api-key:<prefix>".'
    )
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["recommender", "-created_at"], name="promotion_rec_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.from_version_id} -> {self.to_version_id}"
