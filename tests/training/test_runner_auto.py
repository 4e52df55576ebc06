"""Whole runs of the auto algorithm, in process (real database, real fits), on a clock
the test advances itself: the search is recorded on the run, the winner is fitted,
evaluated, gated and promoted as a run of its family; cancel works mid-search."""

import pytest
from django.core.management import CommandError, call_command

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import load_artifact
from recommender.models import Recommender
from training import run_search
from training.models import Decision, RunStatus, TrainingRun, Trigger
from training.runner import training_run_execute_now

from .search_helpers import TickClock

pytestmark = pytest.mark.django_db


@pytest.fixture
def auto(recommender, monkeypatch) -> Recommender:
    """The small generated shop of ``recommender``, set to auto with a 4 s budget, read
    from a clock that advances 0.05 s per read."""
    recommender.algorithm = "auto"
    recommender.tuning_budget_seconds = 4
    recommender.save()
    monkeypatch.setattr(run_search, "search_clock", lambda: TickClock(0.05))
    return recommender


def test_an_auto_run_searches_then_fits_gates_and_promotes_the_winner(auto):
    run = training_run_execute_now(recommender=auto, trigger=Trigger.CLI)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.decision == Decision.PROMOTED, run.decision_reason
    assert run.hyperparameters == {
        "family": "auto",
        "tuning_budget_seconds": 4,
        "num_threads": 2,
        "random_seed": 42,
    }
    search = run.search
    assert search["budget_seconds"] == 4 and search["metric"] == "precision@10"
    assert search["seconds"] <= 4 * 1.1
    trials = search["trials"]
    assert len(trials) >= 6
    assert set(trials[0]) == {"number", "family", "params", "value", "seconds", "state", "note"}
    winner = search["winner"]
    assert winner["value"] == max(t["value"] for t in trials if t["state"] == "complete")
    assert search["runner_up"]["family"] != winner["family"]
    assert search["margin"] == pytest.approx(winner["value"] / search["runner_up"]["value"] - 1)
    version = run.version.hyperparameters
    assert version == {
        "family": winner["family"],
        **winner["params"],
        "num_threads": 2,
        "random_seed": 42,
    }
    artifact = load_artifact(local_artifact_path(run.version.artifact_uri))
    assert artifact.family == winner["family"]
    assert "search" in run.phase_timings and "fit" in run.phase_timings
    assert f"{winner['family']} won: precision@10" in run.log


def test_retrain_runs_auto_with_a_time_budget(auto, capsys):
    call_command("retrain", "--algorithm", "auto", "--time-budget", "3")
    out = capsys.readouterr().out
    assert "model: auto: tuning_budget_seconds=3, num_threads=2, random_seed=42" in out
    assert "search: " in out and " won: precision@10 " in out
    assert TrainingRun.objects.get().search["budget_seconds"] == 3


def test_retrain_refuses_hyper_parameters_for_auto(auto, capsys):
    with pytest.raises(CommandError) as caught:
        call_command("retrain", "--algorithm", "auto", "--lambda", "3")
    assert caught.value.returncode == 2
    assert "'lambda' cannot be set for an auto run" in str(caught.value)
    assert not TrainingRun.objects.exists()


def test_a_cancel_stops_the_search_and_keeps_the_trials_so_far(auto, monkeypatch):
    class CancellingClock(TickClock):
        """Asks for a cancel of the live run after 60 reads."""

        def __call__(self) -> float:
            if round(self.now / self.tick) == 60:
                TrainingRun.objects.filter(status=RunStatus.RUNNING).update(cancel_requested=True)
            return super().__call__()

    monkeypatch.setattr(run_search, "search_clock", lambda: CancellingClock(0.05))
    auto.tuning_budget_seconds = 100
    auto.save()
    run = training_run_execute_now(recommender=auto, trigger=Trigger.CLI)
    assert run.status == RunStatus.CANCELLED
    assert run.phase == "search"
    assert run.search["trials"] and "winner" not in run.search
    assert run.version is None
