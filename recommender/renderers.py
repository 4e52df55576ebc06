"""The serving endpoints' JSON renderer.

DRF's ``JSONRenderer`` goes through ``json.dumps`` with its Python-level encoder; writing
a page of 20-100 items was a sixth of a serving request's time under load
(docs/BENCHMARKS.md). orjson writes the same JSON (same keys, the same shortest
round-tripping floats, UTF-8, compact) several times faster. Only the two serving views
use it; the rest of the API keeps DRF's renderer."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """What orjson does not know (lazy translations, decimals, ...) as DRF encodes it."""
    return JSONEncoder().default(value)


class OrjsonRenderer(JSONRenderer):
    """``application/json`` like DRF's renderer (compact, UTF-8), written by orjson.

    Unlike ``json.dumps(allow_nan=False)`` orjson writes NaN and infinities as ``null``
    instead of failing; serving rounds finite scores, so neither reaches it."""

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, default=_default, option=_OPTIONS)
