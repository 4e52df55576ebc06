"""API keys for client apps."""

from __future__ import annotations

from collections.abc import Sequence

from recommender.exceptions import InvalidScopes
from recommender.models import ApiKey, Scope


def api_key_create(*, name: str, scopes: Sequence[str]) -> tuple[ApiKey, str]:
    """Create a client app's key. The plain key is returned once and never stored."""
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise InvalidScopes(
            f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(Scope.values)}.",
            unknown=unknown,
        )
    if not scopes:
        raise InvalidScopes("Give at least one scope.")
    api_key, key = ApiKey.objects.create_key(name=name, scopes=sorted(set(scopes)))
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good: requests with it are refused from now on (the row stays,
    so the admin still shows who had which key)."""
    if not api_key.revoked:
        api_key.revoked = True
        api_key.save(update_fields=["revoked"])
    return api_key
