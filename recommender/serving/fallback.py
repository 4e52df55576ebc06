"""The popularity fallback served while a recommender has no model loaded: active items
ranked by their number of events, from one aggregate query."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db.models import Count

from recommender.ids import IdArray, IdIndex
from recommender.models import Item
from recommender.serving.catalog import categories_interned, categories_to_rows
from recommender.serving.state import ItemUniverse, ServingState, universe_columns


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
        item_categories.append(categories_interned(cats, interned))
    if not ids:
        return None
    head_ids = IdArray.from_strings(ids)
    empty_ids = IdArray.empty()
    universe = ItemUniverse(
        head_ids=head_ids,
        head_index=IdIndex(head_ids),
        tail_ids=empty_ids,
        tail_index=IdIndex(empty_ids),
        blocked=np.zeros(0, dtype=np.int64),
        **universe_columns(
            np.arange(len(ids), dtype=np.int64),
            np.asarray(pks, dtype=np.int64),
            titles,
            item_categories,
            categories_to_rows(item_categories),
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
