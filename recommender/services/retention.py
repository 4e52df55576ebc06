"""Artifact retention: giving the artifact disk back.

Runs after every successful training run (``training.runner``, after the version and
the promotion policy have committed) and periodically from beat
(``training.tasks.retain_artifacts``). One pass, per recommender:

1. ``model_versions_prune``: every version but the newest ``versions_kept``, the active
   one and the rollback target is marked ``artifact_deleted_at`` (one transaction); its
   artifact is deleted from the store after commit;
2. the artifacts of versions already marked deleted that are still in the store (a
   deletion that failed, or whose process died before it ran) are deleted again;
3. ``artifacts_sweep``: partial artifacts of writers, uploads and deleters killed
   mid-way (a directory's hidden working copies, a bucket's objects without a
   manifest), once older than the hard time limit of a training run.

The same on a file store and an S3 store (``recommender.artifact_store``).

Nothing here fails its caller for a file it could not delete: every failure is returned
in :class:`RetentionResult` (the runner writes them on the run, the task logs them)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from recommender.artifact_store import (
    StoreListing,
    artifact_delete,
    artifact_name,
    artifact_store,
    artifacts_list,
    artifacts_sweep,
)
from recommender.models import Recommender
from recommender.services.registry import model_versions_prune

logger = logging.getLogger(__name__)


@dataclass
class RetentionResult:
    """What one pass did: versions whose artifacts it pruned, leftover artifacts it
    removed (their names), partial artifacts it swept, and what failed (one message
    each)."""

    pruned: dict[str, list[int]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        pruned = "; ".join(
            f"{name}: " + ", ".join(f"v{n}" for n in numbers)
            for name, numbers in sorted(self.pruned.items())
            if numbers
        )
        parts = [f"pruned {pruned}" if pruned else "nothing to prune"]
        if self.swept:
            parts.append(f"swept {len(self.swept)} partial artifact directories")
        if self.errors:
            parts.append(f"{len(self.errors)} error(s): " + "; ".join(self.errors))
        return "retention: " + ", ".join(parts)


def _delete_leftovers(
    recommender: Recommender, stored: StoreListing, result: RetentionResult
) -> None:
    """Delete the artifacts of versions marked deleted that are still in the store."""
    marked = recommender.versions.filter(artifact_deleted_at__isnull=False).order_by("number")
    for version in marked.only("number", "artifact_uri"):
        try:
            name = artifact_name(version.artifact_uri)
        except ValueError:  # not in this store: not ours to delete
            continue
        if name not in stored.artifacts and name not in stored.incomplete:
            continue
        try:
            if artifact_delete(name):  # pruned just now: possibly deleted on commit already
                result.deleted.append(name)
        except Exception as exc:  # a permission, an I/O error, the store down
            result.errors.append(f"{recommender.name} v{version.number}: {exc}")
            logger.warning("retention: could not delete %s: %s", name, exc)


def artifacts_retain(
    *,
    recommender: Recommender | None = None,
    older_than: float | None = None,
    now: float | None = None,
) -> RetentionResult:
    """Apply retention to ``recommender`` (every recommender when None) and sweep partial
    directories older than ``older_than`` seconds at ``now`` (defaults: the hard time
    limit of a training run, and the current time). Never raises for a failed deletion;
    see :class:`RetentionResult`."""
    result = RetentionResult()
    recommenders = (
        [recommender] if recommender is not None else list(Recommender.objects.order_by("name"))
    )
    try:
        stored: StoreListing | None = artifacts_list()
    except Exception as exc:
        stored = None
        result.errors.append(f"listing the artifact store failed: {exc}")
        logger.warning("retention: listing %s failed: %s", artifact_store().location, exc)
    for each in recommenders:
        try:
            pruned = model_versions_prune(recommender=each)  # files deleted after commit
        except Exception as exc:
            result.errors.append(f"{each.name}: pruning failed: {type(exc).__name__}: {exc}")
            logger.exception("retention: pruning %s failed", each.name)
            continue
        result.pruned[each.name] = [version.number for version in pruned]
        if stored is not None:
            _delete_leftovers(each, stored, result)
    limit = settings.CELERY_TASK_TIME_LIMIT if older_than is None else older_than
    try:
        result.swept = artifacts_sweep(older_than=limit, now=now or time.time())
    except Exception as exc:  # OSError, the store down
        result.errors.append(f"sweep failed: {exc}")
        logger.warning("retention: sweeping %s failed: %s", artifact_store().location, exc)
    for path in result.swept:
        logger.warning("retention: removed %s, a partial artifact left by a killed process", path)
    return result
