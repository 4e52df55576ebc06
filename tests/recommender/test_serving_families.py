"""Until serving scores every family (issue 15, next part), a version of another family
made active is refused by the loader with a clear error and the old version keeps
serving."""

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from recommender.artifacts import ArtifactMeta, write_artifact
from recommender.models import Recommender
from recommender.services.registry import model_version_create, model_version_promote
from recommender.serving import registry
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db


def test_an_active_item_item_version_is_refused_and_the_lightfm_one_keeps_serving(
    artifact_dir, client
):
    spec = default_spec(seed=1)
    create_catalog(spec)
    create_version(spec)
    assert registry.state("default").version_number == 1
    n_users, n_items = len(spec.users), len(spec.items)
    info = write_artifact(
        Path(settings.RECSITE_ARTIFACT_DIR).resolve() / "default",
        "v2",
        arrays={
            "similarity_data": np.ones(n_items, np.float32),
            "similarity_indices": np.roll(np.arange(n_items, dtype=np.int32), 1),
            "similarity_indptr": np.arange(n_items + 1, dtype=np.int64),
            "popularity": spec.popularity,
            "seen_indptr": np.zeros(n_users + 1, np.int64),
            "seen_indices": np.zeros(0, np.int32),
        },
        id_maps={"users": spec.users, "items": spec.items},
        meta=ArtifactMeta(family="ease", hyperparameters={"family": "ease", "lambda": 300.0}),
    )
    version = model_version_create(
        recommender=Recommender.objects.get(name="default"),
        artifact_uri="default/v2",
        artifact_sha256=info.sha256,
        artifact_size=info.size_bytes,
        metrics={},
        hyperparameters={"family": "ease"},
        data_window={},
        data_stats={},
    )
    model_version_promote(version=version, reason="test")  # a valid artifact: promotable

    registry.refresh()

    assert registry.state("default").version_number == 1
    health = client.get("/readyz").json()["checks"]["serving"]["recommenders"]["default"]
    assert health["last_load_error"]["code"] == "unsupported_family"
    assert (
        "is a ease model; this server scores lightfm models only"
        in (health["last_load_error"]["message"])
    )
