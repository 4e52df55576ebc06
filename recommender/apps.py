from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "recommender"
    verbose_name = "Recommender: catalog, events, models and serving"

    def ready(self) -> None:
        from recsite import openapi  # noqa: F401  (registers the API-key scheme for the schema)
