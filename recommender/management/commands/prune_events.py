import argparse
import sys

from django.core.management.base import BaseCommand, DjangoHelpFormatter
from django.utils import timezone

from recommender.services import events_prune
from recommender.services.events_retention import DELETE_BATCH, RetentionOutcome

EXIT_BLOCKED = 3

EPILOG = f"""\
Deletes events older than RECSITE_EVENT_RETENTION_DAYS and older than every
recommender's training window (window_days), and only those the attribution pass has
read; what beat runs every RECSITE_EVENT_RETENTION_INTERVAL_SECONDS. Batches of
--batch-size events, each its own short transaction; one "Events past retention" data
erasure row records the pass. Safe next to ingest, training and beat; a pass that stops
is resumed by running again.

exit codes:
  0  done (events deleted, nothing old enough, or retention unset: nothing to do)
  2  bad arguments
  {EXIT_BLOCKED}  retention is set but blocked: a recommender trains on all history (give
     it a window_days or set RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY=true), or the
     attribution pass has not run yet
"""


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's argument order, and the epilog printed as written."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = "Delete events past retention now (what beat runs); --dry-run counts them."

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = _HelpFormatter
        parser.epilog = EPILOG
        return parser

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=DELETE_BATCH,
            help=f"Events per batch (transaction); default {DELETE_BATCH:,}.",
        )

    def handle(self, *args, **options):
        result = events_prune(
            now=timezone.now(),
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            actor_label="manage.py prune_events",
        )
        self.stdout.write(result.summary())
        if result.outcome == RetentionOutcome.BLOCKED:
            sys.exit(EXIT_BLOCKED)
