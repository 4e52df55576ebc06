import argparse
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommender.exceptions import RecsiteError
from recommender.services import demo_data_generate


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = (
        "Generate the synthetic demo shop (items in 12 categories, user profiles, "
        "view/click/like/purchase events over the last DAYS days) through the ingest "
        "services. Running it again with the same arguments adds nothing. "
        "Exit codes: 0 done, 1 the events were refused (e.g. an event type is not "
        "configured), 2 bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=_positive_int, default=1000)
        parser.add_argument("--items", type=_positive_int, default=500)
        parser.add_argument("--events", type=_positive_int, default=50_000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--days", type=_positive_int, default=42)

    def handle(self, *args, **options):
        bar = tqdm(total=options["events"], unit="ev", file=sys.stderr, disable=None)
        try:
            summary = demo_data_generate(
                users=options["users"],
                items=options["items"],
                events=options["events"],
                seed=options["seed"],
                days=options["days"],
                progress=lambda done, total: bar.update(done - bar.n),
            )
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=1) from exc
        finally:
            bar.close()
        self.stdout.write("\n".join(summary.lines()))
