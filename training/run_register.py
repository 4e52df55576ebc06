"""The end of a run that passed its gates: the artifact written from the final model,
then the version row, its promotion by policy and the run's result in one transaction,
and artifact retention after that commit."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.db import transaction

from recommender.artifact_store import artifact_staging_dir
from recommender.artifacts import ArtifactInfo, ArtifactMeta, artifact_name_new, write_artifact
from recommender.families import Family
from recommender.features import IDENTITY_PREFIX
from recommender.models import ModelVersion, PromotionKind, Recommender, VersionStatus
from recommender.services.registry import model_version_create, model_version_promote
from recommender.services.retention import artifacts_retain
from training.families.base import FittedModel
from training.models import Decision, TrainingRun
from training.pipeline.gates import Decision as GateDecision
from training.pipeline.gates import Outcome
from training.run_data import RunData
from training.services import training_run_log_append, training_run_succeed

logger = logging.getLogger(__name__)


def run_artifact_write(
    recommender: Recommender,
    run: TrainingRun,
    data: RunData,
    matrix: sp.csr_matrix,
    fitted: FittedModel,
    metrics: dict[str, float],
    params: dict[str, Any],
    family: Family,
) -> ArtifactInfo:
    seen = sp.csr_matrix(matrix)
    feature_names = {
        "items": data.item_features.names.tolist()
        if data.item_features
        else np.char.add(IDENTITY_PREFIX, data.items.ids).tolist(),
    }
    if data.user_features:
        feature_names["users"] = data.user_features.names.tolist()
    return write_artifact(
        artifact_staging_dir(recommender.name),
        artifact_name_new(f"run-{run.pk}"),
        arrays={
            **fitted.artifact_arrays(),
            **(
                {"item_term_idf": data.title_terms.idf}
                if family.uses_features and data.title_terms
                else {}
            ),
            "popularity": np.asarray(seen.sum(axis=0), dtype=np.float32).ravel(),
            "seen_indptr": seen.indptr.astype(np.int64),
            "seen_indices": seen.indices.astype(np.int32),
        },
        id_maps={"users": data.users.ids, "items": data.items.ids},
        meta=ArtifactMeta(
            family=family.name,
            hyperparameters=params,
            metrics=metrics,
            feature_names=feature_names,
            extra={"recommender": recommender.name, "run_id": run.pk},
        ),
    )


def _decision_reason(decision: GateDecision, options: dict[str, Any]) -> str:
    if decision.outcome is Outcome.PROMOTE and options.get("no_promote"):
        return "All gates passed; --no-promote kept it as a candidate."
    return decision.reason


def run_register(
    run: TrainingRun,
    artifact: ArtifactInfo,
    artifact_uri: str,
    phase_timings: dict[str, float],
    metrics: dict[str, Any],
    stats: dict[str, Any],
    gate_results: list[dict[str, Any]],
    decision: GateDecision,
    params: dict[str, Any],
    options: dict[str, Any],
) -> ModelVersion:
    """The version row (only now that the artifact is complete), its promotion by policy
    with the audit row, and the run's result: one transaction, so a run reaped meanwhile
    leaves no version behind."""
    recommender = run.recommender
    promote = decision.outcome is Outcome.PROMOTE and not options.get("no_promote")
    reason = _decision_reason(decision, options)
    with transaction.atomic():
        version = model_version_create(
            recommender=recommender,
            artifact_uri=artifact_uri,
            artifact_sha256=artifact.sha256,
            artifact_size=artifact.size_bytes,
            metrics=metrics["candidate"],
            hyperparameters=params,
            data_window={"start": stats["window_start"], "end": stats["window_end"]},
            data_stats=stats,
            status=VersionStatus.CANDIDATE,
        )
        if promote:
            model_version_promote(
                version=version,
                actor=run.triggered_by,
                actor_label=f"run #{run.pk} ({run.trigger})",
                reason=reason,
                kind=PromotionKind.AUTO,
                artifact_verified=True,  # just written and hashed by this run
            )
        training_run_succeed(
            run=run,
            decision=Decision.PROMOTED if promote else Decision.CANDIDATE,
            decision_reason=f"v{version.number}: {reason}",
            version=version,
            metrics=metrics,
            data_stats=stats,
            gate_results=gate_results,
            phase_timings=phase_timings,
        )
        transaction.on_commit(lambda: _retain(run), robust=True)
    return version


def _retain(run: TrainingRun) -> None:
    """Artifact retention once the new version and its promotion have committed. What it
    did, and any failure, goes on the run's log; it never changes the run's outcome."""
    try:
        summary = artifacts_retain(recommender=run.recommender).summary()
    except Exception as exc:
        logger.exception("retention after run %s failed", run.pk)
        summary = f"retention failed (the run is unaffected): {type(exc).__name__}: {exc}"
    training_run_log_append(run_id=run.pk, log=summary)
