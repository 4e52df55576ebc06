"""factory_boy factories for the records tests need."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Max
from django.test import Client

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import MANIFEST, ArtifactError, ArtifactMeta, write_artifact
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
from recommender.seen_tokens import events_written
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

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        """Stored as every writer of events does: replacing the user's seen token, so a
        serving cache does not keep the user's recent items from before."""
        event = super()._create(model_class, *args, **kwargs)
        events_written([event.user_external_id])
        return event


class RecommenderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recommender
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"rec-{n}")
    # The model's default is auto (a search within a time budget); tests that train
    # choose a family unless they are about auto.
    algorithm = "lightfm"


def _tiny_artifact(uri: str) -> tuple[str, int]:
    """A real, verifiable artifact (2 users x 3 items) at ``uri`` under
    ``RECSITE_ARTIFACT_DIR`` -- promote verifies the artifact -- as (sha256, size). An
    artifact already there is reused; a URI that is not local gets a placeholder."""
    try:
        path = local_artifact_path(uri)
    except ValueError:
        return "0" * 64, 1024
    if not (path / MANIFEST).is_file():
        rng = np.random.default_rng(0)
        try:
            write_artifact(
                path.parent,
                path.name,
                arrays={
                    "user_embeddings": rng.random((2, 2)),
                    "user_biases": np.zeros(2),
                    "item_embeddings": rng.random((3, 2)),
                    "item_biases": np.zeros(3),
                    "item_feature_embeddings": rng.random((3, 2)),
                    "item_feature_biases": np.zeros(3),
                    "popularity": np.array([3, 2, 1]),
                    "seen_indptr": np.array([0, 1, 1]),
                    "seen_indices": np.array([0]),
                },
                id_maps={"users": ["u-0", "u-1"], "items": ["i-0", "i-1", "i-2"]},
                meta=ArtifactMeta(feature_names={"items": ["id:i-0", "id:i-1", "id:i-2"]}),
            )
        except (ArtifactError, OSError):  # written meanwhile by a parallel test worker
            pass
    body = (path / MANIFEST).read_bytes()
    size = sum(f.stat().st_size for f in Path(path).iterdir())
    return hashlib.sha256(body).hexdigest(), size


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
    artifact_sha256 = factory.LazyAttribute(lambda o: _tiny_artifact(o.artifact_uri)[0])
    artifact_size = factory.LazyAttribute(lambda o: _tiny_artifact(o.artifact_uri)[1])
    metrics = factory.LazyFunction(lambda: {"precision_at_k": 0.1})
    hyperparameters = factory.LazyFunction(lambda: {"family": "lightfm", "no_components": 32})


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


def staff_client(username: str, *perms: str, client_class=Client, superuser: bool = False):
    """A logged-in ``client_class`` for a new staff user holding ``perms``
    (``"app_label.codename"``)."""
    user = get_user_model().objects.create_user(username, is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = client_class()
    client.force_login(user)
    return client
