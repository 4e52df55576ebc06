"""What the API calls: a page of recommendations for a user and the items similar to an
item, each from one ``ServingState`` read once per request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from recommender.exceptions import NoModel
from recommender.selectors import recommender_get, user_recent_item_pks
from recommender.serving.registry import registry
from recommender.serving.state import Ranking, ServingState


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
