"""A host's bounded cache of artifacts fetched from a remote store.

``<cache dir>/<manifest sha256>/`` holds one verified artifact: the key is the digest a
version row records (``ModelVersion.artifact_sha256``), so an entry can never be the
wrong artifact for a row. An entry is filled in a hidden ``.<sha>.tmp-*`` directory,
verified (every file's sha256, the manifest's against the key) and only then renamed
into place; the workers of a host share it (and, memory-mapped, its pages). Its
directory's mtime is touched at every use; beyond ``max_versions`` entries the least
recently used are removed (a worker that has one memory-mapped keeps reading it: the
pages stay until it unmaps them). Plain Python: the caller passes the directory in."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from recommender.artifact_store.uri import SHA256_RE
from recommender.artifacts import ArtifactError, LoadedArtifact, load_artifact

STAGING = ".staging"  # training's local copies before upload (``S3Store.staging_dir``)


class ArtifactCache:
    def __init__(self, root: Path, max_versions: int) -> None:
        self.root = Path(root)
        self.max_versions = max(1, max_versions)

    def entry(self, sha256: str) -> Path:
        if not SHA256_RE.match(sha256 or ""):
            raise ArtifactError("bad_manifest", f"{sha256!r} is not a sha256 digest")
        return self.root / sha256

    def load(self, sha256: str, fill: Callable[[Path], None], *, mmap: bool) -> LoadedArtifact:
        """The verified artifact ``sha256``: from the cache (verified again: a disk can
        rot), or else ``fill(directory)`` downloads it into a fresh hidden directory,
        which is verified and renamed into place."""
        final = self.entry(sha256)
        if (final / "manifest.json").is_file():
            loaded = load_artifact(final, verify=True, mmap=mmap, expected_sha256=sha256)
            _touch(final)
            self.evict(keep=sha256)
            return loaded
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha256}.tmp-", dir=self.root))
        try:
            fill(tmp)
            loaded = load_artifact(tmp, verify=True, mmap=mmap, expected_sha256=sha256)
            try:
                os.rename(tmp, final)
            except OSError:  # another worker of this host put it there first
                if not (final / "manifest.json").is_file():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                loaded = load_artifact(final, verify=True, mmap=mmap, expected_sha256=sha256)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _touch(final)
        self.evict(keep=sha256)
        return replace(loaded, path=final)

    def adopt(self, path: Path, sha256: str) -> None:
        """Move a directory known to hold artifact ``sha256`` (just written and verified
        by this host's training run) into the cache; dropped if already cached."""
        final = self.entry(sha256)
        try:
            os.rename(path, final)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
        else:
            _touch(final)
        self.evict(keep=sha256)

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if SHA256_RE.match(p.name) and p.is_dir()]

    def evict(self, *, keep: str) -> list[Path]:
        """Remove the least recently used entries beyond ``max_versions`` (never ``keep``)."""
        by_use = sorted(self.entries(), key=_mtime, reverse=True)
        doomed = [p for p in by_use[self.max_versions :] if p.name != keep]
        for path in doomed:
            # Renamed away first, so a loader never sees half an entry.
            hidden = self.root / f".{path.name}.deleting-{os.getpid()}-{time.monotonic_ns()}"
            try:
                os.rename(path, hidden)
            except OSError:
                continue
            shutil.rmtree(hidden, ignore_errors=True)
        return doomed

    def sweep(self, *, older_than: float, now: float) -> list[str]:
        """Hidden leftovers of killed downloaders, deleters and uploads (``.staging``)."""
        cutoff = now - older_than
        removed = []
        candidates = [p for p in self.root.glob(".*-*") if p.is_dir()] if self.root.is_dir() else []
        staging = self.root / STAGING
        if staging.is_dir():
            candidates += [
                p for folder in staging.iterdir() if folder.is_dir() for p in folder.iterdir()
            ]
        for path in candidates:
            if path.is_dir() and not path.is_symlink() and _mtime(path) < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except FileNotFoundError:
        pass
