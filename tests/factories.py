"""factory_boy factories for the records tests need."""

from datetime import UTC, datetime

import factory
from django.db.models import Max

from recommender.models import (
    Event,
    Item,
    ModelVersion,
    PromotionEvent,
    PromotionKind,
    Recommender,
    UserProfile,
    VersionStatus,
)
from training.models import RunStatus, TrainingRun, Trigger


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    external_id = factory.Sequence(lambda n: f"item-{n}")
    title = factory.Sequence(lambda n: f"Item {n}")
    categories = factory.LazyFunction(lambda: ["general"])


class UserProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserProfile

    external_id = factory.Sequence(lambda n: f"user-{n}")
    features = factory.LazyFunction(list)


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    event_id = factory.Sequence(lambda n: f"event-{n}")
    user_external_id = factory.Sequence(lambda n: f"user-{n % 10}")
    item = factory.SubFactory(ItemFactory)
    event_type = "view"
    timestamp = factory.LazyFunction(lambda: datetime(2024, 1, 1, tzinfo=UTC))


class RecommenderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recommender
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"rec-{n}")


def _next_version_number(version) -> int:
    last = version.recommender.versions.aggregate(last=Max("number"))["last"]
    return (last or 0) + 1


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A version row; the artifact is not written (``artifact_uri`` is relative to
    ``RECSITE_ARTIFACT_DIR``). Create active versions through ``model_version_promote``."""

    class Meta:
        model = ModelVersion

    recommender = factory.SubFactory(RecommenderFactory)
    number = factory.LazyAttribute(_next_version_number)
    status = VersionStatus.CANDIDATE
    artifact_uri = factory.LazyAttribute(lambda o: f"{o.recommender.name}/v{o.number}")
    artifact_sha256 = "0" * 64
    artifact_size = 1024
    metrics = factory.LazyFunction(lambda: {"precision_at_k": 0.1})
    hyperparameters = factory.LazyFunction(lambda: {"no_components": 32})


class PromotionEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromotionEvent

    to_version = factory.SubFactory(ModelVersionFactory)
    recommender = factory.SelfAttribute("to_version.recommender")
    kind = PromotionKind.PROMOTE
    reason = "test"


class TrainingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingRun

    recommender = factory.SubFactory(RecommenderFactory)
    trigger = Trigger.CLI
    triggered_by_label = "test"
    status = RunStatus.QUEUED
