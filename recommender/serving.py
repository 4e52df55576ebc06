"""The serving cache: one immutable loaded model per recommender per process, hot-swapped.

A request calls ``registry.state(name)`` once and uses that :class:`ServingState` to the
end; nothing on the request path reads the artifact or loads anything (except the very
first call in a process that was not started with :meth:`ServingRegistry.start`).

``ServingRegistry.refresh`` is the only writer. It asks the database which version is
active, loads and verifies a new one (checksums, shapes, the manifest's sha256 against
the version row, a test prediction), builds the state with the current catalog, and only
then replaces the reference. A version that fails is never swapped in: the old state
keeps serving, the error is logged, counted in the metrics and shown by ``/readyz``; it
is retried after ``RETRY_FAILED_SECONDS``.

The watcher thread (:meth:`ServingRegistry.start`, one per process) calls ``refresh``
when the cache key bumped by promote / rollback changes (read every
``RECSITE_SERVING_CHECK_SECONDS``) and in any case every ``RECSITE_SERVING_POLL_SECONDS``,
which also picks up catalog changes (inactive items, new items) and covers a cache that
is unreachable or per-process (no Redis).

Arrays stay memory-mapped: every worker on a host shares one copy of the factors and of
the model's ids in the page cache. Per process there are only id indexes (a hash and a
position per id, ``recommender.ids``), norms and the catalog view (its ids as one UTF-8
blob: memory follows the ids' real length, not the longest one's).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.db.models import Count, Max
from django.utils import timezone

from recommender import scoring
from recommender import serving_metrics as metrics
from recommender.artifact_store import local_artifact_path
from recommender.artifacts import ArtifactError, LoadedArtifact, load_artifact
from recommender.exceptions import ItemNotFound, NoModel, RecsiteError, UnknownCategory
from recommender.families import Algorithm
from recommender.features import CATEGORY_PREFIX
from recommender.ids import IdArray, IdIndex
from recommender.models import Event, Item, ModelVersion, Recommender, VersionStatus
from recommender.scoring import FactorBlock, Page
from recommender.selectors import (
    recommender_get,
    user_erasures_stamp,
    user_recent_item_pks,
    users_erased_since,
)
from recommender.serving_signal import active_version_key

logger = logging.getLogger(__name__)

UNKNOWN_USER = "unknown_user"
NO_MODEL = "no_model"
RETRY_FAILED_SECONDS = 60.0
# The no-model popularity (an aggregate over all events) is rebuilt at most this often
# when only events changed; a catalog change rebuilds it at the next refresh.
FALLBACK_REBUILD_SECONDS = 30.0
_EMPTY = np.zeros(0, dtype=np.int64)


# --- what the database says ----------------------------------------------------------


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


def _active_versions(names: dict[int, str]) -> dict[str, ActiveVersion | None]:
    """The active version of every recommender in ``names`` (pk -> name; None when it has
    none)."""
    active: dict[str, ActiveVersion | None] = {name: None for name in names.values()}
    rows = ModelVersion.objects.filter(status=VersionStatus.ACTIVE).values_list(
        "recommender_id",
        "pk",
        "number",
        "artifact_uri",
        "artifact_sha256",
        "created_at",
        "data_window",
    )
    for rec_id, pk, number, uri, sha, created, window in rows:
        if rec_id in names:
            active[names[rec_id]] = ActiveVersion(
                rec_id, names[rec_id], pk, number, uri, sha, created, _data_read_at(window)
            )
    return active


def _catalog_stamp() -> tuple[Any, int]:
    """Changes whenever an item is created, updated or deleted (``updated_at`` is indexed)."""
    stamp = Item.objects.aggregate(last=Max("updated_at"), n=Count("pk"))
    return stamp["last"], stamp["n"]


def _events_stamp() -> Any:
    """Changes when events arrive (the newest primary key: an index lookup)."""
    return Event.objects.aggregate(last=Max("pk"))["last"]


@dataclass(frozen=True)
class Catalog:
    """The whole catalog as columns. Read in full once; after that a change reads only the
    rows updated since (:meth:`updated`) and patches a copy."""

    ids: IdArray
    pks: np.ndarray
    active: np.ndarray
    titles: list[str]
    categories: list[tuple[str, ...]]  # equal tuples are one object (few distinct ones)
    stamp: tuple[Any, int]
    rows_read: int = 0  # rows this catalog's build read from the database

    @classmethod
    def read(cls, stamp: tuple[Any, int]) -> Catalog:
        ids: list[str] = []
        pks: list[int] = []
        active: list[bool] = []
        titles: list[str] = []
        categories: list[tuple[str, ...]] = []
        interned: dict[tuple[str, ...], tuple[str, ...]] = {}
        rows = Item.objects.order_by("pk").values_list(
            "external_id", "pk", "active", "title", "categories"
        )
        for external_id, pk, is_active, title, cats in rows.iterator(chunk_size=20_000):
            ids.append(external_id)
            pks.append(pk)
            active.append(bool(is_active))
            titles.append(title)
            categories.append(_categories(cats, interned))
        return cls(
            IdArray.from_strings(ids),
            np.asarray(pks, dtype=np.int64),
            np.asarray(active, dtype=bool),
            titles,
            categories,
            stamp,
            rows_read=len(pks),
        )

    def updated(self, stamp: tuple[Any, int]) -> Catalog:
        """This catalog with the changes up to ``stamp``: only the rows whose
        ``updated_at`` is newer than this catalog's stamp are read (an indexed range);
        changed rows are patched, new ones appended. A deletion (the row count disagrees
        with ``stamp``'s afterwards) falls back to a full read: deleted rows cannot be
        told from a range of ``updated_at``."""
        since = self.stamp[0]
        if since is None or stamp[1] < len(self.titles):
            return Catalog.read(stamp)
        rows = list(
            Item.objects.filter(updated_at__gt=since)
            .order_by("pk")
            .values_list("external_id", "pk", "active", "title", "categories")
        )
        order = np.argsort(self.pks, kind="stable")
        sorted_pks = self.pks[order]
        changed = np.asarray([row[1] for row in rows], dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_pks, changed), max(sorted_pks.size - 1, 0))
        held = (sorted_pks[at] == changed) if sorted_pks.size else np.zeros(len(rows), bool)
        if len(self.titles) + int((~held).sum()) != stamp[1]:
            return Catalog.read(stamp)
        titles, categories, active = list(self.titles), list(self.categories), self.active.copy()
        # Interned per build from the rows in use: the table never outlives the build, so
        # category sets that no item has any more are not kept (issue 13.14).
        interned = {c: c for c in categories}
        new_ids: list[str] = []
        new_pks: list[int] = []
        new_active: list[bool] = []
        for (external_id, pk, is_active, title, cats), is_held, position in zip(
            rows, held.tolist(), at.tolist(), strict=True
        ):
            if is_held:
                row = int(order[position])
                active[row] = bool(is_active)
                titles[row] = title
                categories[row] = _categories(cats, interned)
                continue
            new_ids.append(external_id)
            new_pks.append(pk)
            new_active.append(bool(is_active))
            titles.append(title)
            categories.append(_categories(cats, interned))
        return Catalog(
            self.ids.concat(IdArray.from_strings(new_ids)),
            np.concatenate([self.pks, np.asarray(new_pks, dtype=np.int64)]),
            np.concatenate([active, np.asarray(new_active, dtype=bool)]),
            titles,
            categories,
            stamp,
            rows_read=len(rows),
        )

    @cached_property
    def index(self) -> IdIndex:
        return IdIndex(self.ids)

    @cached_property
    def rows_by_category(self) -> dict[str, np.ndarray]:
        return _rows_by_category(self.categories)

    @cached_property
    def category_matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every row's categories as CSR over a vocabulary: ``(names, indptr, indices)``,
        row ``r``'s being ``names[indices[indptr[r]:indptr[r + 1]]]``."""
        vocabulary: dict[str, int] = {}
        indices = [
            vocabulary.setdefault(name, len(vocabulary)) for c in self.categories for name in c
        ]
        indptr = np.zeros(len(self.categories) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in self.categories], out=indptr[1:])
        return list(vocabulary), indptr, np.asarray(indices, dtype=np.int64)


def _rows_by_category(categories: list[tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Category -> the (ascending) rows holding it: built once per catalog read, so a
    model swap maps it to positions with numpy instead of looping over every item."""
    rows: dict[str, list[int]] = {}
    for row, names in enumerate(categories):
        for name in names:
            rows.setdefault(name, []).append(row)
    return {name: np.asarray(r, dtype=np.int64) for name, r in rows.items()}


def _categories(raw: Any, interned: dict[tuple[str, ...], tuple[str, ...]]) -> tuple[str, ...]:
    """An item's categories as a tuple shared through ``interned`` (the table of one
    catalog build): 100k items hold a few hundred objects."""
    value = tuple(dict.fromkeys(str(c) for c in raw)) if isinstance(raw, list) else ()
    return interned.setdefault(value, value)


# --- the loaded model ----------------------------------------------------------------


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

    @classmethod
    def load(cls, version: ActiveVersion) -> LoadedModel:
        """Load, verify and self-test; raise rather than return something unusable."""
        artifact = load_artifact(
            local_artifact_path(version.artifact_uri),
            verify=True,
            mmap=True,
            expected_sha256=version.artifact_sha256,
        )
        if artifact.family != Algorithm.LIGHTFM:  # the other families are served next
            raise ArtifactError(
                "unsupported_family",
                f"version {version.number} is a {artifact.family} model; this server "
                "scores lightfm models only",
            )
        arrays = artifact.arrays
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
        model = cls(
            version=version,
            artifact=artifact,
            users=IdIndex(artifact.id_maps["users"]),
            items=IdIndex(artifact.id_maps["items"]),
            category_rows=category_rows,
            item_norms=scoring.row_norms([(arrays["item_embeddings"], arrays["item_biases"])]),
            loaded_at=time.time(),
        )
        model.self_test()
        return model

    def self_test(self) -> None:
        """A test prediction: one user's scores and one item's neighbours must be finite
        numbers of the right length (catches NaN factors and truncated arrays)."""
        arrays = self.arrays
        block = [(arrays["item_embeddings"], arrays["item_biases"])]
        if self.users and self.n_items:
            scores = scoring.score_blocks(
                arrays["user_embeddings"][0], float(arrays["user_biases"][0]), block
            )
            if scores.shape != (self.n_items,) or not np.isfinite(scores).all():
                raise ArtifactError("bad_prediction", "the test prediction is not finite")
        if not np.isfinite(self.item_norms).all() or not np.isfinite(arrays["popularity"]).all():
            raise ArtifactError("bad_prediction", "item factors or popularity are not finite")


# --- the state a request uses --------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ItemUniverse:
    """The items a state can return, by position: ``head`` (the model's items, in
    artifact order, or the popularity list) then ``tail`` (catalog items the model has not
    seen, scored through their categories)."""

    head_ids: IdArray
    head_index: IdIndex
    tail_ids: IdArray
    tail_index: IdIndex
    blocked: np.ndarray  # positions never returned: inactive or deleted items
    categories: dict[str, np.ndarray]  # category -> positions
    # Title and categories by position, for the response, so a request needs no query
    # for them: ``rows[position]`` is the item's row in the source lists (the catalog's,
    # shared by every state built from it), -1 for a model item no longer in it.
    rows: np.ndarray
    source_titles: list[str]
    source_categories: list[tuple[str, ...]]
    # Item primary key -> position, for the user's recent events (which name items by
    # key): the keys sorted, and each one's position.
    pks_sorted: np.ndarray
    pk_positions: np.ndarray

    def __len__(self) -> int:
        return len(self.head_ids) + len(self.tail_ids)

    def title(self, position: int) -> str:
        row = int(self.rows[position])
        return self.source_titles[row] if row >= 0 else ""

    def categories_of(self, position: int) -> tuple[str, ...]:
        row = int(self.rows[position])
        return self.source_categories[row] if row >= 0 else ()

    def positions_of_pks(self, pks: list[int]) -> np.ndarray:
        """The position of each item key; -1 for items this universe does not hold."""
        if not pks or self.pks_sorted.size == 0:
            return _EMPTY
        query = np.asarray(pks, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.pks_sorted, query), self.pks_sorted.size - 1)
        return np.where(self.pks_sorted[at] == query, self.pk_positions[at], -1)

    def positions(self, ids: list[str]) -> np.ndarray:
        found = self.head_index.positions(ids)
        missing = np.flatnonzero(found < 0)
        if missing.size and len(self.tail_index):
            tail = self.tail_index.positions([ids[i] for i in missing.tolist()])
            found[missing] = np.where(tail >= 0, tail + len(self.head_ids), -1)
        return found

    def position(self, item_id: str) -> int | None:
        found = self.head_index.position(item_id)
        if found is None and len(self.tail_index):
            tail = self.tail_index.position(item_id)
            found = None if tail is None else tail + len(self.head_ids)
        return found

    def ids_at(self, positions: np.ndarray) -> list[str]:
        n = len(self.head_ids)
        if positions.size == 0 or positions.max() < n:
            return self.head_ids.strings_at(positions)
        return [self.head_ids[p] if p < n else self.tail_ids[p - n] for p in positions.tolist()]


@dataclass(frozen=True)
class Ranking:
    page: Page
    ids: list[str]
    fallback: str | None
    # Items eligible before the user's history and ``exclude`` are taken out: what the
    # API reports as ``total``, so it tells nothing about what the user has seen.
    catalog_total: int


@dataclass(frozen=True, eq=False)
class ServingState:
    """Everything one recommender serves in this process. Immutable: a change builds a
    new one and swaps the reference."""

    recommender: str
    model: LoadedModel | None  # None: popularity from the database, no model loaded
    universe: ItemUniverse
    blocks: tuple[FactorBlock, ...]
    popularity: np.ndarray  # scores for users the model does not know
    norms: np.ndarray
    catalog_stamp: tuple[Any, int]
    built_at: float = field(default_factory=time.time)
    # Users erased after the model's data was read: served as unknown users until a
    # model trained without them is active.
    forgotten_users: frozenset[str] = frozenset()

    @property
    def version_number(self) -> int | None:
        return self.model.version.number if self.model else None

    def rank(
        self,
        *,
        user_id: str,
        seen: list[int],
        exclude: list[str],
        category: str | None,
        offset: int,
        limit: int,
    ) -> Ranking:
        """The user's page: model scores (or popularity), minus seen (item keys),
        excluded (item ids) and blocked items, within ``category`` when given."""
        model = self.model
        forgotten = user_id in self.forgotten_users
        user = model.users.position(user_id) if model and not forgotten else None
        if model is None:
            scores, fallback = self.popularity.copy(), NO_MODEL
        elif user is None:
            scores, fallback = self.popularity.copy(), UNKNOWN_USER
        else:
            arrays = model.arrays
            scores = scoring.score_blocks(
                arrays["user_embeddings"][user], float(arrays["user_biases"][user]), self.blocks
            )
            fallback = None
        scoring.mask(scores, self.universe.blocked)
        if category is not None:
            allowed = self.universe.categories.get(category)
            if allowed is None:
                raise UnknownCategory(
                    f"No item of the catalogue served by {self.recommender!r} has the category "
                    f"{category!r}.",
                    category=category,
                )
            scores = scoring.restrict(scores, allowed)
        catalog_total = scoring.eligible_count(scores)
        if user is not None:
            scoring.mask(scores, model.seen(user))
        if seen:
            scoring.mask(scores, self.universe.positions_of_pks(seen))
        if exclude:
            scoring.mask(scores, self.universe.positions(exclude))
        page = scoring.rank_page(scores, offset=offset, limit=limit)
        return Ranking(page, self.universe.ids_at(page.indices), fallback, catalog_total)

    def similar(self, *, item_id: str, limit: int) -> Ranking:
        """Nearest items by cosine of the item embeddings (new items included)."""
        if self.model is None:
            raise NoModel(
                f"Recommender {self.recommender!r} has no model loaded: similar items need "
                "item embeddings.",
                recommender=self.recommender,
            )
        position = self.universe.position(item_id)
        if position is None:
            raise ItemNotFound(
                f"Item {item_id!r} is not known to the model (nor a catalog item with a "
                "category the model knows).",
                item_id=item_id,
            )
        head = len(self.universe.head_ids)
        embeddings = self.blocks[0][0] if position < head else self.blocks[1][0]
        vector = np.asarray(embeddings[position if position < head else position - head])
        scores = scoring.cosine_blocks(vector, self.blocks, self.norms)
        scores[position] = scoring.MASKED
        scoring.mask(scores, self.universe.blocked)
        page = scoring.rank_page(scores, offset=0, limit=limit)
        return Ranking(page, self.universe.ids_at(page.indices), None, page.total)


def model_state_build(model: LoadedModel, catalog: Catalog) -> ServingState:
    """Align a loaded model with the catalog: block inactive and deleted items, score new
    items with known categories through the category embeddings."""
    arrays = model.arrays
    item_ids = model.item_ids
    head_rows = catalog.index.positions(item_ids)
    head_ok = head_rows >= 0
    head_ok[head_ok] = catalog.active[head_rows[head_ok]]
    in_model = model.items.positions(catalog.ids) >= 0

    # Catalog items the model has not seen, active, with at least one category it knows:
    # scored through the mean of those categories' factors.
    names, indptr, indices = catalog.category_matrix
    feature_of_name = np.asarray([model.category_rows.get(n, -1) for n in names], np.int64)
    features = feature_of_name[indices] if indices.size else indices
    row_of_entry = np.repeat(np.arange(len(catalog.ids)), np.diff(indptr))
    known = features >= 0
    known_per_row = np.bincount(row_of_entry[known], minlength=len(catalog.ids))
    is_tail = ~in_model & catalog.active & (known_per_row > 0)
    tail_rows = np.flatnonzero(is_tail)
    tail = scoring.category_factors_flat(
        arrays["item_feature_embeddings"],
        arrays["item_feature_biases"],
        features[known & is_tail[row_of_entry]],
        known_per_row[tail_rows],
    )
    tail_ids = catalog.ids.take(tail_rows)

    rows = np.concatenate([head_rows, tail_rows])
    universe = ItemUniverse(
        head_ids=item_ids,
        head_index=model.items,
        tail_ids=tail_ids,
        tail_index=IdIndex(tail_ids),
        blocked=np.flatnonzero(~head_ok).astype(np.int64),
        **_row_columns(
            rows, catalog.pks, catalog.titles, catalog.categories, catalog.rows_by_category
        ),
    )
    blocks = ((arrays["item_embeddings"], arrays["item_biases"]), tail)
    return ServingState(
        recommender=model.version.recommender,
        model=model,
        universe=universe,
        blocks=blocks,
        popularity=np.concatenate(
            [np.asarray(arrays["popularity"], np.float32), np.zeros(len(tail_rows), np.float32)]
        ),
        norms=np.concatenate([model.item_norms, scoring.row_norms([tail])]),
        catalog_stamp=catalog.stamp,
    )


def _row_columns(
    rows: np.ndarray,
    pks: np.ndarray,
    titles: list[str],
    categories: list[tuple[str, ...]],
    rows_by_category: dict[str, np.ndarray],
) -> dict[str, Any]:
    """``ItemUniverse``'s fields that come from the source rows: ``rows[position]`` is the
    row (-1: none) the item at ``position`` comes from. All numpy: no loop over items."""
    held = rows >= 0
    positions = np.flatnonzero(held)
    position_of_row = np.full(len(titles), -1, dtype=np.int64)
    position_of_row[rows[held]] = positions
    by_category = {}
    for name, category_rows in rows_by_category.items():
        found = position_of_row[category_rows]
        found = np.sort(found[found >= 0])
        if found.size:
            by_category[name] = found
    keys = pks[rows[held]]
    order = np.argsort(keys, kind="stable")
    return {
        "categories": by_category,
        "rows": rows,
        "source_titles": titles,
        "source_categories": categories,
        "pks_sorted": keys[order],
        "pk_positions": positions[order],
    }


def popularity_state_build(recommender: str, catalog_stamp: tuple[Any, int]) -> ServingState | None:
    """No model loaded: active items ranked by their number of events (one aggregate
    query). None when there are no events at all."""
    rows = (
        Item.objects.filter(active=True)
        .annotate(n=Count("events"))
        .filter(n__gt=0)
        .values_list("external_id", "pk", "n", "title", "categories")
    )
    ids: list[str] = []
    pks: list[int] = []
    counts: list[float] = []
    titles: list[str] = []
    item_categories: list[tuple[str, ...]] = []
    interned: dict[tuple[str, ...], tuple[str, ...]] = {}
    for external_id, pk, n, title, cats in rows.iterator(chunk_size=20_000):
        ids.append(external_id)
        pks.append(pk)
        counts.append(float(n))
        titles.append(title)
        item_categories.append(_categories(cats, interned))
    if not ids:
        return None
    head_ids = IdArray.from_strings(ids)
    empty_ids = IdArray.empty()
    universe = ItemUniverse(
        head_ids=head_ids,
        head_index=IdIndex(head_ids),
        tail_ids=empty_ids,
        tail_index=IdIndex(empty_ids),
        blocked=_EMPTY,
        **_row_columns(
            np.arange(len(ids), dtype=np.int64),
            np.asarray(pks, dtype=np.int64),
            titles,
            item_categories,
            _rows_by_category(item_categories),
        ),
    )
    return ServingState(
        recommender=recommender,
        model=None,
        universe=universe,
        blocks=(),
        popularity=np.asarray(counts, dtype=np.float32),
        norms=np.zeros(0, np.float32),
        catalog_stamp=catalog_stamp,
    )


# --- the registry ------------------------------------------------------------------------


@dataclass
class LoadStatus:
    """What ``/readyz`` says about one recommender in this process."""

    active_version: int | None = None
    last_error: dict[str, Any] | None = None
    failures: int = 0

    def as_dict(self, state: ServingState | None) -> dict[str, Any]:
        model = state.model if state else None
        loaded = model.version.number if model else None
        return {
            "active_version": self.active_version,
            "loaded_version": loaded,
            "loaded_at": (
                datetime.fromtimestamp(model.loaded_at, tz=UTC).isoformat() if model else None
            ),
            "serving": (
                "model" if model else ("popularity_fallback" if state else "nothing (no events)")
            ),
            # Requests are answered (a model or the popularity fallback), or there is no
            # active version to answer with yet (a fresh install, the same on every host).
            "answering": state is not None or self.active_version is None,
            "degraded": self.active_version is not None and loaded != self.active_version,
            "degraded_reason": self._degraded_reason(state, loaded),
            "load_failures": self.failures,
            "last_load_error": self.last_error,
        }

    def _degraded_reason(self, state: ServingState | None, loaded: int | None) -> str | None:
        """Why this process does not serve the active version, in words; None when it does."""
        if self.active_version is None or loaded == self.active_version:
            return None
        error = (
            self.last_error
            if (self.last_error or {}).get("version") == self.active_version
            else None
        )
        why = (
            f"v{self.active_version} failed to load ({error['code']}: {error['message']})"
            if error
            else f"v{self.active_version} is not loaded yet"
        )
        if loaded is not None:
            return f"{why}; serving v{loaded}"
        if state is not None:
            return f"{why}; serving the popularity fallback"
        return f"{why}; nothing to serve (no events for the popularity fallback)"


@dataclass
class _Failed:
    version_id: int
    at: float


class ServingRegistry:
    """The per-process holder of :class:`ServingState` references (module singleton
    ``registry``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watcher_pid: int | None = None
        self._clear()

    def _clear(self) -> None:
        self._states: dict[str, ServingState] = {}
        self._catalog: Catalog | None = None
        self._status: dict[str, LoadStatus] = {}
        self._failed: dict[str, _Failed] = {}
        self._recommender_ids: dict[str, int] = {}
        self._tokens: dict[str, Any] = {}
        self._refreshed = False
        self._fallback_events: dict[str, Any] = {}
        self._fallback_built: dict[str, float] = {}
        self._forgotten: dict[str, tuple[tuple[int, int | None], frozenset[str]]] = {}

    @property
    def catalog(self) -> Catalog | None:
        """The catalog the current states were built from."""
        return self._catalog

    # -- the request path --

    def state(self, name: str) -> ServingState | None:
        """The state to serve ``name`` with (read once per request)."""
        if not self._refreshed:
            self.refresh()
        return self._states.get(name)

    # -- loading --

    def refresh(self) -> None:
        """Bring every recommender's state up to date with the database (the watcher
        calls this; tests call it directly). Serialized by a lock."""
        with self._lock:
            self._refresh()
            self._refreshed = True

    def _refresh(self) -> None:
        names = dict(Recommender.objects.values_list("pk", "name"))
        self._recommender_ids = {name: pk for pk, name in names.items()}
        # The keys' values before reading the active versions: a promotion bumps its key
        # after it commits, so a bump this read misses is a change the watcher sees next.
        tokens = self._read_tokens()
        if tokens is not None:
            self._tokens = tokens
        actives = _active_versions(names)
        stamp = _catalog_stamp()
        catalog = self._catalog if self._catalog and self._catalog.stamp == stamp else None

        def current_catalog() -> Catalog:
            """The catalog at ``stamp``: patched from the last one (reading only the rows
            changed since) or, the first time, read in full."""
            if self._catalog is None:
                return Catalog.read(stamp)
            return self._catalog.updated(stamp)

        states = dict(self._states)
        for name, active in actives.items():
            status = self._status.setdefault(name, LoadStatus())
            status.active_version = active.number if active else None
            current = states.get(name)
            model = current.model if current else None
            if (
                active is not None
                and (model is None or model.version.version_id != active.version_id)
                and self._may_try(name, active)
            ):
                if catalog is None:
                    catalog = current_catalog()
                fresh = self._load(name, active, catalog)
                if fresh is not None:
                    states[name] = fresh
                    continue
            if model is not None:
                if current is not None and current.catalog_stamp != stamp:
                    if catalog is None:
                        catalog = current_catalog()
                    states[name] = model_state_build(model, catalog)
                continue
            fallback = self._fallback(name, current, stamp)
            if fallback is None:
                states.pop(name, None)
            else:
                states[name] = fallback
        for name in set(states) - set(actives):
            del states[name]
        self._states = self._forget_erased_users(states)
        # Kept for the next swap: a promotion under an unchanged catalog reads nothing.
        self._catalog = catalog or self._catalog
        now = time.time()
        for name in actives:
            state = states.get(name)
            version = state.model.version if state and state.model else None
            metrics.MODEL_VERSION.labels(name).set(version.number if version else 0)
            metrics.MODEL_AGE.labels(name).set(
                now - version.created_at.timestamp() if version else 0
            )

    def _forget_erased_users(self, states: dict[str, ServingState]) -> dict[str, ServingState]:
        """Each model state with the users erased after its data was read. One indexed
        query per refresh; the erasures are re-read only when a user was erased or the
        model changed."""
        stamp = user_erasures_stamp()
        result: dict[str, ServingState] = {}
        for name, state in states.items():
            if state.model is None:
                result[name] = state
                continue
            version = state.model.version
            key = (version.version_id, stamp)
            cached = self._forgotten.get(name)
            if cached is None or cached[0] != key:
                since = version.data_read_at if stamp is not None else None
                users = users_erased_since(since=since) if stamp is not None else frozenset()
                cached = self._forgotten[name] = (key, users)
            users = cached[1]
            result[name] = (
                state if state.forgotten_users is users else replace(state, forgotten_users=users)
            )
        return result

    def _may_try(self, name: str, active: ActiveVersion) -> bool:
        """False while ``active`` failed to load less than ``RETRY_FAILED_SECONDS`` ago."""
        failed = self._failed.get(name)
        return (
            failed is None
            or failed.version_id != active.version_id
            or time.monotonic() - failed.at >= RETRY_FAILED_SECONDS
        )

    def _load(self, name: str, active: ActiveVersion, catalog: Catalog) -> ServingState | None:
        """The state for a newly active version, or None (recorded) when it cannot load."""
        status = self._status[name]
        started = time.perf_counter()
        try:
            state = model_state_build(LoadedModel.load(active), catalog)
        except Exception as exc:
            self._failed[name] = _Failed(active.version_id, time.monotonic())
            status.failures += 1
            status.last_error = {
                "version": active.number,
                "code": exc.code if isinstance(exc, RecsiteError) else type(exc).__name__,
                "message": str(exc)[:500],
                "at": timezone.now().isoformat(),
            }
            metrics.MODEL_LOAD_FAILURES.labels(name).inc()
            metrics.MODEL_LAST_LOAD_FAILED.labels(name).set(1)
            logger.error(
                "serving: version %s of %r failed to load and is NOT served (%s); the "
                "previous state keeps serving",
                active.number,
                name,
                status.last_error["message"],
                exc_info=not isinstance(exc, ArtifactError),
            )
            return None
        self._failed.pop(name, None)
        status.last_error = None
        metrics.MODEL_SWAPS.labels(name).inc()
        metrics.MODEL_LAST_LOAD_FAILED.labels(name).set(0)
        logger.info(
            "serving: %r now serves version %s (loaded and verified in %.2f s)",
            name,
            active.number,
            time.perf_counter() - started,
        )
        return state

    def _fallback(
        self, name: str, current: ServingState | None, stamp: tuple[Any, int]
    ) -> ServingState | None:
        """Popularity from the database while no model is loaded, rebuilt when the
        catalog changes, or when events changed and it is ``FALLBACK_REBUILD_SECONDS`` old."""
        events = _events_stamp()
        fresh = (
            current is not None
            and current.catalog_stamp == stamp
            and (
                events == self._fallback_events.get(name)
                or time.monotonic() - self._fallback_built.get(name, 0.0) < FALLBACK_REBUILD_SECONDS
            )
        )
        if fresh:
            return current
        state = popularity_state_build(name, stamp)
        self._fallback_events[name] = events
        self._fallback_built[name] = time.monotonic()
        return state

    # -- health --

    def health(self) -> dict[str, Any]:
        """For ``/readyz``: ok while this process can answer requests for every recommender
        (a model, an older model or the popularity fallback); ``degraded`` when it does not
        serve some recommender's active version, each recommender's ``degraded_reason``
        saying why. A lost artifact folder is degraded, not unready: every host shares it,
        and a load balancer dropping every host would answer nothing at all."""
        error = None
        if not self._refreshed:
            try:
                self.refresh()
            except Exception as exc:  # the database check reports the cause
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        states = self._states
        recommenders = {
            name: status.as_dict(states.get(name)) for name, status in sorted(self._status.items())
        }
        ok = error is None and all(r["answering"] for r in recommenders.values())
        body: dict[str, Any] = {
            "ok": ok,
            "degraded": any(r["degraded"] for r in recommenders.values()),
            "pid": os.getpid(),
            "recommenders": recommenders,
        }
        if error:
            body["error"] = error
        return body

    # -- the watcher --

    def start(self) -> None:
        """Load now (errors are logged, not raised) and start the watcher thread, once per
        process; a forked child starts its own."""
        with self._lock:
            if self._watcher is not None and self._watcher_pid == os.getpid():
                return
            self._watcher_pid = os.getpid()
            self._stop.clear()
            self._watcher = threading.Thread(
                target=self._watch, name="recsite-serving", daemon=True
            )
        try:
            self.refresh()
        except Exception:
            logger.exception("serving: the first load failed; the watcher retries")
        finally:
            close_old_connections()
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None and self._watcher.is_alive():
            self._watcher.join(timeout=5)
        self._watcher = None
        self._watcher_pid = None

    def _watch(self) -> None:
        check = settings.RECSITE_SERVING_CHECK_SECONDS
        poll = settings.RECSITE_SERVING_POLL_SECONDS
        last_poll = time.monotonic()
        while not self._stop.wait(check):
            try:
                if self._signalled() or time.monotonic() - last_poll >= poll:
                    last_poll = time.monotonic()
                    self.refresh()
                self._tick_age()
            except Exception:
                logger.exception("serving: refresh failed; the current states keep serving")
            finally:
                close_old_connections()

    def _signalled(self) -> bool:
        """True when a promote / rollback bumped a recommender's key since the last look
        (or the last refresh). An unreachable cache is not a signal: the poll covers it."""
        tokens = self._read_tokens()
        if tokens is None:
            return False
        changed = any(self._tokens.get(name, token) != token for name, token in tokens.items())
        self._tokens = tokens
        return changed

    def _read_tokens(self) -> dict[str, Any] | None:
        keys = {active_version_key(pk): name for name, pk in self._recommender_ids.items()}
        try:
            values = cache.get_many(list(keys)) if keys else {}
        except Exception:
            return None
        return {name: values.get(key) for key, name in keys.items()}

    def _tick_age(self) -> None:
        now = time.time()
        for name, state in self._states.items():
            if state.model is not None:
                age = now - state.model.version.created_at.timestamp()
                metrics.MODEL_AGE.labels(name).set(age)

    def reset(self) -> None:
        """Forget everything (tests)."""
        self.stop()
        with self._lock:
            self._clear()


registry = ServingRegistry()


# --- what the API calls ----------------------------------------------------------------


@dataclass(frozen=True)
class RecommendationPage:
    recommender: str
    user_id: str
    model_version: int | None
    fallback: str | None
    recommendation_id: str
    items: list[dict[str, Any]]
    limit: int
    offset: int
    total: int  # eligible items before the user's history and ``exclude`` are removed
    has_more: bool  # whether the next page holds items (after every filter)


def _state_or_raise(recommender: str) -> ServingState:
    state = registry.state(recommender)
    if state is None:
        recommender_get(name=recommender)  # 404 for an unknown name
        raise NoModel(
            f"Recommender {recommender!r} has no model and there are no events yet to rank "
            "by popularity.",
            recommender=recommender,
        )
    return state


def _items(state: ServingState, ranking: Ranking, first_rank: int) -> list[dict[str, Any]]:
    universe = state.universe
    return [
        {
            "item_id": item_id,
            "score": score,
            "rank": rank,
            "title": universe.title(position),
            "categories": list(universe.categories_of(position)),
        }
        for rank, (item_id, position, score) in enumerate(
            zip(
                ranking.ids,
                ranking.page.indices.tolist(),
                np.round(ranking.page.scores.astype(np.float64), 6).tolist(),
                strict=True,
            ),
            start=first_rank,
        )
    ]


def recommendations_get(
    *,
    recommender: str,
    user_id: str,
    limit: int,
    offset: int,
    exclude: list[str],
    category: str | None,
) -> RecommendationPage:
    """A page of recommendations with one query: the user's recent events. The model,
    the catalog filters and the items' titles are in the state."""
    state = _state_or_raise(recommender)
    seen = user_recent_item_pks(user_id=user_id, limit=settings.RECSITE_SEEN_EVENTS_MAX)
    ranking = state.rank(
        user_id=user_id, seen=seen, exclude=exclude, category=category, offset=offset, limit=limit
    )
    items = _items(state, ranking, first_rank=offset + 1)
    return RecommendationPage(
        recommender=recommender,
        user_id=user_id,
        model_version=state.version_number,
        fallback=ranking.fallback,
        recommendation_id=uuid.uuid4().hex,
        items=items,
        limit=limit,
        offset=offset,
        total=ranking.catalog_total,
        has_more=offset + len(items) < ranking.page.total,
    )


def similar_items_get(*, recommender: str, item_id: str, limit: int) -> dict[str, Any]:
    state = _state_or_raise(recommender)
    ranking = state.similar(item_id=item_id, limit=limit)
    items = _items(state, ranking, first_rank=1)
    return {
        "recommender": recommender,
        "item_id": item_id,
        "model_version": state.version_number,
        "items": items,
    }
