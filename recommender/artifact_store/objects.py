"""Plain files kept in the artifact store beside the artifacts: the batch exports, under
``exports/`` (``EXPORTS_PREFIX``), so that a file a worker wrote is downloadable from
any web host. The artifact side of the store (listing, sweeping, ``check_artifacts``)
skips that folder; these objects are written, read, listed and swept here.

Writing streams with bounded memory and is all-or-nothing: the file store writes a
hidden ``.<name>.partial-<hex>`` file beside the key and renames it when complete; the
S3 store buffers ``PART_SIZE`` bytes at a time into a multipart upload (a file smaller
than one part is one ``PutObject``) and completes it at the end, so a reader never sees
half a file. What a killed writer leaves (a partial file, an unfinished multipart
upload) is removed by ``sweep`` once older than any live writer."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from recommender.artifact_store.s3 import s3_not_found, s3_unavailable
from recommender.artifact_store.uri import S3Location, object_key_check

# The S3 part size: 5 MiB is S3's smallest part but the last; each writer holds one part.
PART_SIZE = 8 * 1024 * 1024
_PARTIAL = ".partial-"

__all__ = ["FileObjects", "S3Objects", "StoreObjects", "StoredObject"]


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store's root, e.g. ``exports/default/export-3-v2.jsonl``
    size: int
    mtime: float  # when it was written (Unix seconds)


class StoreObjects(Protocol):
    def writer(self, key: str) -> Any:
        """A context manager giving a binary file to write ``key`` to; the object
        appears when the block ends without an exception, never otherwise."""

    def open(self, key: str) -> tuple[BinaryIO, int]:
        """The object's bytes as a stream to read, and its size; ``FileNotFoundError``."""

    def url(self, key: str, *, filename: str, expires: int) -> str | None:
        """A time-limited URL a browser can download it from, or None (file store)."""

    def delete(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[StoredObject]: ...

    def sweep(self, prefix: str, *, older_than: float, now: float) -> list[str]:
        """Remove what killed writers left under ``prefix``, older than ``older_than``
        seconds at ``now``; what was removed."""


class FileObjects:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / object_key_check(key)

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}{_PARTIAL}{uuid.uuid4().hex}")
        try:
            with partial.open("wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def open(self, key: str) -> tuple[BinaryIO, int]:
        path = self._path(key)
        stream = path.open("rb")
        return stream, os.fstat(stream.fileno()).st_size

    def url(self, key: str, *, filename: str, expires: int) -> str | None:
        return None

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def _files(self, prefix: str) -> Iterator[Path]:
        top = self.root / object_key_check(prefix)
        if top.is_dir():
            yield from (p for p in sorted(top.rglob("*")) if p.is_file() and not p.is_symlink())

    def list(self, prefix: str) -> list[StoredObject]:
        found = []
        for path in self._files(prefix):
            if path.name.startswith("."):
                continue
            stat = path.stat()
            key = path.relative_to(self.root).as_posix()
            found.append(StoredObject(key=key, size=stat.st_size, mtime=stat.st_mtime))
        return found

    def sweep(self, prefix: str, *, older_than: float, now: float) -> list[str]:
        removed = []
        for path in self._files(prefix):
            if path.name.startswith(".") and _PARTIAL in path.name:
                if path.stat().st_mtime < now - older_than:
                    path.unlink(missing_ok=True)
                    removed.append(str(path))
        return removed


class _PartWriter(io.RawIOBase):
    """A write-only stream into a multipart upload, one part in memory at a time."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self.client, self.bucket, self.key, self.part_size = client, bucket, key, part_size
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            self._upload_part(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]
        return len(data)

    def _upload_part(self, body: bytes) -> None:
        if self.upload_id is None:
            self.upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)[
                "UploadId"
            ]
        number = len(self.parts) + 1
        answer = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def complete(self) -> None:
        if self.upload_id is None:  # smaller than one part
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer))
            return
        if self.buffer:
            self._upload_part(bytes(self.buffer))
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        if self.upload_id is not None:
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )
            except (BotoCoreError, ClientError):
                pass  # the sweep aborts it later


class S3Objects:
    """``client`` is called for the store's (lazily made) boto3 client."""

    def __init__(self, location: S3Location, client: Any, *, part_size: int = PART_SIZE) -> None:
        self.s3 = location
        self._client = client
        self.part_size = part_size

    def _key(self, key: str) -> str:
        return self.s3.root_key + object_key_check(key)

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        stream = _PartWriter(self._client(), self.s3.bucket, self._key(key), self.part_size)
        try:
            yield stream  # type: ignore[misc]
            stream.complete()
        except (BotoCoreError, ClientError) as exc:
            stream.abort()
            raise s3_unavailable(self.s3, exc) from exc
        except BaseException:
            stream.abort()
            raise

    def open(self, key: str) -> tuple[BinaryIO, int]:
        try:
            answer = self._client().get_object(Bucket=self.s3.bucket, Key=self._key(key))
        except ClientError as exc:
            if s3_not_found(exc):
                raise FileNotFoundError(key) from exc
            raise s3_unavailable(self.s3, exc) from exc
        except BotoCoreError as exc:
            raise s3_unavailable(self.s3, exc) from exc
        return answer["Body"], int(answer["ContentLength"])

    def url(self, key: str, *, filename: str, expires: int) -> str | None:
        """A presigned GET of an object that exists (``FileNotFoundError`` otherwise)."""
        try:
            self._client().head_object(Bucket=self.s3.bucket, Key=self._key(key))
        except ClientError as exc:
            if s3_not_found(exc):
                raise FileNotFoundError(key) from exc
            raise s3_unavailable(self.s3, exc) from exc
        except BotoCoreError as exc:
            raise s3_unavailable(self.s3, exc) from exc
        return self._client().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.s3.bucket,
                "Key": self._key(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires,
        )

    def delete(self, key: str) -> bool:
        try:
            self._client().head_object(Bucket=self.s3.bucket, Key=self._key(key))
        except ClientError as exc:
            if s3_not_found(exc):
                return False
            raise s3_unavailable(self.s3, exc) from exc
        try:
            self._client().delete_object(Bucket=self.s3.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise s3_unavailable(self.s3, exc) from exc
        return True

    def list(self, prefix: str) -> list[StoredObject]:
        found = []
        try:
            pages = (
                self._client()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.s3.bucket, Prefix=self._key(prefix) + "/")
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    found.append(
                        StoredObject(
                            key=obj["Key"][len(self.s3.root_key) :],
                            size=obj["Size"],
                            mtime=obj["LastModified"].timestamp(),
                        )
                    )
        except (BotoCoreError, ClientError) as exc:
            raise s3_unavailable(self.s3, exc) from exc
        return found

    def sweep(self, prefix: str, *, older_than: float, now: float) -> list[str]:
        """Abort the multipart uploads under ``prefix`` started before the cutoff (a
        bucket lifecycle rule ``AbortIncompleteMultipartUpload`` does the same)."""
        removed = []
        client = self._client()
        try:
            pages = client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.s3.bucket, Prefix=self._key(prefix) + "/"
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < now - older_than:
                        client.abort_multipart_upload(
                            Bucket=self.s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed.append(f"s3://{self.s3.bucket}/{upload['Key']} (upload)")
        except (BotoCoreError, ClientError) as exc:
            raise s3_unavailable(self.s3, exc) from exc
        return removed
