"""Explanations (``?explain=true``): for each item of a page, what ranked it (``source``)
and up to ``BECAUSE_MAX`` of the user's items that contributed most (``because``).
Computed only when asked, after the ranking, from the same state and history: the
default path does none of this.

- item-item families (ease, itemknn): the largest positive terms of the item's score,
  ``weight(history item) x similarity[history item, item]``, as scoring summed them;
- factor families (lightfm, als, svd): the user's history items (the request's recent
  items, plus what training saw them with) nearest to the item by embedding cosine,
  positive ones only;
- a score family or a fallback: none (popularity explains nothing user-specific)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.families import FamilyKind
from recommender.serving import scoring
from recommender.serving.state import Ranking, ServingState

BECAUSE_MAX = 3


@dataclass(frozen=True)
class Explanation:
    source: str
    because: list[str]  # item ids, the largest contribution first


def explanations(
    state: ServingState, ranking: Ranking, *, user_id: str, seen: Sequence[int] | np.ndarray
) -> list[Explanation]:
    """One explanation per item of ``ranking`` (ranked for ``user_id`` whose recent items
    are ``seen``, item keys as the request read them)."""
    sources = state.sources(ranking)
    model = state.model
    page = ranking.page.indices
    if ranking.fallback is not None or model is None or page.size == 0:
        return [Explanation(source, []) for source in sources]
    history = state.model_history(state.universe.positions_of_pks(seen)) if len(seen) else page[:0]
    if model.kind == FamilyKind.ITEM_ITEM:
        items, contributions = _item_item(state, history, page)
    elif model.kind == FamilyKind.FACTORS:
        user = None if user_id in state.forgotten_users else model.users.position(user_id)
        if user is not None:
            history = np.concatenate([history, model.seen(user)])
        items, contributions = _factors(state, history, page)
    else:
        return [Explanation(source, []) for source in sources]
    top = _top(contributions)
    chosen = np.unique(np.concatenate([row for row in top])) if top else items[:0]
    ids = dict(zip(chosen.tolist(), state.universe.ids_at(items[chosen]), strict=True))
    return [
        Explanation(source, [ids[i] for i in row.tolist()])
        for source, row in zip(sources, top, strict=True)
    ]


def _top(contributions: np.ndarray) -> list[np.ndarray]:
    """Per row, the columns of its ``BECAUSE_MAX`` largest positive entries, largest
    first (ties: the lower column, i.e. the more recent history item)."""
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :BECAUSE_MAX]
    values = np.take_along_axis(contributions, order, axis=1)
    return [row[value > 0] for row, value in zip(order, values, strict=True)]


def _item_item(
    state: ServingState, history: np.ndarray, page: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The history's distinct items and a (page, items) matrix of each one's term in
    each page item's score."""
    model = state.model
    half_life = float(model.params.get("recency_half_life") or 0.0)
    items, weights = scoring.history_weights(history, half_life)
    contributions = np.zeros((page.size, items.size), np.float32)
    if items.size == 0:
        return items, contributions
    terms = scoring.history_terms(model.similarity, items, weights)
    slot = np.full(len(state.universe), -1, dtype=np.int64)  # position -> index on the page
    slot[page] = np.arange(page.size)
    on_page = slot[terms.columns]
    hit = np.flatnonzero(on_page >= 0)
    history_item = np.searchsorted(np.cumsum(terms.lengths), hit, side="right")
    contributions[on_page[hit], history_item] = terms.values[hit]
    return items, contributions


def _factors(
    state: ServingState, history: np.ndarray, page: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The history's distinct items and a (page, items) matrix of cosines between their
    embeddings (page items may be new catalogue items, scored through categories)."""
    _, first = np.unique(history, return_index=True)
    items = history[np.sort(first)]
    if items.size == 0:
        return items, np.zeros((page.size, 0), np.float32)
    history_vectors = _unit(_embeddings(state, items), state.norms[items])
    page_vectors = _unit(_embeddings(state, page), state.norms[page])
    return items, page_vectors @ history_vectors.T


def _embeddings(state: ServingState, positions: np.ndarray) -> np.ndarray:
    """The embeddings of universe ``positions`` (model items, then the category-scored
    tail)."""
    head_embeddings, _ = state.blocks[0]
    tail_embeddings, _ = state.blocks[1]
    head = len(state.universe.head_ids)
    out = np.zeros((positions.size, head_embeddings.shape[1]), np.float32)
    in_head = positions < head
    out[in_head] = head_embeddings[positions[in_head]]
    out[~in_head] = tail_embeddings[positions[~in_head] - head]
    return out


def _unit(vectors: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    safe = np.where(norms > 0, norms, 1.0).astype(np.float32)
    return vectors / safe[:, None]
