"""A whole training run, in process, on generated data (real database, real LightFM)."""

import shutil
from pathlib import Path

import pytest

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import load_artifact
from recommender.models import Event, ModelVersion, PromotionEvent, Recommender, VersionStatus
from training.exceptions import TrainingAlreadyRunning
from training.models import Decision, RunStatus, TrainingRun, Trigger
from training.runner import training_run_execute, training_run_execute_now
from training.services import training_run_create

pytestmark = pytest.mark.django_db


def run_now(recommender, **options):
    return training_run_execute_now(recommender=recommender, trigger=Trigger.CLI, options=options)


def test_a_run_ends_in_an_active_verified_version(recommender):
    progress = []
    run = training_run_execute_now(
        recommender=recommender,
        trigger=Trigger.CLI,
        on_progress=lambda phase, fraction, message: progress.append((phase, fraction)),
    )
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.decision == Decision.PROMOTED
    version = run.version
    assert (version.number, version.status) == (1, VersionStatus.ACTIVE)
    artifact = load_artifact(local_artifact_path(version.artifact_uri))
    assert artifact.sha256 == version.artifact_sha256
    assert artifact.arrays["item_embeddings"].shape == (80, 16)
    event = PromotionEvent.objects.get()
    assert (event.kind, event.to_version, event.from_version) == ("auto", version, None)
    assert set(run.phase_timings) == {
        "load",
        "build",
        "split",
        "fit",
        "evaluate",
        "gates",
        "refit",
        "artifact",
    }
    assert run.metrics["candidate"]["precision@10"] > run.metrics["popularity"]["precision@10"]
    assert [fraction for _, fraction in progress] == sorted(fraction for _, fraction in progress)
    assert "fit lightfm: step 5/5" in run.log


def test_a_retrain_on_unchanged_data_is_held_for_manual_promotion(recommender):
    """No held-out event is newer than the champion's data: nothing to compare on, so
    the default policy (hold) keeps the candidate for staff, even under auto."""
    first = run_now(recommender).version
    second = run_now(recommender)
    assert second.metrics["champion_version"] == 1
    assert second.metrics["champion_holdout_events"] == 0
    assert "champion" not in second.metrics
    assert second.decision == Decision.CANDIDATE
    assert "held for manual promotion" in second.decision_reason
    assert "held for manual promotion" in second.log
    assert second.version.status == VersionStatus.CANDIDATE
    first.refresh_from_db()
    assert first.status == VersionStatus.ACTIVE


def test_the_skip_policy_replaces_the_champion_with_a_warning(recommender):
    first = run_now(recommender).version
    recommender.champion_no_overlap_policy = "skip"
    recommender.save()
    second = run_now(recommender)
    assert second.decision == Decision.PROMOTED
    gate = second.gate_results[-1]
    assert gate["skipped"] and gate["message"].startswith("Warning: No held-out event")
    assert "Warning: No held-out event" in second.log
    first.refresh_from_db()
    assert first.status == VersionStatus.RETIRED
    assert second.version.status == VersionStatus.ACTIVE


def test_a_gate_rejection_keeps_the_champion_and_writes_no_version(recommender, artifact_dir):
    champion = run_now(recommender).version
    recommender.gate_min_events = 10**9
    recommender.save()
    run = run_now(recommender)
    assert run.decision == Decision.REJECTED
    assert "min_events" in run.decision_reason
    assert run.version is None
    assert list(ModelVersion.objects.all()) == [champion]
    assert [p.name for p in (artifact_dir / "default").iterdir()] == [
        Path(champion.artifact_uri).name
    ]


def test_a_failing_phase_leaves_the_champion_active(recommender, artifact_dir, settings):
    champion = run_now(recommender).version
    run = training_run_create(recommender=recommender, trigger=Trigger.API, enqueue=False)
    blocked = artifact_dir.parent / "a-file"
    blocked.write_text("where the artifact directory should be")
    settings.RECSITE_ARTIFACT_DIR = blocked
    run = training_run_execute(run_id=run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("artifact:")
    assert "Traceback" in run.traceback
    champion.refresh_from_db()
    assert champion.status == VersionStatus.ACTIVE
    assert ModelVersion.objects.count() == 1


def test_a_directory_left_by_a_run_the_database_forgot_does_not_collide(recommender, artifact_dir):
    """After a restore from an older backup, run ids start again below ids already used
    on disk: the old naming (``run-<id>``) then failed with ``already_exists``."""
    champion = run_now(recommender).version
    run = training_run_create(recommender=recommender, trigger=Trigger.API, enqueue=False)
    forgotten = artifact_dir / "default" / f"run-{run.pk}"
    shutil.copytree(artifact_dir / champion.artifact_uri, forgotten)
    run = training_run_execute(run_id=run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert Path(run.version.artifact_uri).name.startswith(f"run-{run.pk}-")
    assert load_artifact(forgotten).sha256 == champion.artifact_sha256  # left alone


def test_a_missing_champion_artifact_is_named_by_the_champion_gate(recommender, artifact_dir):
    run_now(recommender)
    shutil.rmtree(artifact_dir)  # the artifact folder is lost
    run = run_now(recommender)
    assert run.status == RunStatus.SUCCEEDED, run.error
    gate = next(g for g in run.gate_results if g["name"] == "not_worse_than_champion")
    assert gate["message"].startswith("Champion artifact missing: v1 (missing_file:")
    assert "No champion yet" not in gate["message"]
    assert (gate["passed"], gate["skipped"]) == (True, True)


def test_manual_policy_and_no_promote_keep_a_candidate(recommender):
    run = run_now(recommender, no_promote=True)
    assert run.decision == Decision.CANDIDATE
    assert run.version.status == VersionStatus.CANDIDATE
    recommender.promotion_policy = "manual"
    recommender.save()
    assert run_now(recommender).version.status == VersionStatus.CANDIDATE
    assert not ModelVersion.objects.filter(status=VersionStatus.ACTIVE).exists()


def test_a_dry_run_reports_data_and_saves_nothing(recommender):
    run = run_now(recommender, dry_run=True)
    assert run.decision == Decision.DRY_RUN
    assert run.data_stats["events"] == 6000
    assert "would fit lightfm: no_components=16" in run.decision_reason
    assert not ModelVersion.objects.exists()


def test_no_events_fails_clearly(artifact_dir):
    recommender = Recommender.objects.get(name="default")
    run = run_now(recommender)
    assert run.status == RunStatus.FAILED
    assert "no events in the training window" in run.error


def test_a_run_id_is_never_trained_twice(recommender):
    run = training_run_create(recommender=recommender, trigger=Trigger.API, enqueue=False)
    assert training_run_execute(run_id=run.pk).status == RunStatus.SUCCEEDED
    assert training_run_execute(run_id=run.pk) is None
    assert ModelVersion.objects.count() == 1


def test_hyperparameter_overrides_reach_the_model(recommender):
    run = run_now(recommender, overrides={"no_components": 8, "epochs": 2})
    assert run.version.hyperparameters["no_components"] == 8
    artifact = load_artifact(local_artifact_path(run.version.artifact_uri))
    assert artifact.arrays["user_embeddings"].shape[1] == 8


def test_a_second_trigger_while_one_is_queued_is_refused(recommender):
    queued = training_run_create(recommender=recommender, trigger=Trigger.API, enqueue=False)
    with pytest.raises(TrainingAlreadyRunning) as caught:
        run_now(recommender)
    assert caught.value.detail["run_id"] == queued.pk
    assert TrainingRun.objects.count() == 1


def test_artifacts_live_under_the_recommender_folder(recommender, artifact_dir):
    version = run_now(recommender).version
    assert Path(version.artifact_uri).parts[0] == "default"
    assert (artifact_dir / version.artifact_uri / "manifest.json").is_file()


def test_an_unloadable_champion_is_reported_not_fatal(recommender, artifact_dir):
    champion = run_now(recommender).version
    (artifact_dir / champion.artifact_uri / "manifest.json").write_text("{}")
    run = run_now(recommender)
    assert run.status == RunStatus.SUCCEEDED
    assert run.metrics["champion_error"].startswith("unsupported_format")
    assert run.version.status == VersionStatus.ACTIVE
    gate = next(g for g in run.gate_results if g["name"] == "not_worse_than_champion")
    assert gate["message"].startswith("Champion artifact unusable: v1 (unsupported_format:")


def test_a_stored_weight_of_1e39_is_skipped_and_counted_and_the_run_succeeds(recommender):
    # Stored before ingest bounded weights: this row alone made every run fail with
    # "Not all input values are finite".
    Event.objects.filter(pk=Event.objects.order_by("pk").values("pk")[:1]).update(weight=1e39)
    run = run_now(recommender)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.data_stats["invalid_weights_skipped"] == 1
    assert "skipped 1 events with an unusable weight" in run.log


def test_user_features_are_named_by_the_shared_contract(recommender):
    recommender.use_user_features = True
    recommender.save()
    run = run_now(recommender)
    assert run.status == RunStatus.SUCCEEDED, run.error
    names = load_artifact(local_artifact_path(run.version.artifact_uri)).feature_names
    user_names = names["users"]
    assert any(name.startswith("user:") for name in user_names)
    assert all(name.startswith(("id:", "user:")) for name in user_names)
    assert any(name.startswith("category:") for name in names["items"])
