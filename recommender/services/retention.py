"""Artifact retention: giving the artifact disk back.

Runs after every successful training run (``training.runner``, after the version and
the promotion policy have committed) and periodically from beat
(``training.tasks.retain_artifacts``). One pass, per recommender:

1. ``model_versions_prune``: every version but the newest ``versions_kept``, the active
   one and the rollback target is marked ``artifact_deleted_at`` (one transaction); its
   directory is deleted after commit;
2. the directories of versions already marked deleted that are still on disk (a deletion
   that failed, or whose process died before it ran) are deleted again;
3. ``partial_artifacts_sweep``: the hidden working directories of writers and deleters
   killed mid-way, once older than the hard time limit of a training run.

Nothing here fails its caller for a file it could not delete: every failure is returned
in :class:`RetentionResult` (the runner writes them on the run, the task logs them)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import delete_artifact, partial_artifacts_sweep
from recommender.models import Recommender
from recommender.services.registry import model_versions_prune

logger = logging.getLogger(__name__)


@dataclass
class RetentionResult:
    """What one pass did: versions whose artifacts it pruned, directories it removed,
    partial directories it swept, and what failed (one message each)."""

    pruned: dict[str, list[int]] = field(default_factory=dict)
    deleted: list[Path] = field(default_factory=list)
    swept: list[Path] = field(default_factory=list)
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


def _delete_leftovers(recommender: Recommender, result: RetentionResult) -> None:
    """Delete the directories of versions marked deleted that are still on disk."""
    marked = recommender.versions.filter(artifact_deleted_at__isnull=False).order_by("number")
    for version in marked.only("number", "artifact_uri"):
        try:
            path = local_artifact_path(version.artifact_uri)
        except ValueError:  # not a local artifact: not ours to delete
            continue
        if not path.exists():
            continue
        try:
            delete_artifact(path)
        except Exception as exc:  # a permission, an I/O error, a non-artifact directory
            result.errors.append(f"{recommender.name} v{version.number}: {exc}")
            logger.warning("retention: could not delete %s: %s", path, exc)
        else:
            result.deleted.append(path)


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
    for each in recommenders:
        try:
            pruned = model_versions_prune(recommender=each)  # files deleted after commit
        except Exception as exc:
            result.errors.append(f"{each.name}: pruning failed: {type(exc).__name__}: {exc}")
            logger.exception("retention: pruning %s failed", each.name)
            continue
        result.pruned[each.name] = [version.number for version in pruned]
        _delete_leftovers(each, result)
    limit = settings.CELERY_TASK_TIME_LIMIT if older_than is None else older_than
    try:
        result.swept = partial_artifacts_sweep(
            settings.RECSITE_ARTIFACT_DIR, older_than=limit, now=now or time.time()
        )
    except OSError as exc:
        result.errors.append(f"sweep failed: {exc}")
        logger.warning("retention: sweeping %s failed: %s", settings.RECSITE_ARTIFACT_DIR, exc)
    for path in result.swept:
        logger.warning("retention: removed %s, a partial artifact left by a killed process", path)
    return result
