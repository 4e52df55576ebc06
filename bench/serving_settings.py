"""Settings for ``bench/serving.py``: recsite's, plus the bare comparison view's URL."""

from recsite.settings import *  # noqa: F403

ROOT_URLCONF = "bench.serving_urls"
