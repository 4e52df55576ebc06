"""What every kind of store answers (``local.FileStore``, ``s3.S3Store``): the shapes
the rest of the package and its callers rely on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recommender.artifacts import ArtifactInfo, LoadedArtifact


@dataclass(frozen=True)
class StoredArtifact:
    """One complete artifact found in the store: its name (what rows store), where it is
    in words (a directory or an ``s3://`` URL) and when its manifest was written."""

    name: str
    location: str
    mtime: float


@dataclass
class StoreListing:
    """Everything in the store: complete artifacts by name, partial ones (a writer or a
    deleter killed mid-way; no manifest) and entries that are not artifacts at all;
    ``incomplete``: the names of the entries, not artifacts, sitting where one would be
    (a version whose artifact lost its manifest)."""

    artifacts: dict[str, StoredArtifact] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    incomplete: set[str] = field(default_factory=set)


class ArtifactStore(Protocol):
    location: str

    def staging_dir(self, recommender: str) -> Path:
        """Where a training run writes an artifact of ``recommender`` before publishing."""

    def publish(self, info: ArtifactInfo) -> str:
        """Make the written artifact ``info`` available to every host; its name."""

    def name_of(self, uri: str) -> str:
        """The canonical name of a row's URI; ``ValueError`` when not in this store."""

    def load(self, uri: str, sha256: str, *, mmap: bool) -> LoadedArtifact:
        """The verified artifact (every checksum, the manifest's against ``sha256``)."""

    def check(self, uri: str, sha256: str, *, verify: bool) -> None:
        """Raise ``ArtifactError`` / ``ArtifactStoreUnavailable`` unless the artifact is
        in the store, whole (``verify``: every file hashed) and the one of the row."""

    def delete(self, uri: str) -> bool:
        """Remove an artifact (its manifest first); False when it was not there."""

    def listing(self) -> StoreListing: ...

    def sweep(self, *, older_than: float, now: float) -> list[str]:
        """Remove partial artifacts older than ``older_than`` seconds at ``now``."""

    def health(self) -> dict[str, Any]: ...
