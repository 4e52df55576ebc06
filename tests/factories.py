"""factory_boy factories for the records tests need."""

from datetime import UTC, datetime

import factory

from recommender.models import Event, Item, UserProfile


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
