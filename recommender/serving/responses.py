"""What the API calls: a page of recommendations for a user and the items similar to an
item, each from one ``ServingState`` read once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.exceptions import NoModel
from recommender.online.ids import recommendation_id_new
from recommender.online.models import ServedListKind
from recommender.online.recording import served_list_record
from recommender.selectors import recommender_get
from recommender.serving.experiments import ServedArm, ServedExperiment
from recommender.serving.explain import explanations
from recommender.serving.registry import registry
from recommender.serving.seen import recent_item_pks
from recommender.serving.state import Ranking, ServingState


@dataclass(frozen=True)
class RecommendationPage:
    recommender: str
    user_id: str
    model_version: int | None
    fallback: str | None
    recommendation_id: str
    experiment: dict[str, Any] | None  # {"id", "arm"} while the user is in an experiment
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
    positions = ranking.page.indices.tolist()
    scores = np.round(ranking.page.scores.astype(np.float64), 6).tolist()
    return [
        {
            "item_id": item_id,
            "score": score,
            "rank": rank,
            "title": title,
            "categories": list(categories),
        }
        for rank, (item_id, score, (title, categories)) in enumerate(
            zip(ranking.ids, scores, state.universe.describe(positions), strict=True),
            start=first_rank,
        )
    ]


def _arm(recommender: str, user_id: str) -> tuple[ServedExperiment | None, ServedArm | None]:
    experiment = registry.experiment(recommender)
    return (experiment, experiment.arm_of(user_id)) if experiment else (None, None)


def recommendations_get(
    *,
    recommender: str,
    user_id: str,
    limit: int,
    offset: int,
    exclude: list[str],
    category: str | None,
    explain: bool = False,
) -> RecommendationPage:
    """A page of recommendations with one read of the user's recent events (a Redis read
    while the process's cached list is current, ``serving/seen.py``). The model,
    the catalog filters and the items' titles are in the state; a user in a running
    experiment gets their arm's. The list is recorded for attribution (buffered, off the
    request path). With ``explain`` each item also says what ranked it and which of the
    user's items contributed most (``recommender.serving.explain``)."""
    state = _state_or_raise(recommender)
    experiment, arm = _arm(recommender, user_id)
    if arm is not None:
        state = arm.state
    seen = recent_item_pks(user_id)
    ranking = state.rank(
        user_id=user_id, seen=seen, exclude=exclude, category=category, offset=offset, limit=limit
    )
    recommendation_id = recommendation_id_new()
    served_list_record(
        recommendation_id=recommendation_id,
        recommender=recommender,
        model_version=state.version_number,
        user_id=user_id,
        item_ids=ranking.ids,
        sources=state.sources(ranking),
        kind=ServedListKind.RECOMMENDATIONS,
        first_position=offset + 1,
        experiment_id=experiment.experiment_id if arm else None,
        arm=arm.name if arm else "",
    )
    items = _items(state, ranking, first_rank=offset + 1)
    if explain:
        explained = explanations(state, ranking, user_id=user_id, seen=seen)
        for item, explanation in zip(items, explained, strict=True):
            item["source"] = explanation.source
            item["because"] = explanation.because
    return RecommendationPage(
        recommender=recommender,
        user_id=user_id,
        model_version=state.version_number,
        fallback=ranking.fallback,
        recommendation_id=recommendation_id.hex,
        experiment={"id": experiment.experiment_id, "arm": arm.name}
        if experiment and arm
        else None,
        items=items,
        limit=limit,
        offset=offset,
        total=ranking.catalog_total,
        has_more=offset + len(items) < ranking.page.total,
    )


def similar_items_get(*, recommender: str, item_id: str, limit: int) -> dict[str, Any]:
    """The items nearest to ``item_id`` (the active version: no user, so no experiment
    arm); recorded like a recommendation list, without a user."""
    state = _state_or_raise(recommender)
    ranking = state.similar(item_id=item_id, limit=limit)
    recommendation_id = recommendation_id_new()
    served_list_record(
        recommendation_id=recommendation_id,
        recommender=recommender,
        model_version=state.version_number,
        user_id="",
        item_ids=ranking.ids,
        sources=state.sources(ranking),
        kind=ServedListKind.SIMILAR,
    )
    items = _items(state, ranking, first_rank=1)
    return {
        "recommender": recommender,
        "item_id": item_id,
        "model_version": state.version_number,
        "recommendation_id": recommendation_id.hex,
        "items": items,
    }
