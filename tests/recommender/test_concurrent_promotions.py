"""50 concurrent promotions and rollbacks: one active version at every moment, one audit
row per change that happened, none for a refused one.

Through the real entry points first: a staff user (not a superuser) with the promote and
rollback permissions logs in to the admin of a multi-worker gunicorn and clicks through
the changelist action and the confirmation page, 50 times at once from a thread pool.
Meanwhile a sampler on its own PostgreSQL connection counts the active versions of each
recommender every few milliseconds. Then the same with the services called from 50
threads in this process, all released at once, which packs more calls into the lock."""

from __future__ import annotations

import html
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg2
import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.db import connection

from recommender.exceptions import NoRollbackTarget, VersionAlreadyActive
from recommender.models import ModelVersion, PromotionEvent, Recommender, VersionStatus
from recommender.services.registry import model_version_promote, model_version_rollback
from tests.processes import Server
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CALLS = 50
REASON = "concurrency test"
SESSIONS = 10
PASSWORD = "concurrent-promotions-pw"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
ACTION_RE = re.compile(r'<form method="post" action="([^"]+/(?:promote|rollback)/[^"]*)"')
MESSAGE_RE = re.compile(r'<li class="(success|error|warning)">(.*?)</li>', re.S)
CHANGE_RE = re.compile(r"(\w+): ([\w ]+) from (v\d+|nothing) to v(\d+)\.")


@dataclass(frozen=True)
class Change:
    """One change of the active version: ``(recommender, kind, from, to)``."""

    recommender: str
    kind: str
    source: int | None
    target: int

    @classmethod
    def of(cls, event: PromotionEvent) -> Change:
        return cls(
            event.recommender.name,
            event.kind,
            event.from_version.number if event.from_version else None,
            event.to_version.number,
        )


@pytest.fixture
def versions(postgres, settings, tmp_path) -> dict[str, list[ModelVersion]]:
    """``default`` with v1 active and v2-v4 candidates, ``other`` with v1 active and a v2."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"  # where the server looks too
    spec = default_spec()
    create_catalog(spec)
    made = {}
    for name, count in (("default", 4), ("other", 2)):
        made[name] = [create_version(spec, recommender=name)]
        made[name] += [
            create_version(default_spec(seed=n), recommender=name, promote=False)
            for n in range(1, count)
        ]
    return made


class ActiveSampler:
    """Counts the active versions of each recommender every ``interval`` seconds on its own
    autocommit connection (each sample is one statement: one snapshot)."""

    def __init__(self, recommender_ids: list[int], interval: float = 0.003) -> None:
        db = connection.settings_dict
        self.connection = psycopg2.connect(
            dbname=db["NAME"],
            user=db["USER"] or "postgres",
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
        )
        self.connection.autocommit = True
        self.ids = recommender_ids
        self.interval = interval
        self.samples = 0
        self.violations: list[dict[int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        table = ModelVersion._meta.db_table
        with self.connection.cursor() as cursor:
            while not self.stop.is_set():
                cursor.execute(
                    f"SELECT r, (SELECT count(*) FROM {table} WHERE recommender_id = r "
                    "AND status = 'active') FROM unnest(%s::bigint[]) AS r",
                    [self.ids],
                )
                counts = dict(cursor.fetchall())
                self.samples += 1
                if any(count != 1 for count in counts.values()):
                    self.violations.append(counts)
                time.sleep(self.interval)

    def __enter__(self) -> ActiveSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.connection.close()


def audit_after(first_id: int) -> list[PromotionEvent]:
    return list(
        PromotionEvent.objects.filter(pk__gt=first_id)
        .select_related("recommender", "from_version", "to_version")
        .order_by("pk")
    )


def assert_audit_consistent(successes: list[Change], first_id: int) -> None:
    """Exactly one audit row per successful change; per recommender the rows form a chain
    (each starts where the previous ended) ending at the version active now."""
    events = audit_after(first_id)
    assert len(events) == len(successes)
    assert Counter(Change.of(e) for e in events) == Counter(successes)
    for recommender in Recommender.objects.all():
        chain = [e for e in PromotionEvent.objects.filter(recommender=recommender).order_by("pk")]
        for before, after in zip(chain, chain[1:], strict=False):
            assert after.from_version_id == before.to_version_id, (before, after)
        active = ModelVersion.objects.get(recommender=recommender, status=VersionStatus.ACTIVE)
        assert chain[-1].to_version_id == active.pk


def plan_calls(versions: dict[str, list[ModelVersion]], seed: int) -> list[tuple[str, int]]:
    """``CALLS`` calls in a fixed random order: ("promote", pk of the version to promote)
    or ("rollback", pk of a version of the recommender to roll back)."""
    choices = [("promote", v.pk) for vs in versions.values() for v in vs]
    choices += [("rollback", vs[0].pk) for vs in versions.values()]
    choices += [("rollback", versions["default"][1].pk)]  # default rolls back more often
    rng = random.Random(seed)
    return [rng.choice(choices) for _ in range(CALLS)]


# --- through the admin -------------------------------------------------------------------


@pytest.fixture
def staff_user(postgres) -> User:
    user = User.objects.create_user("promoter", password=PASSWORD, is_staff=True)
    for codename in ("view_modelversion", "promote_modelversion", "rollback_modelversion"):
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="recommender", codename=codename)
        )
    return user


@pytest.fixture
def server(start_server) -> Server:
    # DEBUG is off: over plain HTTP the cookies must not be marked Secure.
    server = start_server(SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false")
    server.wait_ready()
    return server


def csrf_token(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, html[:2000]
    return found.group(1)


def log_in(server: Server, user: User) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{server.url}/admin/login/", timeout=30)
    response = session.post(
        f"{server.url}/admin/login/",
        data={
            "username": user.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": csrf_token(page.text),
            "next": "/admin/",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    return session


@dataclass
class AdminCall:
    statuses: list[int]
    message: tuple[str, str] | None = None  # (level, text) shown after the change or refusal


def click(server: Server, sessions: list[requests.Session], pick: tuple[str, int]) -> AdminCall:
    """Select the row, run the action, confirm with a reason, read the message shown on
    the page the admin redirects to. Any session that is free does it."""
    kind, pk = pick
    session = sessions.pop()
    try:
        changelist = f"{server.url}/admin/recommender/modelversion/"
        page = session.get(changelist, timeout=30)
        call = AdminCall([page.status_code])
        confirmation = session.post(
            changelist,
            data={
                "action": f"{kind}_{'version' if kind == 'promote' else 'recommender'}",
                "_selected_action": [pk],
                "csrfmiddlewaretoken": csrf_token(page.text),
            },
            allow_redirects=False,
            timeout=30,
        )
        call.statuses.append(confirmation.status_code)
        if confirmation.status_code == 200:  # the confirmation page
            done = session.post(
                server.url + ACTION_RE.search(confirmation.text).group(1),
                data={
                    "confirm": "yes",
                    "reason": REASON,
                    "csrfmiddlewaretoken": csrf_token(confirmation.text),
                },
                allow_redirects=False,
                timeout=30,
            )
            call.statuses.append(done.status_code)
            redirect = done
        else:  # refused before the confirmation (nothing to roll back to)
            redirect = confirmation
        if redirect.status_code == 302:
            shown = session.get(server.url + redirect.headers["Location"], timeout=30)
            call.statuses.append(shown.status_code)
            found = MESSAGE_RE.search(shown.text)
            call.message = (
                (found.group(1), html.unescape(found.group(2)).strip()) if found else None
            )
        return call
    finally:
        sessions.append(session)


def test_concurrent_admin_promotions_and_rollbacks_keep_one_active_version_and_audit_each(
    versions, staff_user, server
):
    # One login (password hashing costs ~0.5 s), then one cookie jar per thread: like
    # browser windows of one user, each with its own pending messages.
    logged_in = log_in(server, staff_user)
    sessions = []
    for _ in range(SESSIONS):
        sessions.append(requests.Session())
        sessions[-1].cookies.update(logged_in.cookies)
    first_id = PromotionEvent.objects.order_by("-pk").values_list("pk", flat=True)[0]
    recommender_ids = [vs[0].recommender_id for vs in versions.values()]
    calls = plan_calls(versions, seed=1)

    started = time.perf_counter()
    with ActiveSampler(recommender_ids) as sampler, ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(lambda pick: click(server, sessions, pick), calls))
        seconds = time.perf_counter() - started
        time.sleep(0.05)  # a few samples after the last change

    statuses = Counter(status for call in results for status in call.statuses)
    assert not [s for s in statuses if s >= 500], statuses
    assert all(call.message for call in results), [c for c in results if not c.message]
    successes, refusals = [], Counter()
    for call in results:
        level, text = call.message
        if level == "success":
            # "Default: manual promotion from v1 to v3. ..." (the admin capitalises it)
            name, kind, source, target = CHANGE_RE.search(text).groups()
            successes.append(
                Change(
                    name.lower(),
                    "rollback" if kind == "rollback" else "promote",
                    None if source == "nothing" else int(source[1:]),
                    int(target),
                )
            )
        else:
            assert level == "error", call
            assert re.search(r"is already active|nothing to roll back to|no previous", text), text
            refusals[re.sub(r"v\d+|'\w+'|Version \d+", "<x>", text)] += 1
    print(
        f"{CALLS} admin calls in {seconds:.1f} s: {len(successes)} changes, "
        f"{sum(refusals.values())} refused {dict(refusals)}; HTTP statuses {dict(statuses)}; "
        f"{sampler.samples} samples of the active versions, {len(sampler.violations)} not 1"
    )
    assert sampler.samples >= 50
    assert sampler.violations == []
    assert successes and refusals  # both paths ran
    assert_audit_consistent(successes, first_id)


# --- through the services, in this process -----------------------------------------------


def test_concurrent_service_promotions_and_rollbacks_keep_one_active_version_and_audit_each(
    versions,
):
    first_id = PromotionEvent.objects.order_by("-pk").values_list("pk", flat=True)[0]
    calls = plan_calls(versions, seed=2)
    start = threading.Barrier(CALLS)

    def call(pick: tuple[str, int]) -> Change | Exception:
        kind, pk = pick
        try:
            # Each caller with its own objects, read before the start, as separate requests.
            version = ModelVersion.objects.select_related("recommender").get(pk=pk)
            do: Callable[[], PromotionEvent] = (
                (lambda: model_version_promote(version=version, reason=REASON))
                if kind == "promote"
                else (
                    lambda: model_version_rollback(recommender=version.recommender, reason=REASON)
                )
            )
            start.wait(timeout=30)
            return Change.of(do())
        except (VersionAlreadyActive, NoRollbackTarget) as exc:
            return exc
        finally:
            connection.close()

    recommender_ids = [vs[0].recommender_id for vs in versions.values()]
    with ActiveSampler(recommender_ids) as sampler, ThreadPoolExecutor(CALLS) as pool:
        results = list(pool.map(call, calls))
        time.sleep(0.05)

    successes = [r for r in results if isinstance(r, Change)]
    refusals = Counter(type(r).__name__ for r in results if not isinstance(r, Change))
    print(
        f"{CALLS} service calls from {CALLS} threads: {len(successes)} changes, refused "
        f"{dict(refusals)}; {sampler.samples} samples, {len(sampler.violations)} not 1"
    )
    assert sampler.samples >= 5
    assert sampler.violations == []
    assert successes and refusals
    assert_audit_consistent(successes, first_id)
