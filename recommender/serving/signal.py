"""The "active version changed" signal serving processes watch.

Promote and rollback bump one cache key per recommender after they commit; a serving
process that sees the value change reloads the active version. The cache is only a fast
path: a cache error is logged and swallowed, and serving still notices the change by
polling the database."""

from __future__ import annotations

import logging
import uuid

from django.core.cache import cache

logger = logging.getLogger(__name__)


def active_version_key(recommender_id: int) -> str:
    return f"recsite:active-version:{recommender_id}"


def active_version_changed(recommender_id: int, *, version_number: int | None = None) -> None:
    """Bump the key to ``"<version number>:<nonce>"`` (the nonce makes every bump a change,
    even a promote-rollback-promote back to the same number)."""
    token = f"{version_number if version_number is not None else ''}:{uuid.uuid4().hex}"
    try:
        cache.set(active_version_key(recommender_id), token, None)
    except Exception:
        logger.warning(
            "could not bump the active-version key of recommender %s; serving falls back "
            "to polling the database",
            recommender_id,
            exc_info=True,
        )


def active_version_token(recommender_id: int) -> str | None:
    """The current value of the key, or None when unset or the cache is unreachable."""
    try:
        return cache.get(active_version_key(recommender_id))
    except Exception:
        logger.warning("could not read the active-version key", exc_info=True)
        return None
