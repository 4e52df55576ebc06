"""Where artifacts live, and the one way in for everyone else: training stages, writes
and publishes here; serving, the registry, retention and ``check_artifacts`` load,
check, delete, list and sweep here. ``recommender/artifacts.py`` owns the on-disk
format (and knows no settings); this package binds it to ``RECSITE_ARTIFACT_STORE``:

- ``uri``: the store's location and artifact names (plain Python);
- ``local``: the file store (a directory; read in place, no copy);
- ``s3``: the S3 store (django-storages / boto3; manifest uploaded last);
- ``cache``: a host's bounded cache of fetched artifacts, keyed by manifest sha256;
- ``objects``: plain files beside the artifacts (the batch exports, under ``exports/``).

A version row's ``artifact_uri`` is the artifact's name relative to the store
(``<recommender>/<name>``); its ``artifact_sha256`` the manifest's digest, which every
load checks."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from recommender.artifact_store.base import ArtifactStore, StoredArtifact, StoreListing
from recommender.artifact_store.cache import ArtifactCache
from recommender.artifact_store.local import FileStore
from recommender.artifact_store.objects import FileObjects, S3Objects, StoredObject, StoreObjects
from recommender.artifact_store.s3 import S3Store
from recommender.artifact_store.uri import EXPORTS_PREFIX, S3Location, store_location_parse
from recommender.artifacts import ArtifactInfo, LoadedArtifact

__all__ = [
    "EXPORTS_PREFIX",
    "StoreObjects",
    "StoredObject",
    "ArtifactStore",
    "StoreListing",
    "StoredArtifact",
    "artifact_delete",
    "artifact_discard",
    "artifact_load",
    "artifact_name",
    "artifact_publish",
    "artifact_staging_dir",
    "artifact_store",
    "artifact_store_check",
    "artifact_store_health",
    "artifacts_list",
    "artifacts_sweep",
    "local_artifact_path",
    "store_objects",
]

_lock = threading.Lock()
_stores: dict[tuple[Any, ...], ArtifactStore] = {}


def _config() -> tuple[Any, ...]:
    return (
        settings.RECSITE_ARTIFACT_STORE,
        str(settings.RECSITE_ARTIFACT_DIR),
        str(settings.RECSITE_ARTIFACT_CACHE_DIR),
        settings.RECSITE_ARTIFACT_CACHE_MAX_VERSIONS,
        settings.AWS_S3_ENDPOINT_URL,
        settings.AWS_S3_ADDRESSING_STYLE,
        settings.RECSITE_ARTIFACT_STORE_TIMEOUT_SECONDS,
    )


def artifact_store() -> ArtifactStore:
    """The configured store (one object per configuration and process: the S3 store
    keeps its connections)."""
    key = _config()
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = _build(key)
        return store


def _build(key: tuple[Any, ...]) -> ArtifactStore:
    raw, directory, cache_dir, max_versions, endpoint, addressing, timeout = key
    location = store_location_parse(raw) if raw else None
    if isinstance(location, S3Location):
        return S3Store(
            location,
            ArtifactCache(Path(cache_dir), max_versions),
            endpoint_url=endpoint,
            addressing_style=addressing,
            timeout=timeout,
        )
    # A file:// store's path is RECSITE_ARTIFACT_DIR (settings derive one from the other).
    return FileStore(Path(directory))


def artifact_staging_dir(recommender: str) -> Path:
    """Where a training run writes its artifact (``write_artifact``'s root) before
    ``artifact_publish``: the store's own directory for the file store, a local
    staging directory for the S3 store."""
    return artifact_store().staging_dir(recommender)


def artifact_publish(info: ArtifactInfo) -> str:
    """Make a written artifact available to every host and return the name its version
    row records. Raises ``ArtifactUploadFailed`` (nothing of it visible in the store)."""
    return artifact_store().publish(info)


def artifact_discard(*, info: ArtifactInfo, uri: str | None) -> None:
    """Remove what a failed run left: its published artifact (``uri``) and its local
    copy, wherever either is."""
    store = artifact_store()
    if uri is not None:
        store.delete(uri)
    if info.path.exists():
        FileStore(info.path.parent).delete(info.path.name)


def artifact_name(uri: str) -> str:
    """The canonical name of a row's ``artifact_uri`` in the configured store;
    ``ValueError`` when the store cannot hold it (a path outside the directory)."""
    return artifact_store().name_of(uri)


def artifact_load(*, uri: str, sha256: str, mmap: bool = True) -> LoadedArtifact:
    """A version's artifact, verified (every file's sha256, the manifest's against the
    row's ``sha256``), as a local directory memory-mapped (``mmap``): the file store's
    own directory, or this host's cache entry, downloaded first when absent (the caller
    runs off the request path). ``ArtifactError`` when it is missing or damaged,
    ``ArtifactStoreUnavailable`` when the store does not answer."""
    return artifact_store().load(uri, sha256, mmap=mmap)


def artifact_store_check(*, uri: str, sha256: str, verify: bool = True) -> None:
    """Raise unless the store holds the artifact of the row, whole (``verify``: every
    file read and hashed; otherwise presence and sizes). For ``check_artifacts``; it
    leaves the host's cache alone."""
    artifact_store().check(uri, sha256, verify=verify)


def artifact_delete(uri: str) -> bool:
    """Delete an artifact from the store (readers stop seeing it first); False when it
    was already gone."""
    return artifact_store().delete(uri)


def artifacts_list() -> StoreListing:
    """Every artifact in the store, and the partial and unknown entries."""
    return artifact_store().listing()


def artifacts_sweep(*, older_than: float, now: float) -> list[str]:
    """Remove partial artifacts (and, for S3, the cache's leftovers) older than
    ``older_than`` seconds at ``now``; what was removed."""
    return artifact_store().sweep(older_than=older_than, now=now)


def artifact_store_health() -> dict[str, Any]:
    """For ``/readyz``: ``ok``, the kind and location of the store, and the error."""
    return artifact_store().health()


def local_artifact_path(uri: str) -> Path:
    """The directory of a file-store artifact (tests, benchmarks, backups);
    ``ValueError`` with the S3 store or outside the directory."""
    store = artifact_store()
    if not isinstance(store, FileStore):
        raise ValueError(f"{uri!r} is in {store.location}, not in a directory")
    return store.path(uri)


def store_objects() -> StoreObjects:
    """The configured store's plain objects (``objects``): exports are written, read,
    listed and swept through it, on a directory and a bucket alike."""
    store = artifact_store()
    if isinstance(store, S3Store):
        return S3Objects(store.s3, lambda: store.client)
    return FileObjects(store.root)
