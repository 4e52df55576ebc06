"""The serving registry: one immutable loaded model per recommender per process, hot-swapped.

A request calls ``registry.state(name)`` once and uses that :class:`ServingState` to the
end; nothing on the request path reads the artifact or loads anything (except the very
first call in a process that was not started with :meth:`ServingRegistry.start`).

``ServingRegistry.refresh`` is the only writer. It asks the database which version is
active, loads and verifies a new one (checksums, shapes, the manifest's sha256 against
the version row, a test prediction), builds the state with the current catalog, and only
then replaces the reference. A version that fails is never swapped in: the old state
keeps serving, the error is logged, counted in the metrics and shown by ``/readyz``; it
is retried after ``RETRY_FAILED_SECONDS``.

The watcher thread (:meth:`ServingRegistry.start`, one per process) calls ``refresh``
when the cache key bumped by promote / rollback changes (read every
``RECSITE_SERVING_CHECK_SECONDS``) and in any case every ``RECSITE_SERVING_POLL_SECONDS``,
which also picks up catalog changes (inactive items, new items) and covers a cache that
is unreachable or per-process (no Redis).

Arrays stay memory-mapped: every worker on a host shares one copy of the factors and of
the model's ids in the page cache. Per process there are only id indexes (a hash and a
position per id, ``recommender.ids``), norms and the catalog view (its ids as one UTF-8
blob: memory follows the ids' real length, not the longest one's).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone

from recommender.artifacts import ArtifactError
from recommender.exceptions import RecsiteError
from recommender.models import Recommender
from recommender.selectors import user_erasures_stamp, users_erased_since
from recommender.serving import metrics
from recommender.serving.catalog import Catalog, catalog_stamp, events_stamp
from recommender.serving.experiments import ExperimentArms, ServedExperiment, experiment_plans
from recommender.serving.fallback import popularity_state_build
from recommender.serving.model import (
    RETRY_FAILED_SECONDS,
    ActiveVersion,
    LoadedModel,
    active_versions,
)
from recommender.serving.signal import active_version_key
from recommender.serving.state import ServingState, model_state_build

logger = logging.getLogger(__name__)

# The no-model popularity (an aggregate over all events) is rebuilt at the next refresh
# when the catalog changes. When only events changed, once it is FALLBACK_REBUILD_SECONDS
# old and FALLBACK_REBUILD_COST times older than its last build took: the build is a scan
# of the events table (~12 s at 10M events, in every process), so a large table is
# re-counted every few minutes, not every 30 s (with two workers that kept PostgreSQL
# scanning and took API ingest at 10M events from ~14,000 to ~8,000 events/s).
FALLBACK_REBUILD_SECONDS = 30.0
FALLBACK_REBUILD_COST = 20.0


def fallback_rebuild_due(*, age: float, build_seconds: float) -> bool:
    """Whether a fallback built ``age`` seconds ago in ``build_seconds`` is rebuilt now
    that events changed: rebuilds take at most 1 / FALLBACK_REBUILD_COST of the time."""
    return age >= max(FALLBACK_REBUILD_SECONDS, FALLBACK_REBUILD_COST * build_seconds)


@dataclass
class LoadStatus:
    """What ``/readyz`` says about one recommender in this process."""

    active_version: int | None = None
    last_error: dict[str, Any] | None = None
    failures: int = 0

    def as_dict(self, state: ServingState | None) -> dict[str, Any]:
        model = state.model if state else None
        loaded = model.version.number if model else None
        return {
            "active_version": self.active_version,
            "loaded_version": loaded,
            "loaded_at": (
                datetime.fromtimestamp(model.loaded_at, tz=UTC).isoformat() if model else None
            ),
            "serving": (
                "model" if model else ("popularity_fallback" if state else "nothing (no events)")
            ),
            # Requests are answered (a model or the popularity fallback), or there is no
            # active version to answer with yet (a fresh install, the same on every host).
            "answering": state is not None or self.active_version is None,
            "degraded": self.active_version is not None and loaded != self.active_version,
            "degraded_reason": self._degraded_reason(state, loaded),
            "load_failures": self.failures,
            "last_load_error": self.last_error,
        }

    def _degraded_reason(self, state: ServingState | None, loaded: int | None) -> str | None:
        """Why this process does not serve the active version, in words; None when it does."""
        if self.active_version is None or loaded == self.active_version:
            return None
        error = (
            self.last_error
            if (self.last_error or {}).get("version") == self.active_version
            else None
        )
        why = (
            f"v{self.active_version} failed to load ({error['code']}: {error['message']})"
            if error
            else f"v{self.active_version} is not loaded yet"
        )
        if loaded is not None:
            return f"{why}; serving v{loaded}"
        if state is not None:
            return f"{why}; serving the popularity fallback"
        return f"{why}; nothing to serve (no events for the popularity fallback)"


@dataclass
class _Failed:
    version_id: int
    at: float


class ServingRegistry:
    """The per-process holder of :class:`ServingState` references (module singleton
    ``registry``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watcher_pid: int | None = None
        self._clear()

    def _clear(self) -> None:
        self._states: dict[str, ServingState] = {}
        self._catalog: Catalog | None = None
        self._status: dict[str, LoadStatus] = {}
        self._failed: dict[str, _Failed] = {}
        self._recommender_ids: dict[str, int] = {}
        self._tokens: dict[str, Any] = {}
        self._refreshed = False
        self._fallback_events: dict[str, Any] = {}
        self._fallback_built: dict[str, float] = {}  # monotonic time of the last build
        self._fallback_cost: dict[str, float] = {}  # its seconds
        self._forgotten: dict[str, tuple[tuple[int, int | None], frozenset[str]]] = {}
        self._experiments = ExperimentArms()

    @property
    def catalog(self) -> Catalog | None:
        """The catalog the current states were built from."""
        return self._catalog

    # -- the request path --

    def state(self, name: str) -> ServingState | None:
        """The state to serve ``name`` with (read once per request)."""
        if not self._refreshed:
            self.refresh()
        return self._states.get(name)

    def experiment(self, name: str) -> ServedExperiment | None:
        """``name``'s running experiment as this process serves it (read once per request,
        after ``state``)."""
        return self._experiments.served.get(name)

    # -- loading --

    def refresh(self) -> None:
        """Bring every recommender's state up to date with the database (the watcher
        calls this; tests call it directly). Serialized by a lock."""
        with self._lock:
            self._refresh()
            self._refreshed = True

    def _refresh(self) -> None:
        names = dict(Recommender.objects.values_list("pk", "name"))
        self._recommender_ids = {name: pk for pk, name in names.items()}
        # The keys' values before reading the active versions: a promotion bumps its key
        # after it commits, so a bump this read misses is a change the watcher sees next.
        tokens = self._read_tokens()
        if tokens is not None:
            self._tokens = tokens
        actives = active_versions(names)
        stamp = catalog_stamp()
        catalog = self._catalog if self._catalog and self._catalog.stamp == stamp else None

        def current_catalog() -> Catalog:
            """The catalog at ``stamp``: patched from the last one (reading only the rows
            changed since) or, the first time, read in full."""
            if self._catalog is None:
                return Catalog.read(stamp)
            return self._catalog.updated(stamp)

        states = dict(self._states)
        for name, active in actives.items():
            status = self._status.setdefault(name, LoadStatus())
            status.active_version = active.number if active else None
            current = states.get(name)
            model = current.model if current else None
            if (
                active is not None
                and (model is None or model.version.version_id != active.version_id)
                and self._may_try(name, active)
            ):
                if catalog is None:
                    catalog = current_catalog()
                fresh = self._load(name, active, catalog)
                if fresh is not None:
                    states[name] = fresh
                    continue
            if model is not None:
                if current is not None and current.catalog_stamp != stamp:
                    if catalog is None:
                        catalog = current_catalog()
                    states[name] = model_state_build(model, catalog)
                continue
            fallback = self._fallback(name, current, stamp)
            if fallback is None:
                states.pop(name, None)
            else:
                states[name] = fallback
        for name in set(states) - set(actives):
            del states[name]
        self._states = self._forget_erased_users(states)

        def catalog_now() -> Catalog:
            nonlocal catalog
            if catalog is None:
                catalog = current_catalog()
            return catalog

        self._experiments.refresh(
            experiment_plans(names),
            self._states,
            catalog_now,
            stamp,
            forget=lambda key, state: self._forget_erased_users({key: state})[key],
        )
        # Kept for the next swap: a promotion under an unchanged catalog reads nothing.
        self._catalog = catalog or self._catalog
        now = time.time()
        for name in actives:
            state = states.get(name)
            version = state.model.version if state and state.model else None
            metrics.MODEL_VERSION.labels(name).set(version.number if version else 0)
            metrics.MODEL_AGE.labels(name).set(
                now - version.created_at.timestamp() if version else 0
            )

    def _forget_erased_users(self, states: dict[str, ServingState]) -> dict[str, ServingState]:
        """Each model state with the users erased after its data was read. One indexed
        query per refresh; the erasures are re-read only when a user was erased or the
        model changed."""
        stamp = user_erasures_stamp()
        result: dict[str, ServingState] = {}
        for name, state in states.items():
            if state.model is None:
                result[name] = state
                continue
            version = state.model.version
            key = (version.version_id, stamp)
            cached = self._forgotten.get(name)
            if cached is None or cached[0] != key:
                since = version.data_read_at if stamp is not None else None
                users = users_erased_since(since=since) if stamp is not None else frozenset()
                cached = self._forgotten[name] = (key, users)
            users = cached[1]
            result[name] = (
                state if state.forgotten_users is users else replace(state, forgotten_users=users)
            )
        return result

    def _may_try(self, name: str, active: ActiveVersion) -> bool:
        """False while ``active`` failed to load less than ``RETRY_FAILED_SECONDS`` ago."""
        failed = self._failed.get(name)
        return (
            failed is None
            or failed.version_id != active.version_id
            or time.monotonic() - failed.at >= RETRY_FAILED_SECONDS
        )

    def _load(self, name: str, active: ActiveVersion, catalog: Catalog) -> ServingState | None:
        """The state for a newly active version, or None (recorded) when it cannot load."""
        status = self._status[name]
        started = time.perf_counter()
        try:
            state = model_state_build(LoadedModel.load(active), catalog)
        except Exception as exc:
            self._failed[name] = _Failed(active.version_id, time.monotonic())
            status.failures += 1
            status.last_error = {
                "version": active.number,
                "code": exc.code if isinstance(exc, RecsiteError) else type(exc).__name__,
                "message": str(exc)[:500],
                "at": timezone.now().isoformat(),
            }
            metrics.MODEL_LOAD_FAILURES.labels(name).inc()
            metrics.MODEL_LAST_LOAD_FAILED.labels(name).set(1)
            logger.error(
                "serving: version %s of %r failed to load and is NOT served (%s); the "
                "previous state keeps serving",
                active.number,
                name,
                status.last_error["message"],
                exc_info=not isinstance(exc, ArtifactError),
            )
            return None
        self._failed.pop(name, None)
        status.last_error = None
        metrics.MODEL_SWAPS.labels(name).inc()
        metrics.MODEL_LAST_LOAD_FAILED.labels(name).set(0)
        logger.info(
            "serving: %r now serves version %s (loaded and verified in %.2f s)",
            name,
            active.number,
            time.perf_counter() - started,
        )
        return state

    def _fallback(
        self, name: str, current: ServingState | None, stamp: tuple[Any, int]
    ) -> ServingState | None:
        """Popularity from the database while no model is loaded, rebuilt when the
        catalog changes, or when events changed and ``fallback_rebuild_due``."""
        events = events_stamp()
        fresh = (
            current is not None
            and current.catalog_stamp == stamp
            and (
                events == self._fallback_events.get(name)
                or not fallback_rebuild_due(
                    age=time.monotonic() - self._fallback_built.get(name, 0.0),
                    build_seconds=self._fallback_cost.get(name, 0.0),
                )
            )
        )
        if fresh:
            return current
        started = time.monotonic()
        state = popularity_state_build(name, stamp)
        self._fallback_events[name] = events
        self._fallback_built[name] = time.monotonic()
        self._fallback_cost[name] = self._fallback_built[name] - started
        return state

    # -- health --

    def health(self) -> dict[str, Any]:
        """For ``/readyz``: ok while this process can answer requests for every recommender
        (a model, an older model or the popularity fallback); ``degraded`` when it does not
        serve some recommender's active version, each recommender's ``degraded_reason``
        saying why. A lost artifact folder is degraded, not unready: every host shares it,
        and a load balancer dropping every host would answer nothing at all."""
        error = None
        if not self._refreshed:
            try:
                self.refresh()
            except Exception as exc:  # the database check reports the cause
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        states = self._states
        recommenders = {
            name: status.as_dict(states.get(name)) for name, status in sorted(self._status.items())
        }
        ok = error is None and all(r["answering"] for r in recommenders.values())
        body: dict[str, Any] = {
            "ok": ok,
            "degraded": any(r["degraded"] for r in recommenders.values()),
            "pid": os.getpid(),
            "recommenders": recommenders,
        }
        if error:
            body["error"] = error
        return body

    # -- the watcher --

    def start(self) -> None:
        """Load now (errors are logged, not raised) and start the watcher thread, once per
        process; a forked child starts its own."""
        with self._lock:
            if self._watcher is not None and self._watcher_pid == os.getpid():
                return
            self._watcher_pid = os.getpid()
            self._stop.clear()
            self._watcher = threading.Thread(
                target=self._watch, name="recsite-serving", daemon=True
            )
        try:
            self.refresh()
        except Exception:
            logger.exception("serving: the first load failed; the watcher retries")
        finally:
            close_old_connections()
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None and self._watcher.is_alive():
            self._watcher.join(timeout=5)
        self._watcher = None
        self._watcher_pid = None

    def _watch(self) -> None:
        check = settings.RECSITE_SERVING_CHECK_SECONDS
        poll = settings.RECSITE_SERVING_POLL_SECONDS
        last_poll = time.monotonic()
        while not self._stop.wait(check):
            try:
                if self._signalled() or time.monotonic() - last_poll >= poll:
                    last_poll = time.monotonic()
                    self.refresh()
                self._tick_age()
            except Exception:
                logger.exception("serving: refresh failed; the current states keep serving")
            finally:
                close_old_connections()

    def _signalled(self) -> bool:
        """True when a promote / rollback bumped a recommender's key since the last look
        (or the last refresh). An unreachable cache is not a signal: the poll covers it."""
        tokens = self._read_tokens()
        if tokens is None:
            return False
        changed = any(self._tokens.get(name, token) != token for name, token in tokens.items())
        self._tokens = tokens
        return changed

    def _read_tokens(self) -> dict[str, Any] | None:
        keys = {active_version_key(pk): name for name, pk in self._recommender_ids.items()}
        try:
            values = cache.get_many(list(keys)) if keys else {}
        except Exception:
            return None
        return {name: values.get(key) for key, name in keys.items()}

    def _tick_age(self) -> None:
        now = time.time()
        for name, state in self._states.items():
            if state.model is not None:
                age = now - state.model.version.created_at.timestamp()
                metrics.MODEL_AGE.labels(name).set(age)

    def reset(self) -> None:
        """Forget everything (tests)."""
        self.stop()
        with self._lock:
            self._clear()


registry = ServingRegistry()
