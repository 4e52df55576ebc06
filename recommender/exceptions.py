"""Domain errors. Each has a stable ``code`` and an HTTP ``status``; the API error
handler (``recsite.api_errors``) turns them into ``{"error": {...}}`` bodies, and the
management commands print their message."""

from __future__ import annotations

from typing import Any


class RecsiteError(Exception):
    code = "error"
    status = 400
    default_message = "The request could not be processed."

    def __init__(self, message: str = "", **detail: Any) -> None:
        self.message = message or self.default_message
        self.detail = detail or None
        super().__init__(self.message)


class EventBatchInvalid(RecsiteError):
    code = "invalid_events"
    status = 400
    default_message = "Some events are invalid; nothing from this batch was written."


class ItemBatchInvalid(RecsiteError):
    code = "invalid_items"
    status = 400
    default_message = "Some items are invalid; nothing from this batch was written."


class BatchTooLarge(RecsiteError):
    code = "batch_too_large"
    status = 413
    default_message = "The batch has more entries than allowed."


class RequestBodyTooLarge(RecsiteError):
    code = "body_too_large"
    status = 413
    default_message = "The request body is larger than allowed."


class ServiceUnavailable(RecsiteError):
    code = "service_unavailable"
    status = 503
    default_message = "A backing service is unavailable; retry later."


class InvalidScopes(RecsiteError):
    code = "invalid_scopes"
    status = 400
    default_message = "Unknown API key scope."
