import shutil

import pytest

from recommender.models import Item, Scope
from tests.factories import EventFactory
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec


def test_healthz_answers_without_a_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == {"ok": True}


@pytest.mark.django_db
def test_openapi_schema_and_docs_work_offline(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/events" in paths and "/api/v1/items" in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"drf_spectacular_sidecar" in docs.content  # assets from static/, not a CDN


@pytest.mark.django_db
def test_readyz_stays_ready_and_says_degraded_when_the_artifact_folder_is_lost(
    settings, tmp_path, client, make_api_client
):
    """Every host shares the artifact folder: answering 503 would make a load balancer drop
    every host while each one still serves the popularity fallback."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    EventFactory(item=Item.objects.get(external_id="item-7"), user_external_id="someone")
    shutil.rmtree(settings.RECSITE_ARTIFACT_DIR)

    ready = client.get("/readyz")
    answer = make_api_client(Scope.RECOMMENDATIONS_READ).get("/api/v1/recommendations/user-0")

    assert (answer.status_code, answer.json()["fallback"]) == (200, "no_model")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["ready"], body["degraded"]) == (True, True)
    default = body["checks"]["serving"]["recommenders"]["default"]
    assert (default["active_version"], default["loaded_version"]) == (1, None)
    assert default["degraded_reason"].startswith("v1 failed to load (missing_file:")
    assert default["degraded_reason"].endswith("; serving the popularity fallback")


@pytest.mark.django_db
def test_readyz_is_not_degraded_while_the_active_version_is_served(settings, tmp_path, client):
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    body = client.get("/readyz").json()
    assert (body["ready"], body["degraded"]) == (True, False)
    assert body["checks"]["serving"]["recommenders"]["default"]["degraded_reason"] is None
