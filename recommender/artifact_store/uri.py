"""Where the store is and what an artifact is called in it (plain Python, no Django).

``RECSITE_ARTIFACT_STORE`` is ``file:///path`` (a directory, shared or local) or
``s3://bucket[/prefix]`` (any S3-compatible store). A version row's ``artifact_uri`` is
the artifact's *name* relative to the store's root, ``<recommender>/<artifact name>``,
the same for both kinds: moving artifacts between a directory and a bucket (``aws s3
sync``) needs no row rewritten. Rows written before the store existed may hold an
absolute path or a ``file://`` URI inside the directory; the file store still reads
them (``recommender.artifact_store.local``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

MANIFEST = "manifest.json"
# The folder under the store's root holding the batch exports (``objects``), never an
# artifact: the artifact listing and sweep skip it, and no recommender may be named so.
EXPORTS_PREFIX = "exports"

# One path component of a name: what recommender names and ``artifact_name_new`` produce.
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class StoreConfigError(ValueError):
    """``RECSITE_ARTIFACT_STORE`` is not a store this project can use."""


@dataclass(frozen=True)
class FileLocation:
    path: Path

    def __str__(self) -> str:
        return f"file://{self.path}"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "a/b", without slashes at either end

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, name: str, file: str = "") -> str:
        """The object key of ``file`` of artifact ``name`` (or its folder, ending in
        ``/``, when ``file`` is empty)."""
        folder = f"{self.prefix}/{name}/" if self.prefix else f"{name}/"
        return folder + file

    @property
    def root_key(self) -> str:
        """The key prefix under which every artifact lives."""
        return f"{self.prefix}/" if self.prefix else ""


def store_location_parse(raw: str) -> FileLocation | S3Location:
    """``file:///abs/path`` or ``s3://bucket[/prefix]``; anything else is refused."""
    parsed = urlparse(raw)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreConfigError(f"{raw!r}: a file:// store names no host (file:///path)")
        path = Path(unquote(parsed.path))
        if not path.is_absolute():
            raise StoreConfigError(f"{raw!r}: a file:// store needs an absolute path")
        return FileLocation(path)
    if parsed.scheme == "s3":
        if not _BUCKET_RE.match(parsed.netloc or ""):
            raise StoreConfigError(f"{raw!r}: {parsed.netloc!r} is not an S3 bucket name")
        if parsed.query or parsed.fragment or parsed.params:
            raise StoreConfigError(f"{raw!r}: an s3:// store takes no query or fragment")
        prefix = parsed.path.strip("/")
        if prefix and not all(_COMPONENT_RE.match(part) for part in prefix.split("/")):
            raise StoreConfigError(f"{raw!r}: the prefix {prefix!r} must be plain path names")
        return S3Location(bucket=parsed.netloc, prefix=prefix)
    raise StoreConfigError(
        f"{raw!r}: RECSITE_ARTIFACT_STORE must be file:///path or s3://bucket/prefix"
    )


def artifact_name_check(uri: str) -> str:
    """``uri`` as a store-relative name (``<recommender>/<name>`` or ``<name>``); raise
    ``ValueError`` for anything else (absolute, a scheme, ``..``, empty components)."""
    parts = uri.split("/")
    if not 1 <= len(parts) <= 2 or not all(_COMPONENT_RE.match(part) for part in parts):
        raise ValueError(f"{uri!r} is not an artifact name of this store")
    return uri


def artifact_name_of_key(location: S3Location, key: str) -> tuple[str, str] | None:
    """(artifact name, file name) of an object key under the store's root; None for a
    key that is no artifact's file (too deep, too shallow, odd characters)."""
    relative = key[len(location.root_key) :] if key.startswith(location.root_key) else None
    if relative is None:
        return None
    folder, _, file = relative.rpartition("/")
    try:
        artifact_name_check(folder)
    except ValueError:
        return None
    return (folder, file) if file else None


def object_key_check(key: str) -> str:
    """``key`` as the name of a plain object under the store's root (``a/b/c.jsonl``);
    ``ValueError`` for anything else (absolute, ``..``, hidden or empty components)."""
    parts = key.split("/")
    if not parts or not all(_COMPONENT_RE.match(part) for part in parts):
        raise ValueError(f"{key!r} is not an object name of this store")
    return key


def is_export_key(relative: str) -> bool:
    """A key (relative to the store's root) inside the exports folder."""
    return relative.split("/", 1)[0] == EXPORTS_PREFIX


def plain_file_name(name: object) -> bool:
    """A manifest's file name is safe to use as a local file name (no path, not hidden)."""
    return isinstance(name, str) and bool(_COMPONENT_RE.match(name))
