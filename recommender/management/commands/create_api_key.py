from django.core.management.base import BaseCommand, CommandError

from recommender.exceptions import RecsiteError
from recommender.models import Scope
from recommender.services import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a client app and print it once (it is stored hashed). "
        "Send it as `Authorization: Api-Key <key>`."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the client app's name, e.g. web-frontend")
        parser.add_argument(
            "--scopes",
            nargs="+",
            required=True,
            choices=Scope.values,
            metavar="SCOPE",
            help="one or more of: " + ", ".join(Scope.values),
        )

    def handle(self, *args, **options):
        try:
            api_key, key = api_key_create(name=options["name"], scopes=options["scopes"])
        except RecsiteError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        self.stderr.write(
            f"Created key {api_key.prefix!r} for {api_key.name!r} with scopes "
            f"{', '.join(api_key.scopes)}. It is shown only now:"
        )
        self.stdout.write(key)
