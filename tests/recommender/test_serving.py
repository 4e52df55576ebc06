"""The serving registry: loading, verifying and swapping in-process."""

import numpy as np
import pytest
from django.core.cache import cache
from prometheus_client import REGISTRY

from recommender.models import Item, ModelVersion
from recommender.services.registry import model_version_rollback
from recommender.serving.registry import registry
from recommender.serving.signal import active_version_changed
from tests.factories import EventFactory
from tests.recommender.serving_helpers import corrupt, create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def v1(artifact_dir):
    spec = default_spec(seed=1)
    create_catalog(spec)
    return create_version(spec)


def served(name: str = "default") -> int | None:
    state = registry.state(name)
    return state.version_number if state else None


def failures(name: str = "default") -> float:
    value = REGISTRY.get_sample_value("recsite_model_load_failures_total", {"recommender": name})
    return value or 0.0


def test_a_promotion_is_swapped_in_at_the_next_refresh(v1):
    assert served() == 1
    before = registry.state("default")
    create_version(default_spec(seed=2))
    assert served() == 1  # nothing loads on the request path
    registry.refresh()
    after = registry.state("default")
    assert after.version_number == 2
    assert before.version_number == 1  # a request holding the old state keeps it intact
    assert not np.shares_memory(
        before.model.arrays["item_embeddings"], after.model.arrays["item_embeddings"]
    )


def test_a_rollback_is_swapped_in_too(v1):
    create_version(default_spec(seed=2))
    registry.refresh()
    model_version_rollback(recommender=v1.recommender, reason="test")
    registry.refresh()
    assert served() == 1


def test_a_corrupted_artifact_is_refused_and_the_old_version_keeps_serving(v1, client):
    assert served() == 1
    v2 = create_version(default_spec(seed=2))  # promote verifies the artifact: damage it after
    corrupt(v2)
    failed_before = failures()
    registry.refresh()
    assert served() == 1
    assert failures() == failed_before + 1
    health = client.get("/readyz").json()["checks"]["serving"]
    default = health["recommenders"]["default"]
    assert (default["active_version"], default["loaded_version"]) == (2, 1)
    assert default["last_load_error"]["version"] == 2
    assert default["last_load_error"]["code"] == "checksum_mismatch"
    assert health["ok"] is True  # still serving a model
    assert health["degraded"] is True
    assert default["degraded_reason"].endswith("; serving v1")
    registry.refresh()  # not retried on every poll
    assert failures() == failed_before + 1


def test_a_manifest_that_differs_from_the_recorded_checksum_is_refused(v1):
    assert served() == 1
    v2 = create_version(default_spec(seed=2))
    ModelVersion.objects.filter(pk=v2.pk).update(artifact_sha256="f" * 64)
    registry.refresh()
    assert served() == 1
    error = registry.health()["recommenders"]["default"]["last_load_error"]
    assert error["code"] == "checksum_mismatch"


def test_non_finite_factors_fail_the_test_prediction(artifact_dir):
    spec = default_spec()
    spec.user_factors[0, 0] = np.nan
    create_catalog(spec)
    create_version(spec)
    registry.refresh()
    health = registry.health()
    assert health["recommenders"]["default"]["last_load_error"]["code"] == "bad_prediction"
    assert health["ok"] is False  # an active version and no model served


def test_when_the_first_version_cannot_load_popularity_from_events_serves(artifact_dir, client):
    spec = default_spec()
    create_catalog(spec)
    version = create_version(spec)
    corrupt(version)
    EventFactory(item=Item.objects.get(external_id="item-7"), user_external_id="someone")
    state = registry.state("default")
    assert state.model is None
    assert state.universe.ids_at(np.arange(len(state.universe))) == ["item-7"]
    ready = client.get("/readyz")
    assert ready.status_code == 200  # requests are answered: degraded, not unready
    assert ready.json()["degraded"] is True
    default = ready.json()["checks"]["serving"]["recommenders"]["default"]
    assert default["degraded_reason"].startswith("v1 failed to load (checksum_mismatch:")
    assert default["degraded_reason"].endswith("serving the popularity fallback")


def test_the_cache_key_bumped_on_promote_signals_the_watcher(v1):
    registry.refresh()
    assert registry._signalled() is False
    active_version_changed(v1.recommender_id, version_number=2)
    assert registry._signalled() is True
    assert registry._signalled() is False  # once per bump


def test_an_unreachable_cache_is_no_signal(v1, monkeypatch):
    registry.refresh()

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get_many", down)
    assert registry._signalled() is False


def test_a_bump_right_after_the_first_load_is_not_missed(v1):
    registry.refresh()  # a process's first load, before its watcher ever looked at the key
    active_version_changed(v1.recommender_id, version_number=2)
    assert registry._signalled() is True
