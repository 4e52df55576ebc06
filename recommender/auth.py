"""API-key authentication, scopes and per-key throttling for client apps.

A client sends ``Authorization: Api-Key <key>``. The key identifies the app
(``request.auth`` is its ``ApiKey``); ``HasScope`` checks what it may do.

Both run on every request, so neither may cost a round trip it can avoid:

- a validated key is kept per process for ``RECSITE_API_KEY_CACHE_SECONDS``
  (:class:`ApiKeyCache`); any change to a key (revoke, expiry, delete) bumps a
  generation token in the shared cache that every process reads at most every
  ``CHECK_SECONDS``, so a revocation applies within about half a second with Redis, and
  within the cache time without it;
- the throttle takes requests from Redis in leases, one round trip per lease
  (:class:`ApiKeyRateThrottle`)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache as memoize

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from recommender.models import ApiKey
from recommender.redis_client import redis_client

KEYWORD = "Api-Key"
logger = logging.getLogger(__name__)

GENERATION_KEY = "recsite:api-keys:generation"
CHECK_SECONDS = 0.5
MAX_CACHED_KEYS = 10_000


class ApiKeyCache:
    """Keys that passed validation in this process: ``sha256(key) -> (ApiKey, when)``.

    Only valid keys are kept (a wrong key always reaches the database, so guessing
    cannot fill the memory); revocation and expiry are checked on the cached object on
    every request, and the whole cache is dropped when the shared generation token
    changes (:func:`api_keys_changed`).

    ``clock`` (monotonic seconds) is injectable so tests step time instead of sleeping."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        self._generation: str | None = None
        self._checked_at = 0.0

    @staticmethod
    def digest(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def get(self, digest: str) -> ApiKey | None:
        ttl = settings.RECSITE_API_KEY_CACHE_SECONDS
        if ttl <= 0:
            return None
        now = self.clock()
        if now - self._checked_at >= CHECK_SECONDS:
            self._check_generation(now)
        entry = self._entries.get(digest)
        if entry is None or now - entry[1] >= ttl:
            return None
        return entry[0]

    def put(self, digest: str, api_key: ApiKey) -> None:
        if settings.RECSITE_API_KEY_CACHE_SECONDS <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_CACHED_KEYS:
                self._entries.clear()
            self._entries[digest] = (api_key, self.clock())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _check_generation(self, now: float) -> None:
        self._checked_at = now
        try:
            generation = cache.get(GENERATION_KEY)
        except Exception:  # unreachable cache: entries still expire after the cache time
            logger.warning("could not read the API-key generation token", exc_info=True)
            return
        if generation != self._generation:
            self._generation = generation
            self.clear()


key_cache = ApiKeyCache()


def api_keys_changed() -> None:
    """Drop every process's cached keys: call after any change to an ``ApiKey`` row
    (connected to its save and delete signals, run on commit)."""
    key_cache.clear()
    try:
        cache.set(GENERATION_KEY, uuid.uuid4().hex, None)
    except Exception:
        logger.warning(
            "could not bump the API-key generation token; other processes apply the "
            "change within RECSITE_API_KEY_CACHE_SECONDS",
            exc_info=True,
        )


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword != KEYWORD:
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("Empty API key.")
        digest = key_cache.digest(key)
        api_key = key_cache.get(digest)
        if api_key is None:
            prefix, _, _ = key.partition(".")
            api_key = ApiKey.objects.filter(prefix=prefix).first()
            if api_key is None or not api_key.is_valid(key):
                raise exceptions.AuthenticationFailed("Invalid API key.")
            key_cache.put(digest, api_key)
        if api_key.revoked or (api_key.expiry_date and api_key.expiry_date < timezone.now()):
            raise exceptions.AuthenticationFailed("This API key is revoked or expired.")
        return (None, api_key)

    def authenticate_header(self, request) -> str:
        return KEYWORD


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The API-key scheme in the OpenAPI schema (drf-spectacular registers an extension
    when its class is defined, so it is known wherever the authentication class is)."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Authorization: Api-Key <key>` (keys are created in the admin "
            "or with `manage.py create_api_key`).",
        }


def api_key_actor_label(api_key: ApiKey) -> str:
    """How an API key appears as the actor of what it did (runs, promotions, rollbacks):
    ``api-key:<prefix> (<name>)``. The prefix identifies the key; the name is a hint."""
    return f"api-key:{api_key.prefix} ({api_key.name})"


class HasScope(permissions.BasePermission):
    """``permission_classes = [HasScope("events:write")]``: the key must carry the scope
    (with several scopes: any one of them)."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = tuple(str(scope) for scope in scopes)  # "events:write", not the enum
        self.message = (
            "This API key lacks the scope " + " or ".join(f"'{s}'" for s in self.scopes) + "."
        )

    def __call__(self):
        return self

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated("Send `Authorization: Api-Key <key>`.")
        return any(api_key.has_scope(scope) for scope in self.scopes)


# Take ``ARGV[2]`` requests from the key's window, opening the window (giving the key its
# expiry) when there is none: atomic, one round trip. Returns the count and the ms left.
_TAKE_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""


@memoize
def _redis_take():
    """The throttle's Redis script, bound to the process's client (``redis_client``)."""
    return redis_client().register_script(_TAKE_SCRIPT)


@dataclass
class _Lease:
    """Requests this process may still admit for one key until ``until`` (monotonic);
    ``denied``: the window is used up, refuse without asking Redis until it ends."""

    remaining: int
    until: float
    denied: bool


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per-key request rate (``RECSITE_API_THROTTLE_RATE``), counted in Redis (or the
    process's cache without it).

    A counter per key and window (the window opens with the key's first request and
    lasts the rate's period), not DRF's sliding history: that one reads and writes a
    list of every request time in the period on each request, which at 1000/s is most
    of a recommendation request's cost. A burst of up to twice the rate across a window
    edge is the price.

    With Redis a process takes requests from the window in leases of ``rate / 100``
    (1 to 100) and admits them locally, so only one request in a lease pays the round
    trip. A lease a process does not use up by the window's end is lost to the others:
    a key may get up to ``lease x processes`` fewer requests than its rate (1% per
    process), never more."""

    scope = "api_key"
    wall_clock: Callable[[], float] = staticmethod(time.time)  # injectable for tests
    _leases: dict[str, _Lease] = {}
    _leases_lock = threading.Lock()

    def get_cache_key(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.prefix}

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.seconds_left = float(self.duration)
        try:
            if settings.REDIS_URL:
                return self._admit_from_lease(key)
            return self._admit_from_cache(key)
        except Exception:  # the cache is down: serve rather than fail every request
            logger.warning("throttle cache unavailable; request allowed", exc_info=True)
            return True

    def _admit_from_lease(self, key: str) -> bool:
        now = time.monotonic()
        with self._leases_lock:
            lease = self._leases.get(key)
            if lease is not None and now < lease.until:
                self.seconds_left = lease.until - now
                if lease.remaining > 0:
                    lease.remaining -= 1
                    return True
                if lease.denied:
                    return False
        size = min(max(self.num_requests // 100, 1), 100)
        count, milliseconds_left = _redis_take()(
            keys=[f"recsite:{key}"], args=[self.duration * 1000, size]
        )
        granted = min(max(self.num_requests - (count - size), 0), size)
        self.seconds_left = max(milliseconds_left, 0) / 1000
        with self._leases_lock:
            if len(self._leases) >= MAX_CACHED_KEYS:
                self._leases.clear()
            self._leases[key] = _Lease(
                remaining=max(granted - 1, 0), until=now + self.seconds_left, denied=not granted
            )
        return granted > 0

    def _admit_from_cache(self, key: str) -> bool:
        """Count in Django's cache; the window's end is kept beside the count so a refusal
        says how long is left in it, not the whole period."""
        ends_key = f"{key}:ends"
        try:
            count = self.cache.incr(key)
        except ValueError:  # no window open for this key: open one
            self.cache.add(ends_key, self.wall_clock() + self.duration, self.duration)
            self.cache.add(key, 0, self.duration)
            count = self.cache.incr(key)
        if count <= self.num_requests:
            return True
        ends = self.cache.get(ends_key)
        if ends is not None:
            self.seconds_left = min(max(ends - self.wall_clock(), 0.0), float(self.duration))
        return False

    def wait(self) -> float:
        """The seconds left in the key's window (Retry-After)."""
        return self.seconds_left
