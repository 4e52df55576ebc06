"""A JSON parser with a hard body limit.

DRF reads the request stream itself, so Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is not
applied to JSON bodies; this parser enforces ``RECSITE_MAX_BODY_BYTES`` and answers 413
before parsing anything."""

from __future__ import annotations

import json
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from recommender.exceptions import RequestBodyTooLarge


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.RECSITE_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        too_large = RequestBodyTooLarge(max_bytes=limit)
        try:
            if declared and int(declared) > limit:
                raise too_large
        except ValueError:
            raise ParseError("Invalid Content-Length header.") from None
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise too_large
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        if b"\\" in raw and _SURROGATE_ESCAPE.search(raw):  # memchr first: ~10 us / 100 KB
            _refuse_lone_surrogates(data)
        return data


# A ``\uD800``-``\uDFFF`` escape: half of a UTF-16 pair. In pairs they decode to one
# character; alone they make a string no database (nor UTF-8) can store.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(data: object) -> None:
    """Only for bodies that hold such an escape (rare), so the common path pays nothing."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError(
            "JSON parse error - a \\uD800-\\uDFFF escape without its pair is not a character."
        ) from None
