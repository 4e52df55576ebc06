"""Corrupted artifacts (issue #7, item 6): none is loaded or promoted, serving keeps the
old version and no request fails.

Every kind of damage in ``CORRUPTIONS`` is applied to a real artifact (written by
``write_artifact`` through ``tests/recommender/serving_helpers.py``) and checked at three
levels: the loader refuses it with its code, ``model_version_promote`` refuses a version
whose artifact is damaged, and a serving registry whose active version was damaged after
its promotion keeps serving the previous version (the API answers 200 with it) and
reports the code in ``/readyz``. Those run on SQLite too. The last test does the same
against a multi-worker gunicorn on PostgreSQL + Redis under continuous requests.

Damage that a careful attacker would hide is "re-sealed": the manifest is rewritten with
the damaged file's new sha256 and size, so the checksum does not catch it and the deeper
checks (header, dtype, shapes, paths) must. ``tests/recommender/test_artifacts.py`` has
the loader's unit tests; this file is about what the damage does to promote and serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from recommender.artifacts import ArtifactError, load_artifact
from recommender.exceptions import VersionNotPromotable
from recommender.models import ModelVersion, Scope, VersionStatus
from recommender.services.registry import model_version_promote, model_version_rollback
from recommender.serving.registry import registry
from tests.processes import Server
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db


# --- the damage ------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates the directory ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())


def _save_manifest(path: Path, manifest: dict[str, Any]) -> None:
    (path / "manifest.json").write_text(json.dumps(manifest))


def _reseal(path: Path, filename: str, **entry: Any) -> None:
    """Record ``filename``'s current sha256 and size in the manifest (and ``entry`` in its
    array's entry), so only the checks beyond the checksum can catch the damage."""
    manifest = _manifest(path)
    data = (path / filename).read_bytes()
    manifest["files"][filename] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    id_parts = [part for parts in manifest["id_maps"].values() for part in parts.values()]
    for array in (*manifest["arrays"].values(), *id_parts):
        if array["file"] == filename:
            array.update(entry)
    _save_manifest(path, manifest)


def _point_outside(path: Path, filename: str) -> None:
    """Make the manifest name ``filename`` (outside the folder) for the popularity array,
    with the checksum of an identical copy placed there."""
    target = path / filename if not os.path.isabs(filename) else Path(filename)
    target.write_bytes((path / "popularity.npy").read_bytes())
    manifest = _manifest(path)
    manifest["arrays"]["popularity"]["file"] = filename
    manifest["files"][filename] = manifest["files"].pop("popularity.npy")
    _save_manifest(path, manifest)
    (path / "popularity.npy").unlink()


def flipped_byte(path: Path, outside: Path) -> None:
    target = path / "item_embeddings.npy"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x10
    target.write_bytes(bytes(data))


def truncated(path: Path, outside: Path) -> None:
    target = path / "user_embeddings.npy"
    target.write_bytes(target.read_bytes()[:-16])


def truncated_resealed(path: Path, outside: Path) -> None:
    truncated(path, outside)
    _reseal(path, "user_embeddings.npy")


def truncated_manifest(path: Path, outside: Path) -> None:
    manifest = path / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[: manifest.stat().st_size // 2])


def wrong_shape_in_file(path: Path, outside: Path) -> None:
    """One item fewer in the file than the manifest says."""
    array = np.load(path / "item_biases.npy")
    np.save(path / "item_biases.npy", array[:-1])
    _reseal(path, "item_biases.npy")


def wrong_shapes_consistently(path: Path, outside: Path) -> None:
    """File and manifest agree, but the item embeddings lost a row the other arrays have."""
    array = np.load(path / "item_embeddings.npy")
    np.save(path / "item_embeddings.npy", array[:-1])
    _reseal(path, "item_embeddings.npy", shape=list(array[:-1].shape))


def object_npy(path: Path, outside: Path) -> None:
    """A real ``.npy`` with dtype=object: loading it needs ``allow_pickle`` and runs code."""
    array = np.empty(np.load(path / "item_biases.npy").shape, dtype=object)
    array[0] = _Payload(outside / "pickle-ran")
    np.save(path / "item_biases.npy", array, allow_pickle=True)
    _reseal(path, "item_biases.npy")


def object_npy_declared(path: Path, outside: Path) -> None:
    """The same, with the manifest honestly declaring the object dtype."""
    object_npy(path, outside)
    _reseal(path, "item_biases.npy", dtype="|O")


def raw_pickle(path: Path, outside: Path) -> None:
    """A plain pickle renamed ``.npy`` (what ``np.load(allow_pickle=True)`` would run)."""
    (path / "item_biases.npy").write_bytes(pickle.dumps(_Payload(outside / "pickle-ran")))
    _reseal(path, "item_biases.npy")


def dotdot_path(path: Path, outside: Path) -> None:
    _point_outside(path, "../popularity.npy")


def absolute_path(path: Path, outside: Path) -> None:
    _point_outside(path, str(outside / "popularity.npy"))


def symlinked_file(path: Path, outside: Path) -> None:
    """The file is a symlink to an identical copy outside the folder."""
    target = outside / "popularity.npy"
    (path / "popularity.npy").rename(target)
    (path / "popularity.npy").symlink_to(target)


def symlinked_manifest(path: Path, outside: Path) -> None:
    """The manifest itself is a symlink to an identical copy outside the folder."""
    target = outside / "manifest.json"
    (path / "manifest.json").rename(target)
    (path / "manifest.json").symlink_to(target)


@dataclass(frozen=True)
class Corruption:
    damage: Callable[[Path, Path], None]
    code: str  # the ArtifactError code the loader, promote and serving report


CORRUPTIONS: dict[str, Corruption] = {
    "flipped_byte": Corruption(flipped_byte, "checksum_mismatch"),
    "truncated": Corruption(truncated, "size_mismatch"),
    "truncated_resealed": Corruption(truncated_resealed, "corrupt_file"),
    "truncated_manifest": Corruption(truncated_manifest, "bad_manifest"),
    "wrong_shape_in_file": Corruption(wrong_shape_in_file, "shape_mismatch"),
    "wrong_shapes_consistently": Corruption(wrong_shapes_consistently, "shape_mismatch"),
    "object_npy": Corruption(object_npy, "pickle_refused"),
    "object_npy_declared": Corruption(object_npy_declared, "pickle_refused"),
    "raw_pickle_as_npy": Corruption(raw_pickle, "corrupt_file"),
    "dotdot_path": Corruption(dotdot_path, "path_escape"),
    "absolute_path": Corruption(absolute_path, "path_escape"),
    "symlinked_file": Corruption(symlinked_file, "path_escape"),
    "symlinked_manifest": Corruption(symlinked_manifest, "path_escape"),
}


def artifact_path(version: ModelVersion) -> Path:
    return Path(settings.RECSITE_ARTIFACT_DIR).resolve() / version.artifact_uri


def damage(version: ModelVersion, kind: str, outside: Path) -> None:
    outside.mkdir(parents=True, exist_ok=True)
    CORRUPTIONS[kind].damage(artifact_path(version), outside)


def promote_then_damage(version: ModelVersion, kind: str, outside: Path) -> None:
    """The artifact is damaged after promote verified it but before the promotion
    commits (bit rot, a bad copy to another host): serving is the last line."""
    with transaction.atomic():
        model_version_promote(version=version, reason=f"then damaged: {kind}")
        damage(version, kind, outside)


# --- loader, promote, in-process serving (SQLite and PostgreSQL) -----------------------


@pytest.fixture
def outside(settings, tmp_path) -> Path:
    """Where damage points to: next to the artifact directory, never inside it."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    return tmp_path / "outside"


@pytest.fixture
def v1(outside) -> ModelVersion:
    spec = default_spec(seed=1)
    create_catalog(spec)
    return create_version(spec)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_the_loader_refuses_the_damage_without_running_a_pickle(v1, outside, kind):
    candidate = create_version(default_spec(seed=2), promote=False)
    damage(candidate, kind, outside)
    with pytest.raises(ArtifactError) as exc:
        load_artifact(artifact_path(candidate), verify=True)
    assert exc.value.code == CORRUPTIONS[kind].code, exc.value
    assert not (outside / "pickle-ran").exists()


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_promote_refuses_a_damaged_artifact_and_the_active_version_stays(v1, outside, kind):
    candidate = create_version(default_spec(seed=2), promote=False)
    damage(candidate, kind, outside)
    with pytest.raises(VersionNotPromotable) as exc:
        model_version_promote(version=candidate, reason="damaged")
    assert exc.value.detail["why"] == "artifact_invalid"
    assert exc.value.detail["artifact_error"] == CORRUPTIONS[kind].code
    candidate.refresh_from_db()
    v1.refresh_from_db()
    assert (v1.status, candidate.status) == (VersionStatus.ACTIVE, VersionStatus.CANDIDATE)
    assert not (outside / "pickle-ran").exists()


def test_rollback_refuses_a_target_whose_artifact_was_damaged_since(v1, outside):
    v2 = create_version(default_spec(seed=2))
    damage(v1, "flipped_byte", outside)
    with pytest.raises(VersionNotPromotable) as exc:
        model_version_rollback(recommender=v1.recommender, reason="back")
    assert exc.value.detail["artifact_error"] == "checksum_mismatch"
    v2.refresh_from_db()
    assert v2.status == VersionStatus.ACTIVE


@pytest.mark.integration
def test_promote_and_rollback_verify_before_taking_the_recommenders_lock(postgres, v1, outside):
    """Hashing a multi-GB artifact must not hold the recommender's row lock: a damaged
    artifact is refused before any ``SELECT ... FOR UPDATE`` is sent."""
    candidate = create_version(default_spec(seed=2), promote=False)
    damage(candidate, "flipped_byte", outside)
    with CaptureQueriesContext(connection) as promote_queries:
        with pytest.raises(VersionNotPromotable):
            model_version_promote(version=candidate, reason="damaged")
    v2 = create_version(default_spec(seed=3))  # v1 is now the rollback target
    damage(v1, "flipped_byte", outside)
    with CaptureQueriesContext(connection) as rollback_queries:
        with pytest.raises(VersionNotPromotable):
            model_version_rollback(recommender=v2.recommender, reason="damaged target")
    assert rollback_queries.captured_queries  # it read the target: the capture works
    for queries in (promote_queries, rollback_queries):
        assert not [q for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_serving_keeps_the_old_version_when_the_active_one_is_damaged(
    v1, outside, kind, make_api_client
):
    client = make_api_client(Scope.RECOMMENDATIONS_READ)
    registry.refresh()
    assert registry.state("default").version_number == 1
    candidate = create_version(default_spec(seed=2), promote=False)
    promote_then_damage(candidate, kind, outside)

    registry.refresh()
    statuses = Counter()
    for user in ("user-0", "user-3", "user-5", "nobody"):
        response = client.get(f"/api/v1/recommendations/{user}")
        statuses[response.status_code] += 1
        assert response.json()["model_version"] == 1
    assert statuses == {200: 4}
    ready = client.get("/readyz").json()["checks"]["serving"]["recommenders"]["default"]
    assert (ready["active_version"], ready["loaded_version"]) == (2, 1)
    assert ready["last_load_error"]["code"] == CORRUPTIONS[kind].code
    assert not (outside / "pickle-ran").exists()


# --- a multi-worker gunicorn under continuous requests (PostgreSQL + Redis) ------------

WORKERS = 3


class Load:
    """Recommendation requests sent back to back by ``clients`` threads until ``stop``:
    their statuses, the versions that answered and the workers (pids) that did."""

    USERS = ("user-0", "user-3", "user-5", "nobody")

    def __init__(self, server: Server, key: str, clients: int = 4) -> None:
        self.server, self.key = server, key
        self.statuses: Counter[Any] = Counter()
        self.versions: Counter[Any] = Counter()
        self.pids: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=clients)
        self._futures = [self._pool.submit(self._run, n) for n in range(clients)]

    def _run(self, n: int) -> None:
        while not self._stop.is_set():
            n += 1
            try:
                response = self.server.ask(self.key, user=self.USERS[n % len(self.USERS)])
                status, version = response.status_code, response.json().get("model_version")
                pid = response.headers.get("X-Recsite-Worker", "?")
            except (requests.RequestException, ValueError) as exc:
                status, version, pid = type(exc).__name__, None, "?"
            with self._lock:
                self.statuses[status] += 1
                self.versions[version] += 1
                self.pids.add(pid)

    def stop(self) -> None:
        self._stop.set()
        for future in self._futures:
            future.result()
        self._pool.shutdown()


def load_failures(server: Server) -> float:
    """recsite_model_load_failures_total for ``default``, summed over the workers."""
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith('recsite_model_load_failures_total{recommender="default"}'):
            return float(line.split()[-1])
    return 0.0


def readyz_errors(server: Server, pids: set[str], within: float) -> dict[str, dict[str, Any]]:
    """Every worker's ``/readyz`` serving report for ``default`` (asked on new
    connections until each worker has answered)."""
    reports: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + within
    while set(reports) < pids and time.monotonic() < deadline:
        response = requests.get(f"{server.url}/readyz", headers={"Connection": "close"}, timeout=5)
        body = response.json()["checks"]["serving"]
        report = body["recommenders"]["default"]
        reports[str(body["pid"])] = report | {"status": response.status_code}
    return reports


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_workers_keep_serving_through_every_kind_of_damage(
    start_server, make_api_client, tmp_path
):
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    candidates = {
        kind: create_version(default_spec(seed=n + 2), promote=False)
        for n, kind in enumerate(CORRUPTIONS)
    }
    client = make_api_client(Scope.RECOMMENDATIONS_READ)
    key = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Api-Key ")
    server = start_server(GUNICORN_WORKERS=str(WORKERS), RECSITE_SERVING_POLL_SECONDS="30")
    server.wait_ready()
    pids = server.worker_pids(WORKERS)
    outside = tmp_path / "outside"

    load = Load(server, key)
    started = time.monotonic()
    codes: dict[str, set[str]] = {}
    try:
        for n, (kind, candidate) in enumerate(candidates.items(), start=1):
            promote_then_damage(candidate, kind, outside)
            deadline = time.monotonic() + 10
            while load_failures(server) < n * WORKERS:  # every worker tried it and refused
                assert time.monotonic() < deadline, f"{kind}: not refused:\n{server.output()}"
                time.sleep(0.1)
            reports = readyz_errors(server, pids, within=10)
            assert set(reports) == pids, f"{kind}: only {sorted(reports)} answered /readyz"
            for pid, report in reports.items():
                assert report["loaded_version"] == 1, (kind, pid, report)
                assert report["active_version"] == candidate.number, (kind, pid, report)
                assert report["status"] == 200, (kind, pid, report)
            codes[kind] = {r["last_load_error"]["code"] for r in reports.values()}
    finally:
        load.stop()
    seconds = time.monotonic() - started
    total = sum(load.statuses.values())
    print(
        f"{len(CORRUPTIONS)} damaged versions attempted in {seconds:.1f} s; {total} requests: "
        f"statuses {dict(load.statuses)}, versions {dict(load.versions)}, workers {len(load.pids)}"
    )
    assert codes == {kind: {c.code} for kind, c in CORRUPTIONS.items()}
    assert load.statuses == {200: total}
    assert load.versions == {1: total}
    assert load.pids >= pids
    assert not (outside / "pickle-ran").exists()
