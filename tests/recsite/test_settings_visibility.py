"""The start-up check that keeps a training run's time limits below the Redis visibility
timeout: past that timeout Redis hands a still-unacknowledged message to another worker,
so a run still training would be delivered again (issue #7; the database claim is the
second guard, ``tests/training/test_faults_worker.py``)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[2] / "recsite" / "settings.py"


def load_settings(monkeypatch, tmp_path, **env: str) -> dict[str, Any]:
    """Execute ``recsite/settings.py`` afresh with ``env`` (the loaded settings stay)."""
    monkeypatch.setenv("RECSITE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")
    for name in ("CELERY_VISIBILITY_TIMEOUT", "RECSITE_TRAINING_SOFT_TIME_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


@pytest.mark.parametrize("visibility", ["2", "900"])
def test_a_visibility_timeout_not_above_the_hard_time_limit_refuses_to_start(
    monkeypatch, tmp_path, visibility
):
    with pytest.raises(ImproperlyConfigured, match=r"CELERY_VISIBILITY_TIMEOUT \(\d+ s\) must"):
        load_settings(
            monkeypatch,
            tmp_path,
            RECSITE_TRAINING_SOFT_TIME_LIMIT="600",  # hard limit 900 s
            CELERY_VISIBILITY_TIMEOUT=visibility,
        )


def test_the_time_limits_stay_below_the_visibility_timeout_given_to_redis(monkeypatch, tmp_path):
    settings = load_settings(
        monkeypatch,
        tmp_path,
        RECSITE_TRAINING_SOFT_TIME_LIMIT="600",  # hard limit 900 s
        CELERY_VISIBILITY_TIMEOUT="901",
    )

    assert settings["CELERY_TASK_SOFT_TIME_LIMIT"] == 600
    assert settings["CELERY_TASK_TIME_LIMIT"] == 900
    assert settings["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] == 901


def test_the_default_visibility_timeout_follows_the_time_limit(monkeypatch, tmp_path):
    settings = load_settings(monkeypatch, tmp_path, RECSITE_TRAINING_SOFT_TIME_LIMIT="7200")

    visibility = settings["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"]
    assert settings["CELERY_TASK_SOFT_TIME_LIMIT"] < settings["CELERY_TASK_TIME_LIMIT"] < visibility
    assert visibility == 7200 + 300 + 600
