"""The serving process's Prometheus metrics: what each worker has loaded and how loading
went. ``recsite/metrics.py`` serves them at ``/metrics`` (adding up the workers' files
under ``PROMETHEUS_MULTIPROC_DIR``); the admin dashboard reads the per-worker gauges back
by name.

Per-worker gauges (the loaded version, the model age, whether the last load failed) use
the ``liveall`` mode: one series per live worker, labelled ``pid``, so a version that one
worker failed to load is visible.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MODEL_VERSION_NAME = "recsite_model_loaded_version"
MODEL_LAST_LOAD_FAILED_NAME = "recsite_model_last_load_failed"

MODEL_VERSION = Gauge(
    MODEL_VERSION_NAME,
    "The model version this worker serves (0: none loaded).",
    ["recommender"],
    multiprocess_mode="liveall",
)
MODEL_AGE = Gauge(
    "recsite_model_age_seconds",
    "Seconds since the served model version was created (trained).",
    ["recommender"],
    multiprocess_mode="liveall",
)
MODEL_LAST_LOAD_FAILED = Gauge(
    MODEL_LAST_LOAD_FAILED_NAME,
    "1 when this worker's last attempt to load the active version failed.",
    ["recommender"],
    multiprocess_mode="liveall",
)
MODEL_SWAPS = Counter(
    "recsite_model_swaps_total",
    "Model versions swapped in (a first load counts too).",
    ["recommender"],
)
MODEL_LOAD_FAILURES = Counter(
    "recsite_model_load_failures_total",
    "Attempts to load a model version that failed to load or verify (never swapped in).",
    ["recommender"],
)
