"""The S3 store (``s3://bucket/prefix``): any S3-compatible object store (AWS, MinIO,
Ceph) through django-storages' ``S3Storage``, which holds the boto3 connection (one per
thread) and reads the standard ``AWS_*`` variables.

An artifact is the objects ``<prefix>/<recommender>/<name>/<file>``; it exists for a
reader exactly when its ``manifest.json`` does. Publishing uploads every other file,
checks that each arrived with its size, and uploads the manifest **last**: a cut upload
leaves objects without a manifest, which no reader ever treats as an artifact and the
sweep removes once old. Deleting removes the manifest first for the same reason.
Hosts read through their :class:`ArtifactCache` (fetched by the manifest's sha256,
verified before use)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3Storage

from recommender.artifact_store.base import StoredArtifact, StoreListing
from recommender.artifact_store.cache import STAGING, ArtifactCache
from recommender.artifact_store.uri import (
    MANIFEST,
    S3Location,
    artifact_name_check,
    artifact_name_of_key,
    is_export_key,
    plain_file_name,
)
from recommender.artifacts import ArtifactError, ArtifactInfo, LoadedArtifact, load_artifact
from recommender.exceptions import ArtifactStoreUnavailable, ArtifactUploadFailed

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
HEALTH_CACHE_SECONDS = 5.0
_CHUNK = 1024 * 1024


def s3_unavailable(location: S3Location, exc: Exception) -> ArtifactStoreUnavailable:
    first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return ArtifactStoreUnavailable(
        f"The artifact store {location} did not answer as expected ({type(exc).__name__}: "
        f"{first}).",
        store=str(location),
        error=type(exc).__name__,
    )


def s3_not_found(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND


class S3Store:
    def __init__(
        self,
        location: S3Location,
        cache: ArtifactCache,
        *,
        endpoint_url: str | None,
        addressing_style: str,
        timeout: float,
    ) -> None:
        self.s3 = location
        self.location = str(location)
        self.cache = cache
        self.storage = S3Storage(
            bucket_name=location.bucket,
            location=location.prefix,
            endpoint_url=endpoint_url,
            client_config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": addressing_style},
            ),
        )
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._health: tuple[float, dict[str, Any]] | None = None
        self._health_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """One boto3 client for every thread of the process (clients are thread-safe;
        django-storages' resources are not, and one per thread would cost the serving
        watcher a client's construction at the first swap)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self.storage.connection.meta.client
        return self._client

    # -- writing --

    def staging_dir(self, recommender: str) -> Path:
        return self.cache.root / STAGING / recommender

    def publish(self, info: ArtifactInfo) -> str:
        """Verify the local artifact, upload it (manifest last), check what arrived, and
        move the local copy into this host's cache; its name. ``ArtifactUploadFailed``
        after removing what was uploaded (best effort: the sweep removes the rest)."""
        name = artifact_name_check(f"{info.path.parent.name}/{info.path.name}")
        local = load_artifact(info.path, verify=True, mmap=True, expected_sha256=info.sha256)
        files = {file: record["size"] for file, record in local.manifest["files"].items()}
        files[MANIFEST] = (info.path / MANIFEST).stat().st_size
        del local
        try:
            for file in sorted(files):
                if file != MANIFEST:
                    self._upload(info.path / file, self.s3.key(name, file))
            self._check_sizes(name, files, without=MANIFEST)
            self._upload(info.path / MANIFEST, self.s3.key(name, MANIFEST))
            self._check_sizes(name, files)
        except (BotoCoreError, Boto3Error, ClientError, OSError, ArtifactError) as exc:
            self._remove(name)
            raise ArtifactUploadFailed(
                f"Uploading artifact {name} to {self.location} failed ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}); nothing of it is "
                "visible in the store.",
                artifact=name,
                store=self.location,
                error=getattr(exc, "code", type(exc).__name__),
            ) from exc
        self.cache.adopt(info.path, info.sha256)
        return name

    def _upload(self, path: Path, key: str) -> None:
        self.client.upload_file(str(path), self.s3.bucket, key, Config=self.storage.transfer_config)

    def _objects(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every object under ``prefix`` by key (``Size``, ``LastModified``)."""
        found: dict[str, dict[str, Any]] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.s3.bucket, Prefix=prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                found[obj["Key"]] = obj
        return found

    def _check_sizes(self, name: str, files: dict[str, int], without: str = "") -> None:
        arrived = self._objects(self.s3.key(name))
        for file, size in files.items():
            if file == without:
                continue
            obj = arrived.get(self.s3.key(name, file))
            if obj is None or obj["Size"] != size:
                raise ArtifactError(
                    "size_mismatch",
                    f"{file}: {obj['Size'] if obj else 'no'} bytes in the store, {size} written",
                )

    def _remove(self, name: str) -> None:
        """Delete an artifact's objects, the manifest first; errors are swallowed (the
        store may be why we are here) and left to the sweep."""
        try:
            self.client.delete_object(Bucket=self.s3.bucket, Key=self.s3.key(name, MANIFEST))
            self._delete_keys(list(self._objects(self.s3.key(name))))
        except (BotoCoreError, ClientError):
            pass

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.s3.bucket, Delete={"Objects": chunk})

    # -- reading --

    def name_of(self, uri: str) -> str:
        return artifact_name_check(uri)

    def _manifest(self, name: str, sha256: str) -> tuple[dict[str, Any], bytes]:
        """The store's manifest of ``name``, which must be the row's (``sha256``), parsed
        and as stored."""
        try:
            body = self.client.get_object(Bucket=self.s3.bucket, Key=self.s3.key(name, MANIFEST))[
                "Body"
            ].read()
        except ClientError as exc:
            if s3_not_found(exc):
                raise ArtifactError(
                    "missing_file", f"{self.s3.key(name, MANIFEST)} is not in {self.location}"
                ) from exc
            raise s3_unavailable(self.s3, exc) from exc
        except BotoCoreError as exc:
            raise s3_unavailable(self.s3, exc) from exc
        if hashlib.sha256(body).hexdigest() != sha256:
            raise ArtifactError(
                "checksum_mismatch",
                f"the store's manifest of {name} is not the one recorded for the version",
            )
        try:
            manifest = json.loads(body)
            files = list(manifest["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError("bad_manifest", f"manifest.json of {name}: {exc}") from exc
        if not all(plain_file_name(file) for file in files):
            raise ArtifactError("path_escape", f"manifest.json of {name} names a non-plain file")
        return manifest, body

    def _download(self, name: str, sha256: str, into: Path) -> None:
        manifest, body = self._manifest(name, sha256)
        try:
            for file in manifest["files"]:
                response = self.client.get_object(
                    Bucket=self.s3.bucket, Key=self.s3.key(name, file)
                )
                with (into / file).open("wb") as out:
                    for chunk in response["Body"].iter_chunks(_CHUNK):
                        out.write(chunk)
        except ClientError as exc:
            if s3_not_found(exc):
                raise ArtifactError("missing_file", f"a file of {name} is missing") from exc
            raise s3_unavailable(self.s3, exc) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise s3_unavailable(self.s3, exc) from exc
        (into / MANIFEST).write_bytes(body)

    def load(self, uri: str, sha256: str, *, mmap: bool) -> LoadedArtifact:
        name = self.name_of(uri)
        return self.cache.load(sha256, lambda into: self._download(name, sha256, into), mmap=mmap)

    def check(self, uri: str, sha256: str, *, verify: bool) -> None:
        """The manifest in the store is the row's; with ``verify`` the whole artifact is
        fetched into a scratch directory (not the cache) and verified."""
        name = self.name_of(uri)
        if not verify:
            manifest, _ = self._manifest(name, sha256)
            files = {f: r.get("size") for f, r in manifest["files"].items()}
            self._check_sizes(name, files)
            return
        self.cache.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".check-{sha256[:16]}.tmp-", dir=self.cache.root))
        try:
            self._download(name, sha256, scratch)
            load_artifact(scratch, verify=True, expected_sha256=sha256)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # -- housekeeping --

    def delete(self, uri: str) -> bool:
        name = self.name_of(uri)
        try:
            keys = list(self._objects(self.s3.key(name)))
            if not keys:
                return False
            manifest = self.s3.key(name, MANIFEST)
            if manifest in keys:
                self.client.delete_object(Bucket=self.s3.bucket, Key=manifest)
            self._delete_keys([key for key in keys if key != manifest])
        except (BotoCoreError, ClientError) as exc:
            raise s3_unavailable(self.s3, exc) from exc
        return True

    def _groups(self) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
        """Objects under the root grouped by artifact name, and the keys of no artifact
        (the exports folder aside)."""
        try:
            objects = self._objects(self.s3.root_key)
        except (BotoCoreError, ClientError) as exc:
            raise s3_unavailable(self.s3, exc) from exc
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        strangers = []
        for key, obj in objects.items():
            if is_export_key(key[len(self.s3.root_key) :]):
                continue  # the batch exports (``objects``), not artifacts
            parsed = artifact_name_of_key(self.s3, key)
            if parsed is None:
                strangers.append(f"s3://{self.s3.bucket}/{key}")
            else:
                groups.setdefault(parsed[0], {})[parsed[1]] = obj
        return groups, strangers

    def listing(self) -> StoreListing:
        result = StoreListing()
        groups, result.unknown = self._groups()
        for name, files in sorted(groups.items()):
            where = f"s3://{self.s3.bucket}/{self.s3.key(name)}"
            if MANIFEST in files:
                mtime = files[MANIFEST]["LastModified"].timestamp()
                result.artifacts[name] = StoredArtifact(name=name, location=where, mtime=mtime)
            else:
                result.partial.append(where)
                result.incomplete.add(name)
        return result

    def sweep(self, *, older_than: float, now: float) -> list[str]:
        """Objects of artifacts without a manifest (a cut upload or deletion) whose newest
        object is older than ``older_than`` seconds at ``now``; and the cache's leftovers."""
        cutoff = now - older_than
        removed = self.cache.sweep(older_than=older_than, now=now)
        groups, _ = self._groups()
        for name, files in sorted(groups.items()):
            newest = max(obj["LastModified"].timestamp() for obj in files.values())
            if MANIFEST not in files and newest < cutoff:
                try:
                    self._delete_keys([obj["Key"] for obj in files.values()])
                except (BotoCoreError, ClientError) as exc:
                    raise s3_unavailable(self.s3, exc) from exc
                removed.append(f"s3://{self.s3.bucket}/{self.s3.key(name)}")
        return removed

    def health(self) -> dict[str, Any]:
        """Whether the bucket answers (``HeadBucket``), asked at most every
        ``HEALTH_CACHE_SECONDS`` per process so probes do not hammer the store."""
        with self._health_lock:
            if (
                self._health is not None
                and time.monotonic() - self._health[0] < HEALTH_CACHE_SECONDS
            ):
                return self._health[1]
            body: dict[str, Any] = {"ok": True, "kind": "s3", "location": self.location}
            try:
                self.client.head_bucket(Bucket=self.s3.bucket)
            except (BotoCoreError, ClientError) as exc:
                body.update(ok=False, error=s3_unavailable(self.s3, exc).message)
            self._health = (time.monotonic(), body)
            return body
