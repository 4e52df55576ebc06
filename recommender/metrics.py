"""The API's Prometheus counters: events in (per client app) and responses served (by
source). Plain ``prometheus_client`` counters: under gunicorn each worker writes them
into ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds the workers up
(``recsite/metrics.py``). Processes nobody scrapes (``import_dataset``, Celery workers)
count in memory only.

Label values are bounded: ``client`` is ``api:<key name>`` or ``operator``, ``code`` an
error code, ``recommender`` a recommender's name.
"""

from __future__ import annotations

from prometheus_client import Counter

from recommender.serving.state import NO_MODEL, UNKNOWN_USER

INGEST_EVENTS = Counter(
    "recsite_ingest_events_total",
    "Events received through the ingest service, by client app and outcome: accepted "
    "(stored), duplicate (the client had sent that event id before), refused (not stored, "
    "with the error code: invalid_events for the whole all-or-nothing batch, or each "
    "invalid event when invalid ones are skipped; batch_too_large for the whole batch).",
    ["client", "outcome", "code"],
)


class IngestOutcome:
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"


SERVED_RESPONSES_NAME = "recsite_served_responses_total"
SERVED_RESPONSES = Counter(
    SERVED_RESPONSES_NAME,
    "Recommendation and similar-item responses, by what ranked them: model (the loaded "
    "model), cold_start (a user the model does not know: popularity), popularity (no "
    "model loaded: popularity from the events).",
    ["recommender", "endpoint", "source"],
)


class Source:
    MODEL = "model"
    COLD_START = "cold_start"
    POPULARITY = "popularity"


# The API's ``fallback`` field -> the response's source.
_SOURCE_OF_FALLBACK: dict[str | None, str] = {
    None: Source.MODEL,
    UNKNOWN_USER: Source.COLD_START,
    NO_MODEL: Source.POPULARITY,
}


def served_response_count(*, recommender: str, endpoint: str, fallback: str | None) -> None:
    """Count one served response; ``fallback`` as the API reports it (a kind of fallback
    this table does not know yet is its own source)."""
    source = _SOURCE_OF_FALLBACK.get(fallback) or str(fallback)
    SERVED_RESPONSES.labels(recommender, endpoint, source).inc()


def ingest_count(
    *, client: str, accepted: int = 0, duplicates: int = 0, refused: int = 0, code: str = ""
) -> None:
    """Count one batch's events by what happened to them (``code``: why ``refused``)."""
    if accepted:
        INGEST_EVENTS.labels(client, IngestOutcome.ACCEPTED, "").inc(accepted)
    if duplicates:
        INGEST_EVENTS.labels(client, IngestOutcome.DUPLICATE, "").inc(duplicates)
    if refused:
        INGEST_EVENTS.labels(client, IngestOutcome.REFUSED, code).inc(refused)


EVENTS_EXPIRED = Counter(
    "recsite_events_expired_total",
    "Events deleted by event retention (older than RECSITE_EVENT_RETENTION_DAYS and every "
    "recommender's training window, already read by the attribution pass).",
)
EVENT_RETENTION_PASSES = Counter(
    "recsite_event_retention_passes_total",
    "Event retention passes, by outcome: deleted, nothing (nothing old enough), blocked (a "
    "recommender trains on all history, or attribution has not run yet), off (retention "
    "unset).",
    ["outcome"],
)
