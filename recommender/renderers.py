"""The serving endpoints' JSON renderer.

DRF's ``JSONRenderer`` goes through ``json.dumps`` with its Python-level encoder; writing
a page of 20-100 items was a sixth of a serving request's time under load
(docs/BENCHMARKS.md). orjson writes the same JSON (same keys, the same shortest
round-tripping floats, UTF-8, compact) several times faster. Only the two serving
endpoints use it (their DRF views through :class:`OrjsonRenderer`, their plain views
through :func:`json_bytes`); the rest of the API keeps DRF's renderer."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """What orjson does not know (lazy translations, decimals, ...) as DRF encodes it."""
    return JSONEncoder().default(value)


def json_bytes(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON, written by orjson.

    Unlike ``json.dumps(allow_nan=False)`` orjson writes NaN and infinities as ``null``
    instead of failing; serving rounds finite scores, so neither reaches it."""
    return orjson.dumps(data, default=_default, option=_OPTIONS)


class OrjsonRenderer(JSONRenderer):
    """``application/json`` like DRF's renderer (compact, UTF-8), by :func:`json_bytes`."""

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return json_bytes(data)
