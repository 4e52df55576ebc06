"""Where artifacts live: the one module that maps a version row's ``artifact_uri`` to a
directory and back, and deletes by URI. ``recommender/artifacts.py`` owns the format
(writing, loading, verifying, sweeping a directory tree) and knows no settings; this
module binds it to ``RECSITE_ARTIFACT_DIR``. Serving, the registry, retention, the
consistency check and training all ask here rather than joining paths themselves."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from django.conf import settings

from recommender.artifacts import delete_artifact


def artifact_root() -> Path:
    """The directory every artifact lives under (``RECSITE_ARTIFACT_DIR``), resolved."""
    return Path(settings.RECSITE_ARTIFACT_DIR).resolve()


def artifact_uri(path: Path) -> str:
    """What a version row stores for an artifact directory: its path relative to the
    root, so the root can move (a restore onto another disk) without rewriting rows."""
    return str(Path(path).resolve().relative_to(artifact_root()))


def local_artifact_path(uri: str) -> Path:
    """The directory of a local artifact (``file://`` URI, absolute path, or a path
    relative to ``RECSITE_ARTIFACT_DIR``), refusing anything that is not strictly inside
    ``RECSITE_ARTIFACT_DIR``."""
    root = artifact_root()
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        raw = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a drive letter, not a scheme
        raise ValueError(f"{uri!r} is not a local artifact")
    else:
        raw = Path(uri)
    path = (raw if raw.is_absolute() else root / raw).resolve()
    if path == root or not path.is_relative_to(root):
        raise ValueError(f"{uri!r} resolves to {path}, outside the artifact directory {root}")
    return path


def artifact_dir_delete(uri: str) -> None:
    """The default artifact deleter: remove a local artifact directory (guarded by
    ``local_artifact_path``; renamed away first, so a reader never sees half of it); a
    missing directory is already deleted."""
    delete_artifact(local_artifact_path(uri))
