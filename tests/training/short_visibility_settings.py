"""Settings for a Celery worker misconfigured on purpose: a Redis visibility timeout of
1 s, far below the training time limits, with the unacked-message sweep every half second.

``recsite.settings`` refuses such a timeout at start-up, so the tests that need one (a
run outliving the visibility timeout is redelivered while it runs) start the worker with
``DJANGO_SETTINGS_MODULE`` pointing here: valid settings, then the timeout lowered, as a
host with a different configuration would have it."""

from recsite.settings import *  # noqa: F403

VISIBILITY_TIMEOUT_SECONDS = 1

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    "unacked_restore_interval": 0.5,  # kombu sweeps every interval x throttle seconds
    "unacked_restore_throttle": 1,
}
