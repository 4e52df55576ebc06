"""Settings for a Celery worker whose tasks hit the hard time limit: 4 s, with the soft
limit out of the way, so the pool process is killed rather than stopped cleanly.

The time limits come from the task (``task_time_limit``), which wins over the worker's
``--time-limit`` option, hence a settings module rather than a command-line flag."""

from recsite.settings import *  # noqa: F403

CELERY_TASK_TIME_LIMIT = 4
CELERY_TASK_SOFT_TIME_LIMIT = None
