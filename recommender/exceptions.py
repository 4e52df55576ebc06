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


# --- The model registry --------------------------------------------------------------


class RecommenderNotFound(RecsiteError):
    code = "recommender_not_found"
    status = 404
    default_message = "No recommender has that name."


class ModelVersionNotFound(RecsiteError):
    code = "model_version_not_found"
    status = 404
    default_message = "The recommender has no version with that number."


class VersionNotPromotable(RecsiteError):
    code = "version_not_promotable"
    status = 409
    default_message = "This version cannot be promoted."


class VersionAlreadyActive(RecsiteError):
    code = "version_already_active"
    status = 409
    default_message = "This version is already the active one."


class VersionNotRejectable(RecsiteError):
    code = "version_not_rejectable"
    status = 409
    default_message = "This version cannot be rejected."


class VersionNotActive(RecsiteError):
    """A rollback names the version it rolls back from, and that is not the active one
    (any more): someone else promoted or rolled back meanwhile."""

    code = "version_not_active"
    status = 409
    default_message = "This version is not the active one."


class NoRollbackTarget(RecsiteError):
    code = "no_rollback_target"
    status = 409
    default_message = "There is no previous version to roll back to."


class DatasetSourceInvalid(RecsiteError):
    """The dataset cannot be read at all: a missing path, the wrong layout, a bad header."""

    code = "dataset_source_invalid"
    status = 400
    default_message = "The dataset path or layout is not usable."


class DatasetLineInvalid(RecsiteError):
    """One line of a dataset file cannot be parsed; names the file and line."""

    code = "dataset_line_invalid"
    status = 400

    def __init__(self, *, file: str, line: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        super().__init__(f"{file}:{line}: {reason}", file=file, line=line, reason=reason)


class DatasetImportFailed(RecsiteError):
    """An import stopped at a bad line or row. Batches written before it stay."""

    code = "dataset_import_failed"
    status = 400
    default_message = "The dataset import stopped at an invalid row."


class NoActiveVersion(RecsiteError):
    code = "no_active_version"
    status = 404
    default_message = "This recommender has no active version yet."


# --- The artifact store ---------------------------------------------------------------


class ArtifactStoreUnavailable(RecsiteError):
    """The artifact store (``RECSITE_ARTIFACT_STORE``) does not answer, or refuses us:
    nothing can be fetched from it or written to it now. Hosts keep serving what they
    have loaded; promote and rollback are refused, as the hosts could not fetch the
    version."""

    code = "artifact_store_unavailable"
    status = 503
    default_message = "The artifact store cannot be reached; retry later."


class ArtifactUploadFailed(RecsiteError):
    """A training run's artifact could not be uploaded completely to the store; nothing
    of it is visible there (its manifest, uploaded last, is absent) and no version row
    was created."""

    code = "artifact_upload_failed"
    status = 503
    default_message = "The artifact could not be uploaded to the artifact store."


class ExportFileGone(RecsiteError):
    """An export job's file is no longer in the artifact store (deleted by the export
    retention, or by hand)."""

    code = "export_file_gone"
    status = 404
    default_message = "The export's file is no longer in the artifact store."


# --- Serving -------------------------------------------------------------------------


class NoModel(RecsiteError):
    code = "no_model"
    status = 503
    default_message = "No model is loaded and there are no events to rank by popularity yet."


class UnknownCategory(RecsiteError):
    """A ``category`` filter naming no category of the served catalogue: an empty 200
    would look like "nothing to recommend" when the client made a typo."""

    code = "unknown_category"
    status = 400
    default_message = "No item of the catalogue has this category."


class ItemNotFound(RecsiteError):
    code = "item_not_found"
    status = 404
    default_message = "The model does not know this item."
