"""Every write of the recommender app goes through a function exported here."""

from recommender.services.api_keys import api_key_create, api_key_revoke
from recommender.services.datasets import ImportSummary, dataset_import
from recommender.services.demo_data import demo_data_generate
from recommender.services.erasure import events_erase, items_erase, user_erase
from recommender.services.events_retention import events_prune
from recommender.services.ingest import (
    EventIngestResult,
    ItemUpsertResult,
    event_batch_ingest,
    item_batch_upsert,
    user_profiles_upsert,
)
from recommender.services.registry import (
    model_version_create,
    model_version_promote,
    model_version_reject,
    model_version_rollback,
    model_versions_prune,
)
from recommender.services.retention import RetentionResult, artifacts_retain

__all__ = [
    "EventIngestResult",
    "ImportSummary",
    "ItemUpsertResult",
    "RetentionResult",
    "api_key_create",
    "api_key_revoke",
    "artifacts_retain",
    "dataset_import",
    "demo_data_generate",
    "event_batch_ingest",
    "events_erase",
    "events_prune",
    "item_batch_upsert",
    "items_erase",
    "model_version_create",
    "model_version_promote",
    "model_version_reject",
    "model_version_rollback",
    "model_versions_prune",
    "user_erase",
    "user_profiles_upsert",
]
