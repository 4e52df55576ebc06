"""The catalog, user profiles and interaction events.

External ids are strings chosen by the client apps; database ids never leave the
service. Events point at items by foreign key (resolved once per batch at ingest) so
training joins nothing, and are unique on the client's event id so a resent batch is
never stored twice."""

from __future__ import annotations

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class Item(models.Model):
    external_id = models.CharField(max_length=255, unique=True)
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

    external_id = models.CharField(max_length=255, unique=True)
    features = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.external_id


class Event(models.Model):
    event_id = models.CharField(
        max_length=255, unique=True, help_text="The client's id; makes ingestion idempotent."
    )
    user_external_id = models.CharField(max_length=255)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=32)
    weight = models.FloatField(
        null=True, blank=True, help_text="The event's own weight (e.g. a rating); 1 when empty."
    )
    timestamp = models.DateTimeField()
    recommendation_id = models.CharField(max_length=64, blank=True, default="")
    ingested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # training reads a time window
            models.Index(fields=["timestamp"], name="event_time_idx"),
            # serving reads one user's recent events
            models.Index(fields=["user_external_id", "-timestamp"], name="event_user_time_idx"),
            # "new events since the last run" checks
            models.Index(fields=["ingested_at"], name="event_ingested_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.user_external_id} {self.event_type} {self.item_id}"


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
