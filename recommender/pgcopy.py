"""PostgreSQL ``COPY ... FROM STDIN``'s text format, for every bulk writer (events at
ingest, served lists from the recording buffer). Plain Python."""

from __future__ import annotations

COPY_NULL = "\\N"

_COPY_SPECIAL = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(text: str) -> str:
    """A string in COPY's text format (most ids need no escaping: checked first)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_SPECIAL)
    return text
