"""Demo data in: the synthetic shop of ``recommender.demo_data``, written through the
same ingest services as real data. Deterministic ids (``demo:{seed}:{n}`` for events)
make running it again with the same arguments a no-op."""

from __future__ import annotations

import time
from datetime import datetime

from django.utils import timezone

from recommender.demo_data import (
    EVENT_TYPES,
    demo_event_id,
    demo_item_id,
    demo_user_id,
    generate_demo_data,
)
from recommender.models import OPERATOR_CLIENT
from recommender.services.datasets import ImportSummary, Progress
from recommender.services.ingest import (
    event_batch_ingest,
    item_batch_upsert,
    user_profiles_upsert,
)


def demo_data_generate(
    *,
    users: int = 1000,
    items: int = 500,
    events: int = 50_000,
    seed: int = 42,
    days: int = 42,
    end: datetime | None = None,
    batch_size: int = 5000,
    progress: Progress | None = None,
) -> ImportSummary:
    """Generate and store the demo catalog, user profiles and events.

    Events fall in the ``days`` whole days before ``end``'s day (default: today, UTC), so a
    freshly generated dataset sits inside any recent training window. Running it again
    another day stores nothing new: event ids depend on the seed, not on the date."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.monotonic()
    end = end or timezone.now()
    data = generate_demo_data(
        users=users, items=items, events=events, seed=seed, days=days, end=end
    )
    summary = ImportSummary(source=f"demo data (seed {seed})")

    for start in range(0, items, batch_size):
        result = item_batch_upsert(
            raw_items=[
                {
                    "item_id": demo_item_id(index),
                    "title": data.item_titles[index],
                    "categories": data.item_categories[index],
                }
                for index in range(start, min(start + batch_size, items))
            ]
        )
        summary.items_created += result.created
        summary.items_updated += result.updated

    for start in range(0, users, batch_size):
        summary.users += user_profiles_upsert(
            profiles=[
                (demo_user_id(index), data.user_features[index])
                for index in range(start, min(start + batch_size, users))
            ]
        )

    for start in range(0, events, batch_size):
        stop = min(start + batch_size, events)
        result = event_batch_ingest(
            raw_events=[
                {
                    "event_id": demo_event_id(seed, index),
                    "user_id": demo_user_id(int(data.event_user[index])),
                    "item_id": demo_item_id(int(data.event_item[index])),
                    "type": EVENT_TYPES[data.event_type[index]],
                    "timestamp": int(data.event_time[index]),
                }
                for index in range(start, stop)
            ],
            client=OPERATOR_CLIENT,
        )
        summary.events_created += result.created
        summary.events_duplicate += result.duplicates
        if progress:
            progress(stop, events)
    summary.seconds = time.monotonic() - started
    return summary
