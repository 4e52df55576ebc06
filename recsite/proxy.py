"""The client's address as the reverse proxies saw it.

Behind ``RECSITE_PROXY_COUNT`` proxies, each appending the address it received the
request from to ``X-Forwarded-For``, the client's address is the entry that many places
from the right: anything to its left was written by the client and can be forged. With
no proxy it is ``REMOTE_ADDR``. django-axes counts login failures per this address, so
behind a proxy staff are not all one address (one attacker could lock them all out)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    proxies = settings.RECSITE_PROXY_COUNT
    remote = request.META.get("REMOTE_ADDR") or None
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < proxies:  # not through the proxies: nothing forwarded to trust
        return remote
    return forwarded[-proxies]
