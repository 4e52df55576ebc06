from enum import IntEnum

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recommender.artifact_check import artifacts_check, orphans_delete


class ExitCode(IntEnum):
    OK = 0
    ORPHANS = 1
    BAD_ARGUMENTS = 2
    ROWS_BROKEN = 3


class Command(BaseCommand):
    help = (
        "Check the artifact store (RECSITE_ARTIFACT_STORE: a directory or an S3 bucket) "
        "against the model version rows: rows without their artifact, artifacts failing "
        "their checksums, artifacts without a row (orphans). "
        "--fix deletes orphans (never an artifact a row points at). Exit codes: 0 "
        "consistent; 1 orphans remain (disk only; serving is unaffected); 2 bad arguments; "
        "3 a version row's artifact is missing or damaged (takes precedence over 1)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--fix", action="store_true", help="delete orphan artifacts (see --min-age)"
        )
        parser.add_argument(
            "--min-age",
            type=float,
            default=None,
            metavar="SECONDS",
            help="with --fix, delete only orphans at least this old (default: the hard time "
            "limit of a training run, CELERY_TASK_TIME_LIMIT: a run writes its artifact "
            "before its version row commits). 0 when no worker runs (after a restore).",
        )
        parser.add_argument(
            "--no-verify",
            action="store_true",
            help="check presence only (and sizes in S3), without reading every file for its sha256",
        )

    def handle(self, *args, **opts):
        if opts["min_age"] is not None and opts["min_age"] < 0:
            raise CommandError("--min-age must be >= 0", returncode=ExitCode.BAD_ARGUMENTS)
        report = artifacts_check(verify=not opts["no_verify"])
        self.stdout.write(f"artifact store {report.location}: {report.checked} version row(s)")
        for problem in report.missing:
            self.stdout.write(f"row without artifact: {problem}")
        for problem in report.damaged:
            self.stdout.write(f"checksum mismatch: {problem}")
        for problem in report.not_local:
            self.stdout.write(f"not checked (not local): {problem}")
        for path in report.unknown:
            self.stdout.write(f"not an artifact (left alone): {path}")
        for path in report.partial:
            self.stdout.write(f"partial (left to the retention sweep): {path}")
        orphans = report.orphans
        if opts["fix"] and orphans:
            min_age = opts["min_age"]
            deleted, orphans = orphans_delete(
                report=report,
                min_age=settings.CELERY_TASK_TIME_LIMIT if min_age is None else min_age,
            )
            for entry in deleted:
                self.stdout.write(f"deleted orphan: {entry.location}")
        for entry in orphans:
            self.stdout.write(f"artifact without row: {entry.location}")
        self.stdout.write(
            f"{len(report.missing)} missing, {len(report.damaged)} damaged, "
            f"{len(orphans)} orphan(s)"
            + (" kept (younger than --min-age)" if opts["fix"] and orphans else "")
        )
        if not report.rows_ok:
            raise SystemExit(ExitCode.ROWS_BROKEN)
        if orphans:
            raise SystemExit(ExitCode.ORPHANS)
