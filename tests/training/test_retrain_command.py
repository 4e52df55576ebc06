"""``manage.py retrain``: exit codes and output (runs in process on generated data)."""

import os
import signal

import pytest
from django.core.management import CommandError, call_command

from recommender.models import ModelVersion, Recommender
from recommender.services import demo_data_generate
from training.models import RunStatus, TrainingRun, Trigger
from training.services import training_run_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def recommender(settings, tmp_path):
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    demo_data_generate(users=100, items=60, events=4000, seed=3, days=21)
    recommender = Recommender.objects.get(name="default")
    recommender.algorithm = "lightfm"  # a fresh install's default is auto
    recommender.save()
    return recommender


def retrain(*args):
    try:
        call_command("retrain", *args)
    except SystemExit as exit_:
        return exit_.code
    return 0


def test_a_successful_run_prints_the_table_and_exits_0(recommender, capsys):
    assert retrain("--epochs", "3") == 0
    out = capsys.readouterr()
    assert "precision@10" in out.out and "popularity" in out.out
    assert "decision: Promoted" in out.out
    assert "fit lightfm: step 3/3" in out.err


def test_a_gate_rejection_exits_3(recommender):
    recommender.gate_min_users = 10**6
    recommender.save()
    assert retrain("--epochs", "2") == 3


def test_a_failed_run_exits_1():
    assert retrain() == 1  # no events at all


def test_a_live_run_exits_4(recommender):
    queued = training_run_create(recommender=recommender, trigger=Trigger.API, enqueue=False)
    with pytest.raises(CommandError) as caught:
        call_command("retrain")
    assert caught.value.returncode == 4
    assert f"#{queued.pk}" in str(caught.value)


def test_bad_arguments_exit_2(recommender):
    with pytest.raises(CommandError) as caught:
        call_command("retrain", "--recommender", "nope")
    assert caught.value.returncode == 2


def test_dry_run_fits_nothing(recommender, capsys):
    assert retrain("--dry-run") == 0
    assert "would fit lightfm: no_components=32, loss=warp," in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "100000"], "--epochs: 100000 is out of range: give a number from 1 to 1000."),
        (
            ["--no-components", "0"],
            "--no-components: 0 is out of range: give a number from 1 to 512.",
        ),
        (["--set", "epochs=0"], "--set epochs: 0 is out of range: give a number from 1 to 1000."),
        (["--set", "lambda=300"], "--set lambda: 'lambda' is not a hyper-parameter of lightfm"),
        (["--algorithm", "ease", "--set", "lambda=0"], "--set lambda: 0 is out of range"),
        (
            ["--algorithm", "ease", "--neighbours", "5"],
            "--neighbours: 'neighbours' is not a hyper-parameter of ease",
        ),
        (["--threads", "65"], "--threads: 65 is out of range: give a number from 1 to 64."),
        (["--learning-rate", "nan"], "--learning-rate: nan is not a finite number."),
        (["--loss", "hinge"], "--loss: 'hinge' is not allowed: give one of warp, bpr"),
    ],
)
def test_out_of_range_overrides_exit_2_naming_the_option(recommender, args, message):
    with pytest.raises(CommandError) as caught:
        call_command("retrain", *args)
    assert caught.value.returncode == 2
    assert message in str(caught.value)
    assert not TrainingRun.objects.exists()


class _StopAtFirstFitStep:
    """A stderr for the command that sends this process SIGTERM when the first fit step
    is reported, as ``kill`` would mid-training."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)
        if "step 1/" in text:
            os.kill(os.getpid(), signal.SIGTERM)

    def flush(self) -> None:
        pass


def test_sigterm_mid_fit_cancels_the_run_and_exits_130(recommender, settings):
    handler = signal.getsignal(signal.SIGTERM)
    stderr = _StopAtFirstFitStep()
    with pytest.raises(SystemExit) as exit_:
        call_command("retrain", "--epochs", "50", stderr=stderr)
    assert exit_.value.code == 130
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.CANCELLED
    assert run.decision_reason.startswith("interrupted in phase fit (SIGTERM)")
    assert run.version is None and not ModelVersion.objects.exists()
    assert not any(path.is_file() for path in settings.RECSITE_ARTIFACT_DIR.rglob("*"))
    assert "interrupted (SIGTERM): the run is cancelled" in "".join(stderr.lines)
    assert signal.getsignal(signal.SIGTERM) is handler  # the command's handler is gone
