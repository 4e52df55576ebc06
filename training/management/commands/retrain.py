"""``manage.py retrain``: train a recommender now, in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from types import FrameType
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from recommender.config_schema import SETTINGS, run_overrides_clean
from recommender.exceptions import RecsiteError
from recommender.families import FAMILIES, Algorithm, FamilyUnavailable
from recommender.selectors import recommender_get
from recommender.setting_types import BOOL, FLOAT, INT, Setting
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
    INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


# The run settings' options (argparse dest -> setting); every family hyper-parameter gets
# an option of its own name (``--no-components``, ``--lambda``) and ``--set NAME=VALUE``.
# The allowed values are the schemas' (recommender.config_schema, recommender.families),
# as for the admin form and the API.
RUN_OPTIONS = {
    "threads": "num_threads",
    "seed": "random_seed",
    "time_budget": "tuning_budget_seconds",
}
PARAMS: dict[str, Setting] = {
    param.name: param for family in FAMILIES.values() for param in family.params
}


def _boolean(text: str) -> bool | str:
    """``true`` / ``false`` (any case); anything else is passed on for the schema to
    refuse with its message."""
    return {"true": True, "false": False}.get(text.lower(), text)


ARGPARSE_TYPES = {INT: int, FLOAT: float, BOOL: _boolean}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _families_of(name: str) -> str:
    return ", ".join(f.name for f in FAMILIES.values() if f.param(name) is not None)


def _assignment(text: str) -> tuple[str, Any]:
    """``--set lambda=300``: the name and the value as JSON (a number, true / false, a
    quoted string) or else the plain text (``--set loss=bpr``)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


class Command(BaseCommand):
    # System checks belong to deploys and `manage.py check`; skipping them here saves
    # seconds on every foreground run.
    requires_system_checks: list[str] = []
    help = (
        "Train a recommender now, in the foreground, with live progress: load the events, "
        "fit its model family (--algorithm; hyper-parameters with their own options or "
        "--set NAME=VALUE) or, with auto, search the families and their hyper-parameters "
        "for --time-budget seconds and fit the winner; evaluate it next to the popularity "
        "baseline and the active version, "
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
        parser.add_argument(
            "--algorithm",
            choices=list(Algorithm.values),
            help="the model family for this run, or auto (default: the recommender's)",
        )
        parser.add_argument(
            "--set",
            dest="assignments",
            metavar="NAME=VALUE",
            action="append",
            type=_assignment,
            default=[],
            help="override one of the family's hyper-parameters (repeatable)",
        )
        for dest, setting in RUN_OPTIONS.items():
            only = " (auto only)" if setting == "tuning_budget_seconds" else ""
            parser.add_argument(
                _option(dest),
                type=ARGPARSE_TYPES[SETTINGS[setting].kind],
                help=f"override the recommender's {setting}{only} "
                f"({SETTINGS[setting].range_text()})",
            )
        for name, param in PARAMS.items():
            parser.add_argument(
                _option(name),
                dest=f"param_{name}",
                type=ARGPARSE_TYPES.get(param.kind, str),
                help=f"{param.help} ({_families_of(name)}: {param.range_text()}; "
                f"default {param.default})".replace("%", "%%"),
            )

    def handle(self, *args, **opts):
        try:
            recommender = recommender_get(name=opts["recommender"])
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=ExitCode.BAD_ARGUMENTS) from exc
        algorithm = opts["algorithm"] or recommender.algorithm
        options = {
            "dry_run": opts["dry_run"],
            "no_promote": opts["no_promote"],
            "algorithm": opts["algorithm"],
            "overrides": _overrides(opts, algorithm),
        }
        try:
            with _sigterm_interrupts():
                run = training_run_execute_now(
                    recommender=recommender,
                    trigger=Trigger.CLI,
                    options=options,
                    actor_label="manage.py retrain",
                    on_progress=self._progress,
                )
        except KeyboardInterrupt as exc:
            self.stderr.write(f"interrupted ({exc or 'SIGINT'}): the run is cancelled")
            sys.exit(ExitCode.INTERRUPTED)
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


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``kill``, a stopping container) raises ``KeyboardInterrupt`` as Ctrl-C
    does, so the run is recorded as cancelled instead of staying "running" until the
    reaper fails it."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (call_command from a thread)
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _overrides(opts: dict, algorithm: str) -> dict:
    """The overrides given (options and ``--set``), checked by the schemas against the
    run's family; a bad one is exit code 2 with the schema's message under its option."""
    given: dict[str, Any] = {}
    option: dict[str, str] = {}
    for dest, setting in RUN_OPTIONS.items():
        if opts.get(dest) is not None:
            given[setting], option[setting] = opts[dest], _option(dest)
    for name in PARAMS:
        if opts.get(f"param_{name}") is not None:
            given[name], option[name] = opts[f"param_{name}"], _option(name)
    for name, value in opts["assignments"]:
        given[name], option[name] = value, f"--set {name}"
    try:
        return run_overrides_clean(algorithm, given)
    except FamilyUnavailable as exc:
        raise CommandError(f"--algorithm: {exc}", returncode=ExitCode.BAD_ARGUMENTS) from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{option.get(name, name)}: {' '.join(messages)}"
            for name, messages in exc.message_dict.items()
        )
        raise CommandError(problems, returncode=ExitCode.BAD_ARGUMENTS) from exc


def _exit_code(status: str, decision: str) -> ExitCode:
    if status != RunStatus.SUCCEEDED:
        return ExitCode.FAILED
    if decision == Decision.REJECTED:
        return ExitCode.REJECTED
    return ExitCode.DONE
