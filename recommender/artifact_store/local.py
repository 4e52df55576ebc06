"""The file store: artifacts are directories under one root (``file:///path``, the
default ``$RECSITE_DATA_DIR/artifacts``). Training writes straight into the root, so
publishing is a no-op, and serving memory-maps the files in place (no copy). With more
than one host the root must be a shared volume; otherwise use the S3 store."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from recommender.artifact_store.base import StoredArtifact, StoreListing
from recommender.artifact_store.uri import EXPORTS_PREFIX, MANIFEST
from recommender.artifacts import (
    ArtifactError,
    ArtifactInfo,
    LoadedArtifact,
    delete_artifact,
    load_artifact,
    partial_artifacts_sweep,
)


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)

    def staging_dir(self, recommender: str) -> Path:
        return self.root / recommender

    def publish(self, info: ArtifactInfo) -> str:
        return self.name_of(str(info.path))

    def path(self, uri: str) -> Path:
        """The directory of ``uri`` (a name relative to the root, an absolute path or a
        ``file://`` URI), refusing anything not strictly inside the root."""
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            raw = Path(unquote(parsed.path))
        elif parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a drive letter
            raise ValueError(f"{uri!r} is not an artifact of the file store {self.root}")
        else:
            raw = Path(uri)
        path = (raw if raw.is_absolute() else self.root / raw).resolve()
        if path == self.root or not path.is_relative_to(self.root):
            raise ValueError(f"{uri!r} resolves to {path}, outside the artifact store {self.root}")
        return path

    def name_of(self, uri: str) -> str:
        return str(self.path(uri).relative_to(self.root))

    def load(self, uri: str, sha256: str, *, mmap: bool) -> LoadedArtifact:
        return load_artifact(self.path(uri), verify=True, mmap=mmap, expected_sha256=sha256)

    def check(self, uri: str, sha256: str, *, verify: bool) -> None:
        path = self.path(uri)
        if not (path / MANIFEST).is_file():
            raise ArtifactError("missing_file", f"{path} has no artifact")
        load_artifact(path, verify=verify, expected_sha256=sha256)

    def delete(self, uri: str) -> bool:
        return delete_artifact(self.path(uri))

    def listing(self) -> StoreListing:
        """Artifact directories at ``<root>/<name>`` or, where training writes,
        ``<root>/<recommender>/<name>``; hidden ones are partial, the rest unknown. The
        exports folder (``EXPORTS_PREFIX``) is not looked at."""
        result = StoreListing()
        if not self.root.is_dir():
            return result
        for top in sorted(self.root.iterdir()):
            if not top.is_dir() or top.is_symlink() or top.name == EXPORTS_PREFIX:
                continue  # the exports folder holds batch exports (``objects``)
            if top.name.startswith("."):
                result.partial.append(str(top))
            elif (top / MANIFEST).is_file():
                self._add(result, top)
            else:
                for entry in sorted(top.iterdir()):
                    if not entry.is_dir() or entry.is_symlink():
                        continue
                    if entry.name.startswith("."):
                        result.partial.append(str(entry))
                    elif (entry / MANIFEST).is_file():
                        self._add(result, entry)
                    else:
                        result.unknown.append(str(entry))
                        result.incomplete.add(str(entry.relative_to(self.root)))
        return result

    def _add(self, result: StoreListing, path: Path) -> None:
        try:
            mtime = (path / MANIFEST).stat().st_mtime
        except FileNotFoundError:  # deleted meanwhile
            return
        name = str(path.relative_to(self.root))
        result.artifacts[name] = StoredArtifact(name=name, location=str(path), mtime=mtime)

    def sweep(self, *, older_than: float, now: float) -> list[str]:
        return [str(p) for p in partial_artifacts_sweep(self.root, older_than, now=now)]

    def health(self) -> dict[str, Any]:
        ok = self.root.is_dir() or not self.root.exists()  # created by the first writer
        body: dict[str, Any] = {"ok": ok, "kind": "file", "location": self.location}
        if not ok:
            body["error"] = f"{self.root} exists and is not a directory"
        return body
