from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "recommender"
    verbose_name = "Recommender: catalog, events, models and serving"

    def ready(self) -> None:
        from django.db import transaction
        from django.db.models.signals import post_delete, post_save

        from recommender.auth import api_keys_changed
        from recommender.models import ApiKey
        from recsite import openapi  # noqa: F401  (registers the API-key scheme for the schema)

        def on_api_key_change(**kwargs) -> None:
            transaction.on_commit(api_keys_changed)

        post_save.connect(on_api_key_change, sender=ApiKey, dispatch_uid="api-keys-changed")
        post_delete.connect(on_api_key_change, sender=ApiKey, dispatch_uid="api-keys-changed")
