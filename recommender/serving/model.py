"""The loaded model: which version the database says is active, and that version's
artifact loaded (memory-mapped), verified against the row and self-tested, with the id
indexes and norms serving derives from it once per load."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from recommender.artifact_store import artifact_load
from recommender.artifacts import ArtifactError, LoadedArtifact
from recommender.families import FamilyKind, family_get
from recommender.features import CATEGORY_PREFIX, TERM_PREFIX
from recommender.ids import IdArray, IdIndex
from recommender.models import ModelVersion, VersionStatus
from recommender.serving import scoring
from recommender.serving.foldin import FoldIn, fold_in_for
from recommender.text_features import TitleTerms

# A version that failed to load is tried again after this long (not at every refresh:
# a load hashes the whole artifact).
RETRY_FAILED_SECONDS = 60.0


@dataclass(frozen=True)
class ActiveVersion:
    recommender_id: int
    recommender: str
    version_id: int
    number: int
    artifact_uri: str
    artifact_sha256: str
    created_at: datetime
    # When the version's training data was read (its data window's end); None if unknown.
    data_read_at: datetime | None = None


def _data_read_at(data_window: Any) -> datetime | None:
    end = data_window.get("end") if isinstance(data_window, dict) else None
    try:
        return datetime.fromisoformat(end) if isinstance(end, str) else None
    except ValueError:
        return None


_VERSION_COLUMNS = (
    "recommender_id",
    "pk",
    "number",
    "artifact_uri",
    "artifact_sha256",
    "created_at",
    "data_window",
)


def _version(row: tuple[Any, ...], recommender: str) -> ActiveVersion:
    rec_id, pk, number, uri, sha, created, window = row
    return ActiveVersion(rec_id, recommender, pk, number, uri, sha, created, _data_read_at(window))


def active_versions(names: dict[int, str]) -> dict[str, ActiveVersion | None]:
    """The active version of every recommender in ``names`` (pk -> name; None when it has
    none)."""
    active: dict[str, ActiveVersion | None] = {name: None for name in names.values()}
    rows = ModelVersion.objects.filter(status=VersionStatus.ACTIVE).values_list(*_VERSION_COLUMNS)
    for row in rows:
        if row[0] in names:
            active[names[row[0]]] = _version(row, names[row[0]])
    return active


def versions_get(pks: set[int], names: dict[int, str]) -> dict[int, ActiveVersion]:
    """The versions with these primary keys, whatever their status (an experiment's arms
    keep serving the versions they started with), by primary key."""
    rows = ModelVersion.objects.filter(pk__in=pks).values_list(*_VERSION_COLUMNS)
    return {row[1]: _version(row, names.get(row[0], "")) for row in rows}


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _title_terms(
    names: list[str], arrays: dict[str, np.ndarray]
) -> tuple[TitleTerms | None, np.ndarray]:
    """The title vocabulary of an artifact with ``term:`` features and their idf, and each
    term's feature row (None and no rows without)."""
    rows = [row for row, name in enumerate(names) if name.startswith(TERM_PREFIX)]
    idf = arrays.get("item_term_idf")
    if idf is None:
        return None, _NO_ROWS
    if len(idf) != len(rows):
        raise ArtifactError(
            "shape_mismatch", f"{len(idf)} term idf values for {len(rows)} term feature names"
        )
    terms = [names[row].removeprefix(TERM_PREFIX) for row in rows]
    return TitleTerms(terms, np.asarray(idf, np.float32)), np.asarray(rows, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A verified artifact plus what serving derives from it once per load."""

    version: ActiveVersion
    artifact: LoadedArtifact
    users: IdIndex
    items: IdIndex
    category_rows: dict[str, int]  # category name -> row of item_feature_embeddings
    item_norms: np.ndarray
    loaded_at: float
    # Factor families that fold a current history into a user vector (als, svd).
    fold_in: FoldIn | None = None
    # Title words as features (lightfm with ``title_terms``): the vocabulary, and the row
    # of item_feature_embeddings of each word.
    title_terms: TitleTerms | None = None
    term_rows: np.ndarray = field(default_factory=lambda: _NO_ROWS)
    # Item-item families: the item-item matrix, checked once (its arrays memory-mapped).
    similarity: scoring.Similarity | None = None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return self.artifact.arrays

    @property
    def item_ids(self) -> IdArray:
        return self.artifact.id_maps["items"]

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def seen(self, user: int) -> np.ndarray:
        indptr = self.arrays["seen_indptr"]
        return np.asarray(self.arrays["seen_indices"][indptr[user] : indptr[user + 1]])

    @property
    def kind(self) -> FamilyKind:
        """How this model scores: factors (lightfm, als, svd), item-item (ease, itemknn:
        from the user's current history) or one score per item (popularity)."""
        return family_get(self.artifact.family).kind

    @property
    def params(self) -> dict[str, Any]:
        """The hyper-parameters it was fitted with (the manifest's)."""
        return dict(self.artifact.hyperparameters)

    @classmethod
    def load(cls, version: ActiveVersion) -> LoadedModel:
        """Load, verify and self-test; raise rather than return something unusable. The
        store hands over a verified local directory (the file store's own, or this host's
        cache entry, downloaded first from S3: the watcher thread calls this, never a
        request), memory-mapped."""
        artifact = artifact_load(uri=version.artifact_uri, sha256=version.artifact_sha256)
        arrays = artifact.arrays
        kind = family_get(artifact.family).kind
        category_rows: dict[str, int] = {}
        title_terms, term_rows = None, _NO_ROWS
        if "item_feature_embeddings" in arrays:
            names = artifact.feature_names.get("items", [])
            if len(names) != arrays["item_feature_embeddings"].shape[0]:
                raise ArtifactError(
                    "shape_mismatch",
                    f"{len(names)} item feature names for "
                    f"{arrays['item_feature_embeddings'].shape[0]} item feature embeddings",
                )
            category_rows = {
                name.removeprefix(CATEGORY_PREFIX): row
                for row, name in enumerate(names)
                if name.startswith(CATEGORY_PREFIX)
            }
            title_terms, term_rows = _title_terms(names, arrays)
        norms = (
            scoring.row_norms([(arrays["item_embeddings"], arrays["item_biases"])])
            if kind == FamilyKind.FACTORS
            else np.zeros(0, np.float32)
        )
        model = cls(
            version=version,
            artifact=artifact,
            users=IdIndex(artifact.id_maps["users"]),
            items=IdIndex(artifact.id_maps["items"]),
            category_rows=category_rows,
            item_norms=norms,
            loaded_at=time.time(),
            title_terms=title_terms,
            term_rows=term_rows,
            similarity=(
                scoring.Similarity(
                    arrays["similarity_indptr"],
                    arrays["similarity_indices"],
                    arrays["similarity_data"],
                )
                if kind == FamilyKind.ITEM_ITEM
                else None
            ),
            fold_in=(
                fold_in_for(artifact.family, artifact.hyperparameters, arrays["item_embeddings"])
                if kind == FamilyKind.FACTORS
                else None
            ),
        )
        model.self_test()
        return model

    def self_test(self) -> None:
        """A test prediction: one user's (or one history item's) scores must be finite
        numbers of the right length (catches NaN factors and truncated arrays)."""
        arrays = self.arrays
        kind = self.kind
        if kind == FamilyKind.FACTORS and self.users and self.n_items:
            block = [(arrays["item_embeddings"], arrays["item_biases"])]
            scores = scoring.score_blocks(
                arrays["user_embeddings"][0], float(arrays["user_biases"][0]), block
            )
        elif kind == FamilyKind.ITEM_ITEM and self.n_items:
            scores = scoring.history_scores(
                self.similarity, np.zeros(1, np.int64), self.n_items, recency_half_life=0.0
            )
        elif kind == FamilyKind.SCORES:
            scores = np.asarray(arrays["item_scores"], np.float32)
        else:
            scores = np.zeros(self.n_items, np.float32)
        if scores.shape != (self.n_items,) or not np.isfinite(scores).all():
            raise ArtifactError("bad_prediction", "the test prediction is not finite")
        if not np.isfinite(self.item_norms).all() or not np.isfinite(arrays["popularity"]).all():
            raise ArtifactError("bad_prediction", "item factors or popularity are not finite")
