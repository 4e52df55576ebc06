"""What a run trains on: the events of its window as matrices, id maps and feature
matrices (``RunData``), their stats for the run record, and the holdout split."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from recommender.families import TITLE_TERMS_DEFAULT
from recommender.features import category_feature_names, term_feature_names, user_feature_names
from recommender.models import Recommender
from recommender.text_features import TitleTerms
from training.dataset import EventColumns, catalog_load, user_features_load
from training.pipeline.matrices import (
    FeatureMatrix,
    IdMap,
    Interactions,
    codes_of,
    distinct,
    feature_matrix,
)
from training.pipeline.split import Split, split_global, split_per_user
from training.title_terms import title_terms_fit


@dataclass
class RunData:
    events: EventColumns
    users: IdMap
    items: IdMap
    interactions: Interactions
    item_pks: np.ndarray
    item_features: FeatureMatrix | None
    user_features: FeatureMatrix | None
    title_terms: TitleTerms | None = None  # the vocabulary of the ``term:`` item features


def run_data_build(
    recommender: Recommender, events: EventColumns, params: dict[str, Any]
) -> RunData:
    """``params``: the run's hyper-parameters; ``title_terms`` sizes the title vocabulary
    of the item features (an ``auto`` run builds it at LightFM's default, for its trials)."""
    users, user_index = IdMap(events.users), events.user_codes
    item_pks, item_index = codes_of(events.item_pks)
    catalog = catalog_load(item_pks=item_pks)
    items = IdMap(np.asarray(catalog.external_ids, dtype=np.str_))
    # IdMap keeps the given order, so item index i is item_pks[i].
    interactions = Interactions(
        users=user_index,
        items=item_index,
        weights=events.weights,
        timestamps=events.timestamps,
    )
    item_features = title_terms = None
    if recommender.use_item_features:
        rows = np.repeat(
            np.arange(len(items), dtype=np.int64), [len(c) for c in catalog.categories]
        )
        labels = [label for names in catalog.categories for label in category_feature_names(names)]
        fitted = title_terms_fit(
            catalog.titles, int(params.get("title_terms", TITLE_TERMS_DEFAULT))
        )
        title_terms = fitted[0] if fitted else None
        item_features = feature_matrix(
            items,
            rows,
            np.asarray(labels, dtype=np.str_),
            weighted=FeatureMatrix(
                fitted[1], np.asarray(term_feature_names(title_terms.terms), dtype=np.str_)
            )
            if fitted
            else None,
        )
    user_features = None
    if recommender.use_user_features:
        profiles = user_features_load(user_ids=users.ids.tolist())
        per_user = [profiles.get(user, []) for user in users.ids.tolist()]
        rows = np.repeat(np.arange(len(users), dtype=np.int64), [len(f) for f in per_user])
        labels = [label for names in per_user for label in user_feature_names(names)]
        user_features = feature_matrix(users, rows, np.asarray(labels, dtype=np.str_))
    return RunData(
        events, users, items, interactions, item_pks, item_features, user_features, title_terms
    )


def run_data_stats(data: RunData) -> dict[str, Any]:
    n_users, n_items, n_events = len(data.users), len(data.items), len(data.events)
    pairs = int(distinct(data.interactions.users * max(n_items, 1) + data.interactions.items).size)
    return {
        "events": n_events,
        "users": n_users,
        "items": n_items,
        "pairs": pairs,
        "density": pairs / (n_users * n_items) if n_users and n_items else 0.0,
        "window_start": _iso(data.events.window_start),
        "window_end": _iso(data.events.window_end),
        "data_source": data.events.source,
        "first_event": _iso_ts(data.events.timestamps.min()) if n_events else None,
        "last_event": _iso_ts(data.events.timestamps.max()) if n_events else None,
        "ignored_event_types": data.events.ignored_types,
        "invalid_weights_skipped": data.events.invalid_weights,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _iso_ts(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), tz=UTC).isoformat()


def holdout_split(recommender: Recommender, data: RunData) -> Split:
    if recommender.holdout_strategy == "global_cutoff":
        stamps = data.interactions.timestamps
        cutoff = float(np.quantile(stamps, 1.0 - recommender.holdout_fraction))
        return split_global(data.interactions, cutoff)
    return split_per_user(data.interactions, recommender.holdout_fraction)
