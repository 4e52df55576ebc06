"""Reads of the model registry that more than one caller needs."""

from __future__ import annotations

from recommender.exceptions import ModelVersionNotFound, RecommenderNotFound
from recommender.models import ModelVersion, PromotionEvent, Recommender, VersionStatus


def recommender_get(*, name: str) -> Recommender:
    try:
        return Recommender.objects.get(name=name)
    except Recommender.DoesNotExist:
        known = list(Recommender.objects.values_list("name", flat=True)[:20])
        raise RecommenderNotFound(f"No recommender named {name!r}.", name=name, known=known)


def active_version_get(*, recommender: Recommender) -> ModelVersion | None:
    return recommender.versions.filter(status=VersionStatus.ACTIVE).first()


def model_version_get(*, recommender: Recommender, number: int) -> ModelVersion:
    try:
        return recommender.versions.get(number=number)
    except ModelVersion.DoesNotExist:
        raise ModelVersionNotFound(
            f"Recommender {recommender.name!r} has no version {number}.",
            recommender=recommender.name,
            number=number,
        )


def rollback_target_get(*, recommender: Recommender) -> ModelVersion | None:
    """The version that was active before the current one: the ``from_version`` of the
    latest promotion event that made the current version active. None when nothing is
    active or the current version was the first one ever promoted.

    After a rollback from v3 to v2 the target is v3 again (the version active before v2),
    so a second rollback undoes the first. The target may have had its artifact deleted;
    ``model_version_rollback`` checks that."""
    active = active_version_get(recommender=recommender)
    if active is None:
        return None
    event = (
        PromotionEvent.objects.filter(recommender=recommender, to_version=active)
        .select_related("from_version")
        .order_by("-created_at", "-id")
        .first()
    )
    return event.from_version if event else None
