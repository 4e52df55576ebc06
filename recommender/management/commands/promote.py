from django.core.management.base import BaseCommand, CommandError

from recommender.exceptions import RecsiteError
from recommender.selectors import model_version_get, recommender_get
from recommender.services import model_version_promote


class Command(BaseCommand):
    help = (
        "Make a model version the active one (the current one becomes the rollback "
        "target), with an audit record. Exit codes: 0 promoted, 1 refused (e.g. a "
        "rejected or already active version), 2 bad arguments or unknown version."
    )

    def add_arguments(self, parser):
        parser.add_argument("number", type=int, help="the version number, e.g. 7")
        parser.add_argument("--reason", required=True, help="why (kept in the audit trail)")
        parser.add_argument("--recommender", default="default")

    def handle(self, *args, **opts):
        try:
            recommender = recommender_get(name=opts["recommender"])
            version = model_version_get(recommender=recommender, number=opts["number"])
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        try:
            event = model_version_promote(
                version=version, actor_label="manage.py promote", reason=opts["reason"]
            )
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=1) from exc
        previous = f"v{event.from_version.number}" if event.from_version else "nothing"
        self.stdout.write(
            f"{recommender.name}: v{version.number} is active (was {previous}); audit #{event.pk}"
        )
