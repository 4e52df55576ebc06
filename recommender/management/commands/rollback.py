from django.core.management.base import BaseCommand, CommandError

from recommender.exceptions import RecsiteError
from recommender.selectors import recommender_get
from recommender.services import model_version_rollback


class Command(BaseCommand):
    help = (
        "Make the previously active version active again, with an audit record. Exit "
        "codes: 0 rolled back, 1 refused (no previous version, or its artifact was "
        "deleted by retention), 2 bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="why (kept in the audit trail)")
        parser.add_argument("--recommender", default="default")

    def handle(self, *args, **opts):
        try:
            recommender = recommender_get(name=opts["recommender"])
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        try:
            event = model_version_rollback(
                recommender=recommender, actor_label="manage.py rollback", reason=opts["reason"]
            )
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=1) from exc
        self.stdout.write(
            f"{recommender.name}: rolled back from v{event.from_version.number} to "
            f"v{event.to_version.number}; audit #{event.pk}"
        )
