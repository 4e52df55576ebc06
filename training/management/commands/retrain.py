"""``manage.py retrain``: train a recommender now, in the foreground."""

from __future__ import annotations

import sys
from enum import IntEnum

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from recommender.config_schema import SETTINGS, config_clean
from recommender.exceptions import RecsiteError
from recommender.selectors import recommender_get
from training.exceptions import TrainingAlreadyRunning
from training.models import Decision, RunStatus, Trigger
from training.reports import render_run_summary
from training.runner import training_run_execute_now


class ExitCode(IntEnum):
    DONE = 0
    FAILED = 1
    BAD_ARGUMENTS = 2
    REJECTED = 3
    ALREADY_RUNNING = 4


# option (argparse dest) -> (recommender setting, argparse type); the allowed values are
# recommender.config_schema's, as for the admin form and the API.
OVERRIDES = {
    "epochs": ("epochs", int),
    "components": ("no_components", int),
    "loss": ("loss", str),
    "learning_rate": ("learning_rate", float),
    "item_alpha": ("item_alpha", float),
    "user_alpha": ("user_alpha", float),
    "threads": ("num_threads", int),
    "seed": ("random_seed", int),
}


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _allowed(setting: str) -> str:
    return SETTINGS[setting].range_text()


class Command(BaseCommand):
    # System checks belong to deploys and `manage.py check`; skipping them here saves
    # seconds on every foreground run.
    requires_system_checks: list[str] = []
    help = (
        "Train a recommender now, in the foreground, with live progress: load the events, "
        "fit LightFM, evaluate it next to the popularity baseline and the active version, "
        "apply the gates and the promotion policy. Prints the metric table and the "
        "decision. Exit codes: 0 done (promoted, or kept as a candidate: the output says "
        "which), 1 the run failed, 2 bad arguments, 3 a gate rejected the candidate, "
        "4 a run of that recommender is already queued or running."
    )

    def add_arguments(self, parser):
        parser.add_argument("--recommender", default="default", help="name (default: default)")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="load the data and print its stats and the plan; fit nothing, save nothing",
        )
        parser.add_argument(
            "--no-promote",
            action="store_true",
            help="keep a passing candidate as a candidate instead of promoting it",
        )
        for dest, (setting, kind) in OVERRIDES.items():
            parser.add_argument(
                _option(dest),
                type=kind,
                help=f"override the recommender's {setting} ({_allowed(setting)})",
            )

    def handle(self, *args, **opts):
        overrides = _overrides(opts)
        options = {"dry_run": opts["dry_run"], "no_promote": opts["no_promote"]}
        if overrides:
            options["overrides"] = overrides
        try:
            recommender = recommender_get(name=opts["recommender"])
            run = training_run_execute_now(
                recommender=recommender,
                trigger=Trigger.CLI,
                options=options,
                actor_label="manage.py retrain",
                on_progress=self._progress,
            )
        except TrainingAlreadyRunning as exc:
            raise CommandError(exc.message, returncode=ExitCode.ALREADY_RUNNING) from exc
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=ExitCode.BAD_ARGUMENTS) from exc
        self.stdout.write(render_run_summary(run))
        code = _exit_code(run.status, run.decision)
        if code != ExitCode.DONE:
            sys.exit(code)

    def _progress(self, phase: str, fraction: float, message: str) -> None:
        if message:
            self.stderr.write(f"[{fraction:6.1%}] {phase:<9} {message}")


def _overrides(opts: dict) -> dict:
    """The hyper-parameter options given, checked by the recommender schema; a bad one is
    exit code 2 with the schema's message under the option's name."""
    given = {
        setting: opts[dest]
        for dest, (setting, _) in OVERRIDES.items()
        if opts.get(dest) is not None
    }
    try:
        return config_clean(given)
    except ValidationError as exc:
        option = {setting: _option(dest) for dest, (setting, _) in OVERRIDES.items()}
        problems = "; ".join(
            f"{option[name]}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
        raise CommandError(problems, returncode=ExitCode.BAD_ARGUMENTS) from exc


def _exit_code(status: str, decision: str) -> ExitCode:
    if status != RunStatus.SUCCEEDED:
        return ExitCode.FAILED
    if decision == Decision.REJECTED:
        return ExitCode.REJECTED
    return ExitCode.DONE
