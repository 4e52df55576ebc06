"""``manage.py retrain``: train a recommender now, in the foreground."""

from __future__ import annotations

import sys
from enum import IntEnum

from django.core.management.base import BaseCommand, CommandError

from recommender.exceptions import RecsiteError
from recommender.models import Loss
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
        parser.add_argument("--epochs", type=int, help="override the recommender's epochs")
        parser.add_argument("--components", type=int, help="override no_components")
        parser.add_argument("--loss", choices=Loss.values, help="override the loss")
        parser.add_argument("--learning-rate", type=float, help="override the learning rate")
        parser.add_argument("--item-alpha", type=float, help="override item_alpha")
        parser.add_argument("--user-alpha", type=float, help="override user_alpha")
        parser.add_argument("--threads", type=int, help="override num_threads")
        parser.add_argument("--seed", type=int, help="override random_seed")

    def handle(self, *args, **opts):
        overrides = {
            field: cast(opts[option])
            for option, (field, cast) in OVERRIDES.items()
            if opts.get(option) is not None
        }
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


def _exit_code(status: str, decision: str) -> ExitCode:
    if status != RunStatus.SUCCEEDED:
        return ExitCode.FAILED
    if decision == Decision.REJECTED:
        return ExitCode.REJECTED
    return ExitCode.DONE
