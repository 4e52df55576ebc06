from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete, post_save


class RecommenderConfig(AppConfig):
    name = "recommender"
    verbose_name = "Recommender: catalog, events, models and serving"

    def ready(self) -> None:
        # Deferred: models (and auth, which imports them) load only once the registry is ready.
        from recommender.auth import api_keys_changed
        from recommender.models import ApiKey

        def on_api_key_change(**kwargs) -> None:
            transaction.on_commit(api_keys_changed)

        post_save.connect(on_api_key_change, sender=ApiKey, dispatch_uid="api-keys-changed")
        post_delete.connect(on_api_key_change, sender=ApiKey, dispatch_uid="api-keys-changed")
