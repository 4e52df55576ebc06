"""The artifact directory checked against the version rows (``manage.py check_artifacts``).

Three kinds of disagreement:

- a row without its artifact (``missing``): a version not marked deleted by retention
  whose directory is gone -- serving, promote and rollback cannot use it;
- a row whose artifact fails verification (``damaged``): a file's size or sha256 differs
  from the manifest, or the manifest's sha256 from the one recorded on the row;
- an artifact without a row (``orphan``): a directory under ``<root>/<recommender>/`` that
  no version points at, e.g. one written after the backup a database was restored from,
  or one whose deletion by retention failed (its row is marked deleted).

Directories that are neither artifacts nor partial (hidden) working directories are listed
as ``unknown`` and never touched; partial ones are left to the retention sweep.
``orphans_delete`` removes orphans only, and only those at least ``min_age`` seconds old
(a run writes its artifact before its version row commits), re-reading the rows first:
never an artifact a row points at."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import MANIFEST, ArtifactError, delete_artifact, load_artifact
from recommender.models import ModelVersion


@dataclass(frozen=True)
class RowProblem:
    recommender: str
    version: int
    uri: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.recommender} v{self.version} ({self.uri}): {self.code}: {self.message}"


@dataclass
class ArtifactReport:
    root: Path
    checked: int = 0
    missing: list[RowProblem] = field(default_factory=list)
    damaged: list[RowProblem] = field(default_factory=list)
    not_local: list[RowProblem] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    unknown: list[Path] = field(default_factory=list)
    partial: list[Path] = field(default_factory=list)

    @property
    def rows_ok(self) -> bool:
        """Every version row that claims an artifact has a verified one."""
        return not (self.missing or self.damaged)


def _referenced() -> tuple[set[Path], list[ModelVersion]]:
    """The directories version rows point at (not marked deleted), and those rows."""
    rows = list(
        ModelVersion.objects.filter(artifact_deleted_at__isnull=True)
        .select_related("recommender")
        .order_by("recommender__name", "number")
    )
    paths = set()
    for row in rows:
        try:
            paths.add(local_artifact_path(row.artifact_uri))
        except ValueError:
            continue
    return paths, rows


def _is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _directories(root: Path, report: ArtifactReport) -> list[Path]:
    """Every artifact directory under ``root`` (at ``<root>/<name>`` or, where training
    writes, ``<root>/<recommender>/<name>``); the rest goes to ``unknown`` / ``partial``."""
    found: list[Path] = []
    if not root.is_dir():
        return found
    for top in sorted(root.iterdir()):
        if not top.is_dir() or top.is_symlink():
            continue
        if _is_hidden(top):
            report.partial.append(top)
        elif (top / MANIFEST).is_file():
            found.append(top)
        else:
            for entry in sorted(top.iterdir()):
                if not entry.is_dir() or entry.is_symlink():
                    continue
                if _is_hidden(entry):
                    report.partial.append(entry)
                elif (entry / MANIFEST).is_file():
                    found.append(entry)
                else:
                    report.unknown.append(entry)
    return found


def artifacts_check(*, verify: bool = True) -> ArtifactReport:
    """Compare ``RECSITE_ARTIFACT_DIR`` with the version rows. With ``verify`` every file
    of every referenced artifact is read and checked against its sha256 (and the
    manifest's against the row); without, only presence is checked."""
    root = Path(settings.RECSITE_ARTIFACT_DIR).resolve()
    report = ArtifactReport(root=root)
    referenced, rows = _referenced()
    for row in rows:
        report.checked += 1
        name, number, uri = row.recommender.name, row.number, row.artifact_uri
        try:
            path = local_artifact_path(uri)
        except ValueError as exc:
            report.not_local.append(RowProblem(name, number, uri, "not_local", str(exc)))
            continue
        if not (path / MANIFEST).is_file():
            report.missing.append(
                RowProblem(name, number, uri, "missing_file", f"{path} has no artifact")
            )
            continue
        try:
            load_artifact(path, verify=verify, expected_sha256=row.artifact_sha256)
        except ArtifactError as exc:
            problems = report.missing if exc.code == "missing_file" else report.damaged
            problems.append(RowProblem(name, number, uri, exc.code, exc.message))
    report.orphans = [path for path in _directories(root, report) if path not in referenced]
    return report


def orphans_delete(
    *, report: ArtifactReport, min_age: float, now: float | None = None
) -> tuple[list[Path], list[Path]]:
    """Delete the report's orphans that are at least ``min_age`` seconds old at ``now``.
    The rows are read again first, so an artifact that a row points at by now is kept.
    Returns (deleted, kept because too young or referenced meanwhile)."""
    cutoff = (time.time() if now is None else now) - min_age
    referenced, _ = _referenced()
    deleted: list[Path] = []
    kept: list[Path] = []
    for path in report.orphans:
        try:
            young = (path / MANIFEST).stat().st_mtime > cutoff
        except FileNotFoundError:  # deleted meanwhile
            continue
        if path in referenced or young:
            kept.append(path)
        elif delete_artifact(path):
            deleted.append(path)
    return deleted, kept
