"""Seen tokens: the contract between the code that writes a user's events and the serving
processes that cache the user's recent items (``recommender/serving/seen.py``).

A user's token is a random value in Redis under ``recsite:seen:<user id>``. Every write of
the user's events replaces it (``seen_changed``: ingest, erasure) after the rows are
visible, before the writer answers; a serving process trusts a cached list only while
the token it was read under is still the one in Redis. Tokens expire after
``TOKEN_TTL_SECONDS`` (an expired or lost token only costs a database read).

The reads raise ``redis.RedisError`` when Redis cannot be reached (serving then reads the
database). Writers call ``events_written``, which logs a failure instead: their rows are
stored, and the cache's age limit bounds how long a lost replacement can matter."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from functools import partial

import redis
from django.db import connection, transaction

from recommender.redis_client import redis_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "recsite:seen:"
TOKEN_TTL_SECONDS = 24 * 3600
_TOKEN_BYTES = 8


def _key(user_id: str) -> str:
    return KEY_PREFIX + user_id


def seen_tokens_enabled() -> bool:
    return redis_client() is not None


_thread = threading.local()


def seen_token(user_id: str) -> bytes | None:
    """The user's current token; None when there is none (never written, expired, Redis
    restarted) or recsite runs without Redis.

    Read on every recommendation request, over a connection of the calling thread's own:
    the client's pool checks out a connection, polls it for stray data and puts it back
    around every command, twice the CPU of the GET itself. A connection that fails is
    dropped (the caller reads the database this once) and the next call opens another."""
    client = redis_client()
    if client is None:
        return None
    connection = getattr(_thread, "connection", None)
    if connection is None or _thread.pid != os.getpid() or _thread.client is not client:
        connection = client.connection_pool.make_connection()
        _thread.connection, _thread.pid, _thread.client = connection, os.getpid(), client
    try:
        connection.send_command("GET", _key(user_id))
        return connection.read_response()
    except BaseException:
        connection.disconnect()
        _thread.connection = None
        raise


def seen_token_claim(user_id: str) -> bytes:
    """The user's token, set to a new one when there is none: atomically, so a writer's
    replacement that lands first wins and is what the caller gets."""
    with redis_client().pipeline(transaction=True) as pipe:
        pipe.set(_key(user_id), os.urandom(_TOKEN_BYTES), nx=True, ex=TOKEN_TTL_SECONDS)
        pipe.get(_key(user_id))
        _, token = pipe.execute()
    return token


def seen_changed(user_ids: Iterable[str]) -> None:
    """Replace the tokens of ``user_ids``: their events changed (one round trip)."""
    client = redis_client()
    if client is None:
        return
    with client.pipeline(transaction=False) as pipe:
        for user_id in set(user_ids):
            pipe.set(_key(user_id), os.urandom(_TOKEN_BYTES), ex=TOKEN_TTL_SECONDS)
        pipe.execute()


def events_written(user_ids: Iterable[str]) -> None:
    """Tell the serving caches that these users' events changed: at once (a transaction the
    caller still holds shows the rows to its own reads) and, inside a transaction, again
    when it commits (when every other connection sees them)."""
    users = frozenset(user_ids)
    if not users:
        return
    _replace_logged(users)
    if connection.in_atomic_block:
        transaction.on_commit(partial(_replace_logged, users))


def _replace_logged(user_ids: frozenset[str]) -> None:
    try:
        seen_changed(user_ids)
    except redis.RedisError:
        logger.warning(
            "seen tokens not replaced for %d users (Redis unreachable): serving caches may "
            "miss their new events for up to RECSITE_SEEN_CACHE_SECONDS",
            len(user_ids),
            exc_info=True,
        )
