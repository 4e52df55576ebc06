"""API-key authentication, scopes and per-key throttling for client apps.

A client sends ``Authorization: Api-Key <key>``. The key identifies the app
(``request.auth`` is its ``ApiKey``); ``HasScope`` checks what it may do."""

from __future__ import annotations

import logging

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from recommender.models import ApiKey

KEYWORD = "Api-Key"
logger = logging.getLogger(__name__)


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
        prefix, _, _ = key.partition(".")
        api_key = ApiKey.objects.filter(prefix=prefix).first()
        if api_key is None or not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked or (api_key.expiry_date and api_key.expiry_date < timezone.now()):
            raise exceptions.AuthenticationFailed("This API key is revoked or expired.")
        return (None, api_key)

    def authenticate_header(self, request) -> str:
        return KEYWORD


class HasScope(permissions.BasePermission):
    """``permission_classes = [HasScope("events:write")]``: the key must carry the scope
    (with several scopes: any one of them)."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes
        self.message = "This API key lacks the scope " + " or ".join(map(repr, scopes)) + "."

    def __call__(self):
        return self

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated("Send `Authorization: Api-Key <key>`.")
        return any(api_key.has_scope(scope) for scope in self.scopes)


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per-key request rate (``RECSITE_API_THROTTLE_RATE``), counted in the cache.

    A counter per key and window (the window opens with the key's first request and
    lasts the rate's period), not DRF's sliding history: that one reads and writes a
    list of every request time in the period on each request, which at 1000/s is most
    of a recommendation request's cost. A burst of up to twice the rate across a window
    edge is the price."""

    scope = "api_key"

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
        try:
            try:
                count = self.cache.incr(key)
            except ValueError:  # no window open for this key: open one
                self.cache.add(key, 0, self.duration)
                count = self.cache.incr(key)
        except Exception:  # the cache is down: serve rather than fail every request
            logger.warning("throttle cache unavailable; request allowed", exc_info=True)
            return True
        return count <= self.num_requests

    def wait(self) -> float:
        """At most one period (the cache does not tell how much of it is left)."""
        return float(self.duration)
