"""Who may call what: every API operation and every state-changing admin view or action,
against every kind of caller. The lists are checked against the URL resolver and the
admin registry, so a new endpoint or action fails here until it is classified.

API callers: anonymous, a key without the needed scope, a revoked key, a staff session
without and with every permission (the API takes no sessions), and a key with each
scope that suffices. Only the last may get a 2xx, and a refused write writes nothing.

Admin callers: anonymous, an API key (the admin takes none), staff without and with the
view's custom permission. Only the last changes anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from recommender.exports.models import ExportJob
from recommender.models import (
    ApiKey,
    DataErasure,
    Event,
    Item,
    ModelVersion,
    PromotionEvent,
    Recommender,
    Scope,
    UserProfile,
    VersionStatus,
)
from recommender.online.experiments import TreatmentSpec, experiment_create, experiment_stop
from recommender.online.models import Experiment, ExperimentStatus
from recommender.services import api_key_create, api_key_revoke, model_version_promote
from tests.factories import (
    EventFactory,
    ModelVersionFactory,
    RecommenderFactory,
    TrainingRunFactory,
    staff_client,
)
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec
from training.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db

READ = (Scope.RECOMMENDATIONS_READ, Scope.TRAINING_WRITE)
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Op:
    """One API operation: the scopes that each suffice, and what to send."""

    scopes: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None


EVENT = {
    "event_id": "matrix-1",
    "user_id": "user-0",
    "item_id": "item-0",
    "type": "view",
    "timestamp": "2024-01-02T00:00:00Z",
}
API = {
    ("events", "post"): Op((Scope.EVENTS_WRITE,), body={"events": [EVENT]}),
    ("items", "post"): Op((Scope.CATALOG_WRITE,), body={"items": [{"item_id": "new-item"}]}),
    ("user", "delete"): Op((Scope.EVENTS_WRITE,), {"user_id": "user-0"}),
    ("model-versions", "get"): Op(READ),
    ("models-active", "get"): Op(READ),
    ("model-version-promote", "post"): Op(
        (Scope.TRAINING_WRITE,), {"number": 3}, body={"reason": "matrix"}
    ),
    ("model-version-rollback", "post"): Op(
        (Scope.TRAINING_WRITE,), {"number": 2}, body={"reason": "matrix"}
    ),
    ("recommendations", "get"): Op((Scope.RECOMMENDATIONS_READ,), {"user_id": "user-0"}),
    ("similar-items", "get"): Op((Scope.RECOMMENDATIONS_READ,), {"item_id": "item-0"}),
    ("training-runs", "get"): Op(READ),
    ("training-runs", "post"): Op((Scope.TRAINING_WRITE,), body={"dry_run": True}),
    ("training-run", "get"): Op(READ, {"run_id": "<run>"}),
    ("online-metrics", "get"): Op((Scope.TRAINING_WRITE,)),
    ("experiments", "post"): Op(
        (Scope.TRAINING_WRITE,),
        body={"name": "matrix", "treatments": [{"version": 3, "share": 0.5}]},
    ),
    ("experiment", "get"): Op((Scope.TRAINING_WRITE,), {"experiment_id": "<experiment>"}),
    ("experiment-stop", "post"): Op(
        (Scope.TRAINING_WRITE,), {"experiment_id": "<experiment>"}, body={"reason": "matrix"}
    ),
}
# Public on purpose: the schema and its UI, the load balancer's probes, and /metrics
# (unauthenticated by design; restricted at the proxy, see docs/OPERATIONS.md).
PUBLIC = {"schema", "swagger-ui", "healthz", "readyz", "metrics"}
CATCH_ALL = {"api-not-found"}  # the JSON 404 for unknown /api/ URLs


def _walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _routes() -> list[tuple[str, URLPattern]]:
    return list(_walk(get_resolver().url_patterns))


def test_every_api_operation_and_public_url_is_classified():
    operations, public = set(), set()
    for route, pattern in _routes():
        if route.startswith("admin/"):
            continue
        view_class = getattr(pattern.callback, "view_class", None)
        if route.startswith("api/v1/"):
            operations |= {(pattern.name, m) for m in HTTP_METHODS if hasattr(view_class, m)}
        else:
            public.add(pattern.name)
    assert operations == set(API)
    assert public == PUBLIC | CATCH_ALL


# --- The API -------------------------------------------------------------------------


@pytest.fixture
def served(settings, tmp_path) -> TrainingRun:
    """An active model over a catalog (v2, rolled out over v1), a candidate (v3) and a
    finished run: every operation can succeed."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    version = create_version(spec)
    create_version(spec, promote=False)
    # A running experiment on another recommender (so "default" may start one).
    other = ModelVersionFactory(recommender__name="other")
    ModelVersionFactory(recommender=other.recommender)
    model_version_promote(version=other, reason="setup")
    experiment_create(
        recommender=other.recommender, name="matrix", treatments=[TreatmentSpec(2, 0.5)]
    )
    return TrainingRunFactory(
        recommender=version.recommender, status=RunStatus.SUCCEEDED, version=version
    )


def key_client(scopes: list[str], *, revoked: bool = False) -> APIClient:
    api_key, key = api_key_create(name="matrix", scopes=scopes)
    if revoked:
        api_key_revoke(api_key=api_key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def staff_session(*perms: str, superuser: bool = False) -> APIClient:
    return staff_client(
        f"staff-{User.objects.count()}", *perms, client_class=APIClient, superuser=superuser
    )


DENIED_API_CALLERS: dict[str, tuple[Callable[[Op], APIClient], int]] = {
    "anonymous": (lambda op: APIClient(), 401),
    "wrong-scope": (lambda op: key_client(sorted(set(Scope.values) - set(op.scopes))), 403),
    "revoked-key": (lambda op: key_client(list(Scope.values), revoked=True), 401),
    "staff-without-permissions": (lambda op: staff_session(), 401),
    "superuser-session": (lambda op: staff_session(superuser=True), 401),
}


def call(client: APIClient, name: str, method: str, op: Op, run: TrainingRun):
    placeholders = {"<run>": run.pk, "<experiment>": Experiment.objects.get().pk}
    kwargs = {k: placeholders.get(v, v) for k, v in op.kwargs.items()}
    url = reverse(name, kwargs=kwargs)
    if method == "post":
        return client.post(url, op.body, format="json")
    if method == "delete":
        return client.delete(url)
    return client.get(url)


def written() -> tuple[int, ...]:
    return (
        Event.objects.count(),
        Item.objects.count(),
        TrainingRun.objects.count(),
        DataErasure.objects.count(),
        PromotionEvent.objects.count(),
        Experiment.objects.filter(status=ExperimentStatus.RUNNING).count(),
    )


@pytest.mark.parametrize("caller", DENIED_API_CALLERS)
@pytest.mark.parametrize("name,method", API)
def test_an_api_caller_without_the_scope_is_refused_and_writes_nothing(
    served, name, method, caller
):
    op = API[name, method]
    make_client, status = DENIED_API_CALLERS[caller]
    before = written()
    response = call(make_client(op), name, method, op, served)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] in (
        "not_authenticated",
        "authentication_failed",
        "permission_denied",
    )
    assert written() == before


@pytest.mark.parametrize(
    "name,method,scope",
    [(*operation, scope) for operation, op in API.items() for scope in op.scopes],
)
def test_a_key_with_any_one_sufficient_scope_succeeds(served, name, method, scope):
    op = API[name, method]
    response = call(key_client([scope]), name, method, op, served)
    assert 200 <= response.status_code < 300, response.content


def test_a_key_revoked_after_use_is_refused_at_once(served, django_capture_on_commit_callbacks):
    """Validated keys are cached per process; revoking one clears the cache on commit."""
    api_key, key = api_key_create(name="soon-revoked", scopes=list(Scope.values))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get(reverse("models-active")).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=api_key)
    assert client.get(reverse("models-active")).status_code == 401


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_urls_need_no_credentials(client, name):
    assert client.get(reverse(name)).status_code == 200


# --- The admin -----------------------------------------------------------------------

PROMOTE = "recommender.promote_modelversion"
ROLLBACK = "recommender.rollback_modelversion"
START = "training.start_training_run"
REVOKE = "recommender.change_apikey"
ADD_KEY = "recommender.add_apikey"
DELETE_EVENT = "recommender.delete_event"
DELETE_ITEM = "recommender.delete_item"
MANAGE_EXPERIMENT = "recommender.manage_experiment"
EXPORT = "recommender.add_exportjob"
VIEW_PERMISSIONS = (
    "recommender.view_event",
    "recommender.view_item",
    "recommender.view_userprofile",
    "recommender.view_recommender",
    "recommender.view_modelversion",
    "recommender.view_apikey",
    "training.view_trainingrun",
)


@dataclass
class World:
    """v1 was active, v2 is active now (so a rollback has a target), v3 is a candidate;
    a queued run of their recommender, an idle recommender, an unrevoked key."""

    v1: ModelVersion
    v3: ModelVersion
    run: TrainingRun
    idle: Recommender
    api_key: ApiKey
    event: Event
    profile: UserProfile
    running: Experiment  # of "shop": v2 (active) against v3
    stopped: Experiment  # of "shop", stopped: v3 may be promoted as its winner


@pytest.fixture
def world() -> World:
    v1 = ModelVersionFactory(recommender__name="shop")
    v2 = ModelVersionFactory(recommender=v1.recommender)
    v3 = ModelVersionFactory(recommender=v1.recommender)
    model_version_promote(version=v1, reason="first")
    model_version_promote(version=v2, reason="second")
    run = TrainingRunFactory(recommender=v1.recommender, status=RunStatus.QUEUED)
    api_key, _ = api_key_create(name="victim", scopes=[Scope.EVENTS_WRITE])
    idle = RecommenderFactory(name="idle")
    event = EventFactory(user_external_id="subject")
    profile = UserProfile.objects.create(external_id="subject")
    treatments = [TreatmentSpec(version=v3.number, share=0.5)]
    stopped = experiment_stop(
        experiment=experiment_create(recommender=v1.recommender, name="old", treatments=treatments)
    )
    running = experiment_create(recommender=v1.recommender, name="now", treatments=treatments)
    return World(
        v1=v1,
        v3=v3,
        run=run,
        idle=idle,
        api_key=api_key,
        event=event,
        profile=profile,
        running=running,
        stopped=stopped,
    )


def _changelist(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@dataclass(frozen=True)
class AdminCase:
    """A state-changing admin POST: its URL and data, the permission it needs, and the
    state it changes (read before and after)."""

    permission: str
    request: Callable[[World], tuple[str, dict]]
    state: Callable[[World], Any]


def _status(version: ModelVersion) -> str:
    version.refresh_from_db()
    return version.status


def _active(world: World) -> int:
    return ModelVersion.objects.get(
        recommender=world.v1.recommender, status=VersionStatus.ACTIVE
    ).number


def _run_state(world: World) -> tuple[int, str]:
    world.run.refresh_from_db()
    return TrainingRun.objects.count(), world.run.status


CONFIRMED = {"confirm": "yes", "reason": "matrix"}
# Custom admin URLs (by URL name) that change state.
ADMIN_VIEWS = {
    "recommender_modelversion_promote": AdminCase(
        PROMOTE,
        lambda w: (reverse("admin:recommender_modelversion_promote", args=[w.v3.pk]), CONFIRMED),
        lambda w: _status(w.v3),
    ),
    "recommender_modelversion_rollback": AdminCase(
        ROLLBACK,
        lambda w: (
            reverse("admin:recommender_modelversion_rollback", args=[w.v1.recommender_id]),
            CONFIRMED,
        ),
        _active,
    ),
    "recommender_recommender_start_run": AdminCase(
        START,
        lambda w: (reverse("admin:recommender_recommender_start_run", args=[w.idle.pk]), {}),
        _run_state,
    ),
    "training_trainingrun_cancel": AdminCase(
        START,
        lambda w: (reverse("admin:training_trainingrun_cancel", args=[w.run.pk]), {}),
        _run_state,
    ),
    "recommender_experiment_stop": AdminCase(
        MANAGE_EXPERIMENT,
        lambda w: (reverse("admin:recommender_experiment_stop", args=[w.running.pk]), CONFIRMED),
        lambda w: Experiment.objects.get(pk=w.running.pk).status,
    ),
    "recommender_experiment_promote": AdminCase(
        PROMOTE,
        lambda w: (
            reverse("admin:recommender_experiment_promote", args=[w.stopped.pk]),
            {**CONFIRMED, "arm": "treatment-1"},
        ),
        lambda w: _status(w.v3),
    ),
}
# Custom admin URLs that only read (any staff member with the model's view permission).
ADMIN_READ_VIEWS = {
    "dashboard",
    "recommender_exportjob_download",  # a GET needing the export job's view permission
    "recommender_modelversion_compare",
    "recommender_recommender_cron_preview",
    "training_trainingrun_progress",
}
# Admin actions (changelist POSTs) guarded by a permission.
ADMIN_ACTIONS = {
    "export_recommendations": AdminCase(
        EXPORT,
        lambda w: (
            _changelist(ModelVersion),
            {"action": "export_recommendations", "_selected_action": [w.v3.pk], "index": 0},
        ),
        lambda w: ExportJob.objects.count(),
    ),
    "promote_version": AdminCase(
        PROMOTE,
        lambda w: (
            _changelist(ModelVersion),
            {"action": "promote_version", "_selected_action": [w.v3.pk], "index": 0},
        ),
        lambda w: _status(w.v3),
    ),
    "rollback_recommender": AdminCase(
        ROLLBACK,
        lambda w: (
            _changelist(ModelVersion),
            {"action": "rollback_recommender", "_selected_action": [w.v3.pk], "index": 0},
        ),
        _active,
    ),
    "revoke_keys": AdminCase(
        REVOKE,
        lambda w: (
            _changelist(ApiKey),
            {"action": "revoke_keys", "_selected_action": [w.api_key.pk], "index": 0},
        ),
        lambda w: ApiKey.objects.get(pk=w.api_key.pk).revoked,
    ),
}


def _erasure_action(model: type[Model], action: str, pk: Callable[[World], int]):
    return lambda w: (
        _changelist(model),
        {"action": action, "_selected_action": [pk(w)], "index": 0, **CONFIRMED},
    )


def _data(world: World) -> tuple[int, int, int, int]:
    return (
        Event.objects.count(),
        Item.objects.count(),
        UserProfile.objects.count(),
        DataErasure.objects.count(),
    )


ADMIN_ACTIONS |= {
    "delete_events": AdminCase(
        DELETE_EVENT, _erasure_action(Event, "delete_events", lambda w: w.event.pk), _data
    ),
    "erase_event_users": AdminCase(
        DELETE_EVENT, _erasure_action(Event, "erase_event_users", lambda w: w.event.pk), _data
    ),
    "delete_items": AdminCase(
        DELETE_ITEM, _erasure_action(Item, "delete_items", lambda w: w.event.item_id), _data
    ),
    "erase_users": AdminCase(
        DELETE_EVENT, _erasure_action(UserProfile, "erase_users", lambda w: w.profile.pk), _data
    ),
}
# Read-only actions, open to whoever sees the list.
ADMIN_READ_ACTIONS = {"compare_versions"}
# The API-key admin's add view is replaced by api_key_create; it is a write.
ADMIN_ADD_KEY = AdminCase(
    ADD_KEY,
    lambda w: (
        reverse("admin:recommender_apikey_add"),
        {"name": "sneaky", "scopes": [Scope.TRAINING_WRITE]},
    ),
    lambda w: ApiKey.objects.filter(name="sneaky").count(),
)
ADMIN_CASES = {**ADMIN_VIEWS, **ADMIN_ACTIONS, "recommender_apikey_add": ADMIN_ADD_KEY}


def test_every_custom_admin_url_and_action_is_classified():
    ours = {"recommender", "training"}
    custom = {
        pattern.name
        for route, pattern in _routes()
        if route.startswith("admin/")
        and pattern.name
        and (pattern.name.split("_")[0] in ours or pattern.name == "dashboard")
        and not pattern.name.endswith(("_changelist", "_add", "_history", "_delete", "_change"))
    }
    assert custom == set(ADMIN_VIEWS) | ADMIN_READ_VIEWS
    actions = {
        action if isinstance(action, str) else action.__name__
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in ours
        for action in model_admin.actions or ()
    }
    assert actions == set(ADMIN_ACTIONS) | ADMIN_READ_ACTIONS


def admin_caller(kind: str, permission: str) -> Client:
    if kind == "anonymous":
        return Client()
    if kind == "api-key":
        _, key = api_key_create(name="not-for-the-admin", scopes=list(Scope.values))
        return Client(HTTP_AUTHORIZATION=f"Api-Key {key}")
    perms = VIEW_PERMISSIONS + ((permission,) if kind == "staff-with-permission" else ())
    return staff_client(f"admin-{kind}-{User.objects.count()}", *perms)


@pytest.mark.parametrize("kind", ["anonymous", "api-key", "staff-without-permission"])
@pytest.mark.parametrize("case", ADMIN_CASES)
def test_an_admin_write_without_the_permission_is_refused_and_changes_nothing(world, case, kind):
    admin_case = ADMIN_CASES[case]
    url, data = admin_case.request(world)
    before = admin_case.state(world)
    response = admin_caller(kind, admin_case.permission).post(url, data)
    if kind == "staff-without-permission" and case in ADMIN_ACTIONS:
        # The changelist ignores an action the user may not run: it redirects back to
        # the list ("No action selected"), or shows the list when the user has no
        # action at all there. Either way the action itself never runs.
        assert response.status_code in (200, 302)
        if response.status_code == 302:
            assert response["Location"] == url
        else:
            assert "admin/change_list.html" in [t.name for t in response.templates]
    elif kind == "staff-without-permission":
        assert response.status_code == 403
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    assert admin_case.state(world) == before


@pytest.mark.parametrize("case", ADMIN_CASES)
def test_staff_with_the_permission_may(world, case):
    """The positive control: the same request by staff holding the permission works (the
    promote / rollback actions lead to their confirmation page, which changes nothing)."""
    admin_case = ADMIN_CASES[case]
    url, data = admin_case.request(world)
    before = admin_case.state(world)
    response = admin_caller("staff-with-permission", admin_case.permission).post(url, data)
    assert response.status_code in (200, 302)
    if case in ("promote_version", "rollback_recommender"):
        assert response.status_code == 200 and 'name="confirm"' in response.content.decode()
    else:
        assert admin_case.state(world) != before
