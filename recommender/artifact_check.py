"""The artifact store checked against the version rows (``manage.py check_artifacts``),
for a directory and an S3 bucket alike.

Three kinds of disagreement:

- a row without its artifact (``missing``): a version not marked deleted by retention
  whose artifact is gone -- serving, promote and rollback cannot use it;
- a row whose artifact fails verification (``damaged``): a file's size or sha256 differs
  from the manifest, or the manifest's sha256 from the one recorded on the row;
- an artifact without a row (``orphan``): an artifact in the store that no version
  points at, e.g. one written after the backup a database was restored from, or one
  whose deletion by retention failed (its row is marked deleted).

Entries that are neither artifacts nor partial ones (hidden working directories, objects
without a manifest) are listed as ``unknown`` and never touched; partial ones are left
to the retention sweep. ``orphans_delete`` removes orphans only, and only those at least
``min_age`` seconds old (a run writes its artifact before its version row commits),
re-reading the rows first: never an artifact a row points at."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from recommender.artifact_store import (
    StoredArtifact,
    artifact_delete,
    artifact_name,
    artifact_store,
    artifact_store_check,
    artifacts_list,
)
from recommender.artifacts import ArtifactError
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
    location: str  # the store, in words
    checked: int = 0
    missing: list[RowProblem] = field(default_factory=list)
    damaged: list[RowProblem] = field(default_factory=list)
    not_local: list[RowProblem] = field(default_factory=list)
    orphans: list[StoredArtifact] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)

    @property
    def rows_ok(self) -> bool:
        """Every version row that claims an artifact has a verified one."""
        return not (self.missing or self.damaged)


def _referenced() -> tuple[set[str], list[ModelVersion]]:
    """The artifact names version rows point at (not marked deleted), and those rows."""
    rows = list(
        ModelVersion.objects.filter(artifact_deleted_at__isnull=True)
        .select_related("recommender")
        .order_by("recommender__name", "number")
    )
    names = set()
    for row in rows:
        try:
            names.add(artifact_name(row.artifact_uri))
        except ValueError:
            continue
    return names, rows


def artifacts_check(*, verify: bool = True) -> ArtifactReport:
    """Compare the artifact store with the version rows. With ``verify`` every file of
    every referenced artifact is read and checked against its sha256 (and the manifest's
    against the row; from an S3 store each is downloaded to a scratch directory);
    without, presence (and, in S3, each object's size) is checked."""
    report = ArtifactReport(location=artifact_store().location)
    stored = artifacts_list()
    referenced, rows = _referenced()
    for row in rows:
        report.checked += 1
        name, number, uri = row.recommender.name, row.number, row.artifact_uri
        try:
            key = artifact_name(uri)
        except ValueError as exc:
            report.not_local.append(RowProblem(name, number, uri, "not_local", str(exc)))
            continue
        if key not in stored.artifacts:
            report.missing.append(
                RowProblem(name, number, uri, "missing_file", f"{uri} has no artifact")
            )
            continue
        try:
            artifact_store_check(uri=uri, sha256=row.artifact_sha256, verify=verify)
        except ArtifactError as exc:
            problems = report.missing if exc.code == "missing_file" else report.damaged
            problems.append(RowProblem(name, number, uri, exc.code, exc.message))
    report.orphans = [
        entry for key, entry in sorted(stored.artifacts.items()) if key not in referenced
    ]
    report.unknown = stored.unknown
    report.partial = stored.partial
    return report


def orphans_delete(
    *, report: ArtifactReport, min_age: float, now: float | None = None
) -> tuple[list[StoredArtifact], list[StoredArtifact]]:
    """Delete the report's orphans that are at least ``min_age`` seconds old at ``now``
    (by their manifest's time). The rows are read again first, so an artifact that a row
    points at by now is kept. Returns (deleted, kept because too young or referenced
    meanwhile)."""
    cutoff = (time.time() if now is None else now) - min_age
    referenced, _ = _referenced()
    deleted: list[StoredArtifact] = []
    kept: list[StoredArtifact] = []
    for entry in report.orphans:
        if entry.name in referenced or entry.mtime > cutoff:
            kept.append(entry)
        elif artifact_delete(entry.name):
            deleted.append(entry)
    return deleted, kept
