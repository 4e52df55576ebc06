"""Every write of the recommender app goes through a function exported here."""

from recommender.services.api_keys import api_key_create
from recommender.services.ingest import (
    EventIngestResult,
    ItemUpsertResult,
    event_batch_ingest,
    item_batch_upsert,
    user_profiles_upsert,
)

__all__ = [
    "EventIngestResult",
    "ItemUpsertResult",
    "api_key_create",
    "event_batch_ingest",
    "item_batch_upsert",
    "user_profiles_upsert",
]
