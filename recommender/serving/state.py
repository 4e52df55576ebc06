"""The immutable state one recommender serves in a process, built from arrays: the
item universe (the model's items, then catalogue items scored through their
categories), the factor blocks and popularity, and the ranking of one request over them.
No database access: everything here is computed from a loaded model and a catalogue."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.exceptions import ItemNotFound, NoModel, UnknownCategory
from recommender.families import FamilyKind
from recommender.ids import IdArray, IdIndex
from recommender.serving import scoring
from recommender.serving.catalog import Catalog
from recommender.serving.foldin import all_within
from recommender.serving.model import LoadedModel
from recommender.serving.scoring import FactorBlock, Page

UNKNOWN_USER = "unknown_user"
NO_MODEL = "no_model"
# What ranked an item of a response (recorded with the served list).
SOURCE_MODEL = "model"
SOURCE_COLD_START = "cold_start_category"  # a catalogue item scored through its categories
SOURCE_POPULARITY = "popularity_fallback"
ITEM_SOURCES = (SOURCE_MODEL, SOURCE_COLD_START, SOURCE_POPULARITY)
_EMPTY = np.zeros(0, dtype=np.int64)


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

    def describe(self, positions: list[int]) -> list[tuple[str, tuple[str, ...]]]:
        """Title and categories of the items at ``positions`` (a response's page)."""
        titles, categories = self.source_titles, self.source_categories
        return [
            (titles[row], categories[row]) if row >= 0 else ("", ())
            for row in self.rows[positions].tolist()
        ]

    def positions_of_pks(self, pks: Sequence[int] | np.ndarray) -> np.ndarray:
        """The position of each item key; -1 for items this universe does not hold."""
        if len(pks) == 0 or self.pks_sorted.size == 0:
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

    def sources(self, ranking: Ranking) -> list[str]:
        """What ranked each item of ``ranking``: the model (its own items, or catalogue
        items through their categories) or, without a model or for an unknown user,
        popularity."""
        if ranking.fallback is not None:
            return [SOURCE_POPULARITY] * len(ranking.ids)
        head = len(self.universe.head_ids)
        return [
            SOURCE_MODEL if position < head else SOURCE_COLD_START
            for position in ranking.page.indices.tolist()
        ]

    def rank(
        self,
        *,
        user_id: str,
        seen: Sequence[int] | np.ndarray,
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
        history = self.universe.positions_of_pks(seen) if len(seen) else _EMPTY
        scores, fallback = self._scores(user, history)
        scoring.mask_known(scores, self.universe.blocked)
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
            scoring.mask_known(scores, model.seen(user))
        if history.size:
            scoring.mask(scores, history)
        if exclude:
            scoring.mask(scores, self.universe.positions(exclude))
        page = scoring.rank_page(scores, offset=offset, limit=limit)
        return Ranking(page, self.universe.ids_at(page.indices), fallback, catalog_total)

    def _scores(self, user: int | None, history: np.ndarray) -> tuple[np.ndarray, str | None]:
        """Every position's score for one request, and the fallback used (None: the
        model). ``history`` is the request's recent items (universe positions, the latest
        first; -1 for items the universe does not hold). Item-item families score it, so
        an event posted a moment ago counts and a new user with one event is served
        personally; factor families score the user's factors, folded in from the history
        when the family can (als, svd) and the user is new or has items the model has not
        seen them with; a user without either gets popularity; a score family ranks every
        user alike."""
        model = self.model
        if model is None:
            return self.popularity.copy(), NO_MODEL
        kind = model.kind
        if kind == FamilyKind.SCORES:
            return np.array(model.arrays["item_scores"], dtype=np.float32), None
        history = self.model_history(history)
        if kind == FamilyKind.ITEM_ITEM:
            if history.size == 0:
                return self.popularity.copy(), UNKNOWN_USER
            half_life = float(model.params.get("recency_half_life") or 0.0)
            scores = scoring.history_scores(
                model.similarity, history, len(self.universe), recency_half_life=half_life
            )
            return scores, None
        factors = self.user_factors(user, history)
        if factors is None:
            return self.popularity.copy(), UNKNOWN_USER
        return scoring.score_blocks(factors[0], factors[1], self.blocks), None

    def model_history(self, history: np.ndarray) -> np.ndarray:
        """The positions of ``history`` that are the model's own items (in order)."""
        return history[(history >= 0) & (history < len(self.universe.head_ids))]

    def user_factors(
        self, user: int | None, history: np.ndarray
    ) -> tuple[np.ndarray, float] | None:
        """A factor model's vector and bias for the user: stored, or folded in from
        ``history`` (model positions) plus what training saw when the user is new or
        ``history`` holds items training did not see them with. None: no factors."""
        model = self.model
        arrays = model.arrays
        fold_in = model.fold_in
        if fold_in is not None and history.size:
            if user is None:
                return fold_in.user_vector(arrays["item_embeddings"], history), 0.0
            trained = model.seen(user)
            if not all_within(history, trained):
                vector = fold_in.user_vector(
                    arrays["item_embeddings"], np.concatenate([trained, history])
                )
                return vector, float(arrays["user_biases"][user])
        if user is None:
            return None
        return arrays["user_embeddings"][user], float(arrays["user_biases"][user])

    def similar(self, *, item_id: str, limit: int) -> Ranking:
        """Nearest items: by cosine of the item embeddings (factor families, new items
        included), the item's row of the item-item matrix (item-item families), or the
        cosine of the items' users in the training interactions (score families)."""
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
                "category or title word the model knows).",
                item_id=item_id,
            )
        head = len(self.universe.head_ids)
        kind = self.model.kind
        if kind == FamilyKind.ITEM_ITEM:  # the item's own row: what it recommends
            scores = scoring.history_scores(
                self.model.similarity,
                np.asarray([position], np.int64),
                len(self.universe),
                recency_half_life=0.0,
            )
        elif kind == FamilyKind.SCORES:  # nothing item-to-item: what the same users had
            arrays = self.model.arrays
            scores = scoring.cooccurrence_cosine(
                arrays["seen_indptr"], arrays["seen_indices"], position, len(self.universe)
            )
        else:
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

    # Catalog items the model has not seen, active, with at least one category or title
    # word it knows: scored through the (weighted) mean of those features' factors
    # (families with feature embeddings; the others have no such items).
    if model.category_rows or model.title_terms is not None:
        rows, features, weights = _known_features(model, catalog, ~in_model & catalog.active)
        known_per_row = np.bincount(rows, minlength=len(catalog.ids))
        tail_rows = np.flatnonzero(known_per_row > 0)
        tail = scoring.category_factors_flat(
            arrays["item_feature_embeddings"],
            arrays["item_feature_biases"],
            features,
            known_per_row[tail_rows],
            weights,
        )
    else:
        tail_rows = _EMPTY
        dim = arrays["item_embeddings"].shape[1] if "item_embeddings" in arrays else 0
        tail = (np.zeros((0, dim), np.float32), np.zeros(0, np.float32))
    tail_ids = catalog.ids.take(tail_rows)

    rows = np.concatenate([head_rows, tail_rows])
    universe = ItemUniverse(
        head_ids=item_ids,
        head_index=model.items,
        tail_ids=tail_ids,
        tail_index=IdIndex(tail_ids),
        blocked=np.flatnonzero(~head_ok).astype(np.int64),
        **universe_columns(
            rows, catalog.pks, catalog.titles, catalog.categories, catalog.rows_by_category
        ),
    )
    factors = model.kind == FamilyKind.FACTORS
    blocks = ((arrays["item_embeddings"], arrays["item_biases"]), tail) if factors else ()
    return ServingState(
        recommender=model.version.recommender,
        model=model,
        universe=universe,
        blocks=blocks,
        popularity=np.concatenate(
            [np.asarray(arrays["popularity"], np.float32), np.zeros(len(tail_rows), np.float32)]
        ),
        norms=(
            np.concatenate([model.item_norms, scoring.row_norms([tail])])
            if factors
            else model.item_norms
        ),
        catalog_stamp=catalog.stamp,
    )


def _known_features(
    model: LoadedModel, catalog: Catalog, candidates: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's features of the ``candidates`` (a mask of catalog rows) as entries
    sorted by row: ``(catalog row, feature row, weight)``; a category weighs 1, a title
    word its TF-IDF weight."""
    names, indptr, indices = catalog.category_matrix
    feature_of_name = np.asarray([model.category_rows.get(n, -1) for n in names], np.int64)
    features = feature_of_name[indices] if indices.size else indices
    row_of_entry = np.repeat(np.arange(len(catalog.ids)), np.diff(indptr))
    keep = (features >= 0) & candidates[row_of_entry]
    rows, features = row_of_entry[keep], features[keep]
    weights = np.ones(rows.size, np.float32)
    if model.title_terms is not None:
        candidate_rows = np.flatnonzero(candidates)
        terms = model.title_terms.weights([catalog.titles[r] for r in candidate_rows.tolist()])
        rows = np.concatenate([rows, np.repeat(candidate_rows, np.diff(terms.indptr))])
        features = np.concatenate([features, model.term_rows[terms.indices]])
        weights = np.concatenate([weights, terms.data.astype(np.float32)])
    order = np.argsort(rows, kind="stable")
    return rows[order], features[order], weights[order]


def universe_columns(
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
