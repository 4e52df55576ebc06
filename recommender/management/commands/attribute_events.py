from django.core.management.base import BaseCommand
from django.utils import timezone

from recommender.online.attribution import SETTLE, attribution_run


class Command(BaseCommand):
    help = (
        "Run one attribution pass now (what beat runs every minute): the served lists and "
        f"events not read yet, older than {SETTLE.total_seconds():g} s, into the hourly "
        "online metrics and the experiments' per-user counts. Safe to run at any time, "
        "also next to beat: passes take turns and never count anything twice. Exit code 0."
    )

    def handle(self, *args, **options):
        result = attribution_run(now=timezone.now())
        self.stdout.write(result.summary())
