import argparse
import sys

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from tqdm import tqdm

from recommender.datasets import FORMATS, MAX_LINE_BYTES
from recommender.exceptions import DatasetImportFailed, DatasetSourceInvalid
from recommender.services import dataset_import

EXIT_FAILED = 1
EXIT_BAD_ARGUMENTS = 2

LAYOUTS = f"""\
layouts:
  movielens  PATH is a MovieLens directory; the layout is told by the files present.
             100K: u.data (user TAB item TAB rating TAB unix_ts), u.item (|-separated,
             ISO-8859-1, 19 genre flags named by u.genre), u.user (id|age|gender|
             occupation|zip). 1M: ratings.dat (user::item::rating::ts), movies.dat
             (id::title::Genre1|Genre2, latin-1), users.dat (id::gender::age::
             occupation::zip). Ratings become events of type "rating" with the rating
             as weight, genres the item categories, demographics the user features.
             Event ids: ml:USER:ITEM:TS.

  csv        PATH is an events CSV, UTF-8, with a header line naming the columns:
               user_id,item_id,timestamp   required
               type                        optional, default "view"; one of the
                                           configured event types
               weight                      optional number
               event_id                    optional; without it the id is a hash of
                                           the row's fields, so re-imports match
             timestamp: ISO-8601 (naive means UTC) or Unix seconds. Other columns are
             ignored; an empty cell counts as not given.
             --items FILE: an items CSV with the header item_id,title,categories
             (item_id required; categories separated by "|").

A line longer than --max-line-bytes (default {MAX_LINE_BYTES:,}) or holding a NUL byte
is a malformed line (file:line in the message; skipped and counted with --skip-invalid).

Items are imported first, then user profiles, then events in batches. Re-running an
import is safe: events already stored are counted as duplicates, items are updated.

exit codes:
  0  imported
  {EXIT_FAILED}  the import failed: a malformed line or an invalid row (the message names
     file:line; batches before it stay written, fix the file and re-run), unless
     --skip-invalid, which counts and skips such rows
  {EXIT_BAD_ARGUMENTS}  bad arguments: the path is missing, or not in the given format
"""


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's argument order, and the layouts epilog printed as written."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = "Import a MovieLens or CSV dataset: items, user profiles and events."

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        kwargs.setdefault("epilog", LAYOUTS)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("path", help="a MovieLens directory or an events CSV")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--items", metavar="FILE", help="items CSV (--format csv only)")
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="skip and count malformed lines and invalid rows instead of stopping",
        )
        parser.add_argument(
            "--batch-size",
            type=_positive_int,
            default=5000,
            metavar="N",
            help="rows per write transaction (default 5000)",
        )
        parser.add_argument(
            "--max-line-bytes",
            type=_positive_int,
            default=MAX_LINE_BYTES,
            metavar="N",
            help=f"longest line accepted, in bytes (default {MAX_LINE_BYTES:,})",
        )

    def handle(self, *args, **options):
        bar = tqdm(total=0, unit="B", unit_scale=True, file=sys.stderr, disable=None)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            summary = dataset_import(
                path=options["path"],
                format=options["format"],
                items_path=options["items"],
                skip_invalid=options["skip_invalid"],
                batch_size=options["batch_size"],
                max_line_bytes=options["max_line_bytes"],
                progress=progress,
            )
        except DatasetSourceInvalid as exc:
            raise CommandError(exc.message, returncode=EXIT_BAD_ARGUMENTS) from exc
        except DatasetImportFailed as exc:
            raise CommandError(exc.message, returncode=EXIT_FAILED) from exc
        finally:
            bar.close()
        self.stdout.write("\n".join(summary.lines()))
