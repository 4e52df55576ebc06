"""The online loop's Prometheus metrics. ``recsite/metrics.py`` imports this module so
``/metrics`` lists them from the first scrape."""

from __future__ import annotations

from prometheus_client import Counter

SERVED_LISTS = Counter(
    "recsite_served_lists_total",
    "Lists served (recommendations and similar items) handed to the recording buffer.",
    ["recommender", "kind"],
)
SERVED_LISTS_DROPPED = Counter(
    "recsite_served_lists_dropped_total",
    "Served lists not recorded: the buffer was full (buffer_full), the database refused "
    "the batch (database_error), the recommender is unknown (unknown_recommender) or the "
    "record was malformed (invalid).",
    ["reason"],
)
EVENTS_ATTRIBUTED = Counter(
    "recsite_events_attributed_total",
    "Events read by the attribution pass: attributed to a served list, or not (no list "
    "showed the item to the user within the window).",
    ["outcome"],
)
