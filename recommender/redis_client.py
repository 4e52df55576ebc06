"""The process's Redis client for recsite's own keys (the throttle's leases, the seen
tokens), separate from Django's cache: those need Redis commands (scripts, pipelines,
``SET NX``) that the cache API does not offer.

One client per process, made on first use and kept (``redis_client.cache_clear()`` in
tests that change ``REDIS_URL``); redis-py's connection pool re-opens its connections in
a forked process. Short timeouts: every caller has an answer for an unreachable Redis,
and a request must not hang waiting for one."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings

SOCKET_TIMEOUT_SECONDS = 1


@cache
def redis_client() -> redis.Redis | None:
    """The client of ``REDIS_URL``; None when recsite runs without Redis."""
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
    )
