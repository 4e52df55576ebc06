"""Hand-made model versions for the serving tests: real artifacts (written by
``write_artifact``, registered and promoted through the services), with factors chosen so
the expected ranking is known, and no LightFM fit (milliseconds, not seconds)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from django.conf import settings

from recommender.artifact_store import artifact_publish, artifact_staging_dir
from recommender.artifacts import ArtifactInfo, ArtifactMeta, write_artifact
from recommender.models import Item, ModelVersion, Recommender
from recommender.services.registry import model_version_create, model_version_promote
from recommender.serving.registry import registry


@dataclass(frozen=True)
class ModelSpec:
    """``item_factors[i]`` is item i's own (identity) feature vector; ``categories`` maps
    an item to its categories, each with a feature vector in ``category_factors``. Item
    representations are LightFM's: the mean of the identity and category vectors."""

    users: list[str]
    items: list[str]
    user_factors: np.ndarray
    item_factors: np.ndarray
    category_factors: dict[str, np.ndarray]
    categories: dict[str, list[str]]
    seen: dict[str, list[str]]
    popularity: np.ndarray

    @cached_property
    def item_positions(self) -> dict[str, int]:
        """``items.index`` in O(1): specs of 10,000 items are written in the load tests."""
        return {item: n for n, item in enumerate(self.items)}

    def item_representation(self, item: str) -> np.ndarray:
        rows = [self.item_factors[self.item_positions[item]]]
        rows += [self.category_factors[c] for c in self.categories.get(item, [])]
        return np.mean(rows, axis=0).astype(np.float32)


def default_spec(n_users: int = 6, n_items: int = 30, dim: int = 4, seed: int = 0) -> ModelSpec:
    rng = np.random.default_rng(seed)
    items = [f"item-{i}" for i in range(n_items)]
    users = [f"user-{u}" for u in range(n_users)]
    category_names = ["drama", "comedy", "noir"]
    return ModelSpec(
        users=users,
        items=items,
        user_factors=rng.normal(size=(n_users, dim)).astype(np.float32),
        item_factors=rng.normal(size=(n_items, dim)).astype(np.float32),
        category_factors={c: rng.normal(size=dim).astype(np.float32) for c in category_names},
        categories={item: [category_names[i % 3]] for i, item in enumerate(items)},
        seen={users[0]: items[:3], users[1]: items[5:7]},
        popularity=np.arange(n_items, 0, -1).astype(np.float32),  # item-0 most popular
    )


def create_catalog(spec: ModelSpec) -> None:
    """The spec's items as catalog rows (active, titled, with their categories)."""
    Item.objects.bulk_create(
        Item(external_id=item, title=f"Title of {item}", categories=spec.categories.get(item, []))
        for item in spec.items
    )


def write_spec_artifact(spec: ModelSpec, name: str, recommender: str = "default") -> ArtifactInfo:
    category_names = sorted(spec.category_factors)
    item_embeddings = np.stack([spec.item_representation(i) for i in spec.items])
    feature_embeddings = np.concatenate(
        [spec.item_factors, np.stack([spec.category_factors[c] for c in category_names])]
    )
    indptr = [0]
    indices: list[int] = []
    for user in spec.users:
        indices += sorted(spec.item_positions[i] for i in spec.seen.get(user, []))
        indptr.append(len(indices))
    info = write_artifact(
        artifact_staging_dir(recommender),
        name,
        arrays={
            "user_embeddings": spec.user_factors,
            "user_biases": np.zeros(len(spec.users), np.float32),
            "item_embeddings": item_embeddings,
            "item_biases": np.zeros(len(spec.items), np.float32),
            "item_feature_embeddings": feature_embeddings,
            "item_feature_biases": np.zeros(len(feature_embeddings), np.float32),
            "popularity": spec.popularity,
            "seen_indptr": np.asarray(indptr, np.int64),
            "seen_indices": np.asarray(indices, np.int32),
        },
        id_maps={"users": spec.users, "items": spec.items},
        meta=ArtifactMeta(
            feature_names={
                "items": [f"id:{i}" for i in spec.items] + [f"category:{c}" for c in category_names]
            }
        ),
    )
    return info


def create_version(
    spec: ModelSpec, *, recommender: str = "default", promote: bool = True
) -> ModelVersion:
    """Write the artifact, publish it to the store, register it as the next version, and
    promote it."""
    rec = Recommender.objects.get_or_create(name=recommender)[0]
    number = rec.versions.count() + 1
    info = write_spec_artifact(spec, f"v{number}", recommender)
    version = model_version_create(
        recommender=rec,
        artifact_uri=artifact_publish(info),
        artifact_sha256=info.sha256,
        artifact_size=info.size_bytes,
        metrics={},
        hyperparameters={},
        data_window={},
        data_stats={},
    )
    if promote:
        model_version_promote(version=version, reason="test")
        version.refresh_from_db()
    return version


def corrupt(version: ModelVersion, file: str = "item_embeddings.npy") -> None:
    """Flip the last byte of one array file (the manifest still claims the old checksum)."""
    path = Path(settings.RECSITE_ARTIFACT_DIR).resolve() / version.artifact_uri / file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def expected_ranking(spec: ModelSpec, user: str, extra: dict[str, np.ndarray] | None = None):
    """Item ids by score (desc, then model index), the user's seen items left out."""
    u = spec.user_factors[spec.users.index(user)]
    scores = [(float(spec.item_representation(i) @ u), n, i) for n, i in enumerate(spec.items)]
    for n, (item, vector) in enumerate((extra or {}).items()):
        scores.append((float(vector @ u), len(spec.items) + n, item))
    seen = set(spec.seen.get(user, []))
    return [item for _, _, item in sorted(scores, key=lambda t: (-t[0], t[1])) if item not in seen]


def publish_family(
    spec: ModelSpec,
    family: str,
    arrays: dict[str, np.ndarray],
    params: dict | None = None,
    *,
    seen: dict[str, list[str]] | None = None,
    feature_names: dict[str, list[str]] | None = None,
) -> ModelVersion:
    """Write, publish, register and promote a version of ``family`` over ``spec``'s ids
    with ``arrays`` (the family's own), ``spec``'s popularity and ``seen`` (user -> items
    training saw them with; none by default), and load it in this process."""
    seen = seen or {}
    indptr = [0]
    indices: list[int] = []
    for user in spec.users:
        indices += sorted(spec.item_positions[i] for i in seen.get(user, []))
        indptr.append(len(indices))
    recommender = Recommender.objects.get(name="default")
    number = recommender.versions.count() + 1
    hyperparameters = {"family": family, **(params or {})}
    info = write_artifact(
        artifact_staging_dir("default"),
        f"v{number}",
        arrays={
            **arrays,
            "popularity": spec.popularity,
            "seen_indptr": np.asarray(indptr, np.int64),
            "seen_indices": np.asarray(indices, np.int32),
        },
        id_maps={"users": spec.users, "items": spec.items},
        meta=ArtifactMeta(
            family=family, hyperparameters=hyperparameters, feature_names=feature_names or {}
        ),
    )
    version = model_version_create(
        recommender=recommender,
        artifact_uri=artifact_publish(info),
        artifact_sha256=info.sha256,
        artifact_size=info.size_bytes,
        metrics={},
        hyperparameters=hyperparameters,
        data_window={},
        data_stats={},
    )
    model_version_promote(version=version, reason="test")
    registry.refresh()
    assert registry.state("default").version_number == number
    return version
