"""Every operation of the OpenAPI schema (``/api/schema/``) fuzzed by schemathesis against
the Django app in process (WSGI, the test database): no 5xx, and every response — the
4xx ones included — documented by the schema, with the documented content type and body.
Schemathesis sends valid and invalid input (its examples, coverage and fuzzing phases),
requests without the key and with methods the operation does not have.

Examples are bounded and derandomized so CI sees the same cases every time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from recommender.models import Item, Scope
from recommender.services import api_key_create
from recsite.wsgi_dispatch import get_dispatching_application
from tests.factories import EventFactory, TrainingRunFactory
from tests.recommender.serving_helpers import (
    ModelSpec,
    create_catalog,
    create_version,
    default_spec,
)
from training.models import RunStatus

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25


def numbered_spec() -> ModelSpec:
    """``default_spec`` with users and items called "0", "1", ...: the ids Hypothesis
    tries first, so the fuzzer reaches known users and items, not only 404s."""
    spec = default_spec()
    item = {old: str(n) for n, old in enumerate(spec.items)}
    user = {old: str(n) for n, old in enumerate(spec.users)}
    return replace(
        spec,
        users=list(user.values()),
        items=list(item.values()),
        categories={item[i]: c for i, c in spec.categories.items()},
        seen={user[u]: [item[i] for i in seen] for u, seen in spec.seen.items()},
    )


@pytest.fixture
def api_key(db, settings, tmp_path) -> str:
    """A key with every scope, over a served model, a catalog, events and a finished run,
    so the fuzzer reaches the 200 answers as well as the errors."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = numbered_spec()
    create_catalog(spec)
    version = create_version(spec)
    for n, user in enumerate(spec.users):
        EventFactory(
            event_id=f"fuzz-{n}",
            user_external_id=user,
            item=Item.objects.get(external_id=spec.items[n]),
            timestamp=datetime(2024, 1, 1, tzinfo=UTC),
        )
    TrainingRunFactory(recommender=version.recommender, status=RunStatus.SUCCEEDED, version=version)
    _, key = api_key_create(name="schema-fuzz", scopes=list(Scope.values))
    return key


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """A WSGI handler closes the database connection after each request, as a server
    should; here that connection holds the test's transaction, so keep it open for the
    test (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Loaded at collection, through the WSGI application gunicorn serves (pytest-django has set
# Django up by then; serving the schema reads no database). Not
# ``schemathesis.pytest.from_fixture``: its lazy loader sets ``request.node._nodeid``,
# which pytest 9 no longer has.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_dispatching_application())


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same cases on every run
    database=None,  # no example database: nothing carried over from an earlier run
    deadline=None,  # a shared CI machine: time is not what this test measures
    # The fixtures are set up once per operation on purpose: its examples share the data.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_conforms_to_the_schema(case, api_key, keep_test_connection):
    case.call_and_validate(headers={"Authorization": f"Api-Key {api_key}"}, checks=CHECKS)
