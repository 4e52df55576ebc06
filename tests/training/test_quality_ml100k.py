"""Quality on a real dataset: MovieLens 100K through the whole training pipeline.

Imports ``../shared/data/ml-100k`` with ``manage.py import_dataset``, trains the
``default`` recommender with its default hyper-parameters (per-user time holdout, the
last 20% of each user's ratings) and checks the candidate beats the popularity baseline
on precision@10, passes the gates and is promoted. About 20-40 s on SQLite, most of it
the import and the two fits (evaluation + refit)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from recommender.models import Event, Recommender
from training.models import Decision, RunStatus, Trigger
from training.runner import training_run_execute_now

ML100K = (Path(django_settings.BASE_DIR) / ".." / "shared" / "data" / "ml-100k").resolve()

pytestmark = [
    pytest.mark.dataset,
    pytest.mark.slow,
    pytest.mark.django_db,
    pytest.mark.skipif(
        not (ML100K / "u.data").is_file(),
        reason=f"MovieLens 100K not found at {ML100K} (../shared/data/ml-100k)",
    ),
]


def test_default_recommender_beats_popularity_on_ml100k(settings, tmp_path) -> None:
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    started = time.perf_counter()
    call_command("import_dataset", str(ML100K), "--format", "movielens")
    imported = time.perf_counter()
    assert Event.objects.count() == 100_000

    recommender = Recommender.objects.get(name="default")
    recommender.algorithm = "lightfm"  # this test measures LightFM; auto is bench/quality.py's
    recommender.save()
    assert recommender.window_days is None  # MovieLens is from 1998: train on all of it
    run = training_run_execute_now(recommender=recommender, trigger=Trigger.CLI)
    trained = time.perf_counter()

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.decision == Decision.PROMOTED, run.decision_reason
    candidate = run.metrics["candidate"]["precision@10"]
    popularity = run.metrics["popularity"]["precision@10"]
    print(
        f"\nML-100K: import {imported - started:.1f} s, training run {trained - imported:.1f} s "
        f"(phases {run.phase_timings}); precision@10 candidate {candidate:.4f} vs "
        f"popularity {popularity:.4f}"
    )
    assert candidate > popularity, (
        f"the default recommender ({candidate:.4f}) does not beat popularity "
        f"({popularity:.4f}) on precision@10"
    )
