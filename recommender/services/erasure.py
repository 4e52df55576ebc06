"""Deleting data: a user's events and profile (a data-subject erasure request), events,
items. Each deletion writes one ``DataErasure`` audit row in the same transaction.

After commit every recommender's serving key is bumped, so serving processes re-read the
erasures within ``RECSITE_SERVING_CHECK_SECONDS`` (the poll covers a lost bump): a user
erased after the active model's data was read is served as unknown from then on. The
next training reads the events table, where nothing of the user is left."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet

from recommender.models import DataErasure, ErasureKind, Event, Item, Recommender, UserProfile
from recommender.online.models import ExperimentUserStat, ServedList
from recommender.seen_tokens import events_written
from recommender.serving.signal import active_version_changed

# How many ids of the selection an audit row lists (the counts are always complete).
DETAIL_IDS_MAX = 100


def _serving_signal() -> None:
    for recommender_id in Recommender.objects.values_list("pk", flat=True):
        active_version_changed(recommender_id)


def _audit(
    *,
    kind: str,
    actor: AbstractBaseUser | None,
    actor_label: str,
    reason: str,
    **fields: Any,
) -> DataErasure:
    erasure = DataErasure.objects.create(
        kind=kind,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label,
        reason=reason,
        **fields,
    )
    transaction.on_commit(_serving_signal)
    return erasure


@transaction.atomic
def user_erase(
    *,
    user_id: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str = "",
) -> DataErasure:
    """Delete every event, the profile, the served lists and the experiment counts of
    ``user_id``. A user with nothing stored is not an error: the request is recorded all
    the same (with zero counts). The hourly online aggregates hold no user and stay."""
    events, _ = Event.objects.filter(user_external_id=user_id).delete()
    profiles, _ = UserProfile.objects.filter(external_id=user_id).delete()
    served_lists, _ = ServedList.objects.filter(user_external_id=user_id).delete()
    stats, _ = ExperimentUserStat.objects.filter(user_external_id=user_id).delete()
    events_written([user_id])
    return _audit(
        kind=ErasureKind.USER,
        subject=user_id,
        events_deleted=events,
        profiles_deleted=profiles,
        detail={"served_lists_deleted": served_lists, "experiment_user_stats_deleted": stats},
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )


@transaction.atomic
def events_erase(
    *,
    events: QuerySet[Event],
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str = "",
) -> DataErasure:
    """Delete the given events (one ``DELETE``; events have no dependents)."""
    sample = list(events.order_by().values_list("client", "event_id")[:DETAIL_IDS_MAX])
    deleted, _ = events.delete()
    return _audit(
        kind=ErasureKind.EVENTS,
        events_deleted=deleted,
        detail={"events": [f"{client}/{event_id}" for client, event_id in sample]},
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )


@transaction.atomic
def items_erase(
    *,
    items: QuerySet[Item],
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str = "",
) -> DataErasure:
    """Delete the given items and, with them, their events. Serving blocks a deleted item
    at its next catalog check; the next training no longer sees it."""
    sample = list(
        items.order_by("external_id").values_list("external_id", flat=True)[:DETAIL_IDS_MAX]
    )
    _, per_model = items.delete()
    return _audit(
        kind=ErasureKind.ITEMS,
        items_deleted=per_model.get(Item._meta.label, 0),
        events_deleted=per_model.get(Event._meta.label, 0),
        detail={"items": sample},
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )
