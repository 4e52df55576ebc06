"""``manage.py export_recommendations``: every user's top N, as JSON lines or CSV."""

from __future__ import annotations

import os
import sys
from enum import IntEnum
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.artifacts import ArtifactError
from recommender.exceptions import NoModel, RecsiteError
from recommender.selectors import recommender_get
from recommender.serving.export import (
    ExportFormat,
    export_state_build,
    recommendations_export,
    recommendations_export_file,
)


class ExitCode(IntEnum):
    DONE = 0
    FAILED = 1
    BAD_ARGUMENTS = 2
    NOTHING_TO_SERVE = 3


class Command(BaseCommand):
    requires_system_checks: list[str] = []
    help = (
        "Write every user's top N recommendations, one line per user, from the active "
        "version (or --version N) with the API's filtering and fallbacks: seen and inactive "
        "items left out, new items through their categories, unknown users by popularity. "
        "Users are every user with events (by id) or the lines of --users FILE. Streams in "
        "chunks (flat memory), ranks with --workers processes, shows progress on stderr. "
        "Exit codes: 0 done, 1 the export failed (e.g. the artifact cannot be loaded), "
        "2 bad arguments (unknown recommender or version, unreadable --users file), "
        "3 nothing to serve (no version and no events)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names the model version here, so it replaces Django's own --version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--recommender", default="default", help="name (default: default)")
        parser.add_argument("--version", type=int, help="version number (default: the active one)")
        parser.add_argument("--limit", type=int, default=50, help="items per user (default: 50)")
        parser.add_argument(
            "--format", choices=ExportFormat.CHOICES, default=ExportFormat.JSONL, dest="fmt"
        )
        parser.add_argument("--output", required=True, help="a file path, or - for stdout")
        parser.add_argument("--users", type=Path, help="a file of user ids, one per line")
        parser.add_argument(
            "--workers",
            type=int,
            default=min(2, os.cpu_count() or 1),
            help="ranking processes (default: 2, or 1 on a single core)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts):
        if not 1 <= opts["limit"] <= 1000:
            raise CommandError("--limit must be 1 to 1000", returncode=ExitCode.BAD_ARGUMENTS)
        users_path = opts["users"]
        if users_path is not None and not users_path.is_file():
            raise CommandError(
                f"--users {users_path}: no such file", returncode=ExitCode.BAD_ARGUMENTS
            )
        try:
            recommender = recommender_get(name=opts["recommender"])
            state = export_state_build(recommender=recommender, number=opts["version"])
        except NoModel as exc:
            raise CommandError(exc.message, returncode=ExitCode.NOTHING_TO_SERVE) from exc
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=ExitCode.BAD_ARGUMENTS) from exc
        except ArtifactError as exc:
            raise CommandError(
                f"the artifact cannot be loaded: {exc}", returncode=ExitCode.FAILED
            ) from exc
        options = {
            "state": state,
            "fmt": opts["fmt"],
            "limit": opts["limit"],
            "workers": max(1, opts["workers"]),
        }
        with tqdm(
            unit="users", file=sys.stderr, disable=opts["no_progress"], dynamic_ncols=True
        ) as bar:

            def progress(done: int, total: int | None) -> None:
                bar.total = total
                bar.update(done - bar.n)

            if opts["output"] == "-":
                result = recommendations_export(
                    out=sys.stdout, users_path=users_path, on_progress=progress, **options
                )
                sys.stdout.flush()
            else:
                result = recommendations_export_file(
                    path=Path(opts["output"]),
                    users_path=users_path,
                    on_progress=progress,
                    **options,
                )
        version = "popularity" if result.model_version is None else f"v{result.model_version}"
        self.stderr.write(
            f"{result.users} users exported from {recommender.name} {version} "
            f"({result.fallback_users} by popularity)"
        )
