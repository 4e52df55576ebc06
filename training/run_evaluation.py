"""The evaluate phase: the candidate and the popularity baseline on the holdout, and the
active version (the champion) on the part of the holdout it has not been trained on, next
to the candidate on exactly that part; and what the gates compare from it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import scipy.sparse as sp
from django.conf import settings

from recommender.artifact_store import artifact_load
from recommender.artifacts import ArtifactError
from recommender.exceptions import ArtifactStoreUnavailable
from recommender.families import family_get
from recommender.models import ModelVersion, Recommender
from recommender.selectors import active_version_get
from training.families.base import model_from_artifact
from training.families.fit import FamilyScorer, family_scorer
from training.pipeline.gates import ChampionComparison
from training.pipeline.matrices import IdMap
from training.pipeline.metrics import evaluate
from training.pipeline.models import PopularityScorer
from training.pipeline.split import Split, split_matrices
from training.run_data import RunData


def holdout_evaluate(
    recommender: Recommender,
    data: RunData,
    split: Split,
    train: sp.csr_matrix,
    train_seen: sp.csr_matrix,
    test: sp.csr_matrix,
    candidate_scorer: FamilyScorer,
    k: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Candidate and popularity on the holdout; the champion on the part of the holdout
    it has not been trained on (events after its data window), next to the candidate on
    exactly that part, so neither side is judged on data it has seen. At most
    ``RECSITE_EVAL_MAX_USERS`` holdout users are scored (a seeded sample, the same for
    every side)."""
    sample = settings.RECSITE_EVAL_MAX_USERS
    metrics: dict[str, Any] = {
        "k": k,
        "candidate": evaluate(candidate_scorer, train, test, k=k, max_users=sample),
        "popularity": evaluate(PopularityScorer(train), train, test, k=k, max_users=sample),
    }
    log(f"candidate {metrics_brief(metrics['candidate'])}")
    log(f"popularity {metrics_brief(metrics['popularity'])}")
    champion = active_version_get(recommender=recommender)
    if champion is None:
        log("no champion yet")
        return metrics
    metrics["champion_version"] = champion.number
    try:
        champion_scorer, trained_until = _champion_scorer(champion, data, train, train_seen)
    except (ArtifactError, ArtifactStoreUnavailable) as exc:
        metrics["champion_error"] = f"{exc.code}: {exc.message}"
        log(f"champion v{champion.number} cannot be loaded ({exc.message}); not compared")
        return metrics
    newer = split.test & (data.interactions.timestamps > trained_until)
    held = Split(train=split.train, test=newer, stats=split.stats)
    _, newer_test = split_matrices(
        data.interactions,
        held,
        len(data.users),
        len(data.items),
        duplicates=recommender.duplicate_aggregation,
    )
    metrics["champion_holdout_events"] = int(newer_test.nnz)
    if not newer_test.nnz:
        log(
            f"champion v{champion.number}: no holdout events newer than its data; "
            f"champion_no_overlap_policy={recommender.champion_no_overlap_policy}"
        )
        return metrics
    metrics["champion"] = evaluate(champion_scorer, train, newer_test, k=k, max_users=sample)
    metrics["candidate_on_champion_holdout"] = evaluate(
        candidate_scorer, train, newer_test, k=k, max_users=sample
    )
    log(
        f"on the {newer_test.nnz} held-out events newer than champion v{champion.number}'s "
        f"data: champion {metrics_brief(metrics['champion'])}; candidate "
        f"{metrics_brief(metrics['candidate_on_champion_holdout'])}"
    )
    return metrics


def champion_unavailable(metrics: dict[str, Any]) -> str | None:
    """Why an active version could not be compared, for the champion gate: its artifact is
    missing (lost or deleted from disk) or unusable. None when there is no champion or
    it was loaded."""
    error = metrics.get("champion_error")
    if error is None:
        return None
    what = "missing" if error.startswith("missing_file:") else "unusable"
    return f"champion artifact {what}: v{metrics['champion_version']} ({error})"


def champion_comparison(metrics: dict[str, Any]) -> ChampionComparison | None:
    """What the champion gate compares: the champion and the candidate on the champion's
    holdout (never the candidate's whole holdout). None when there is no champion to
    compare with (none yet, or its artifact could not be loaded)."""
    if "champion_version" not in metrics or "champion_error" in metrics:
        return None
    return ChampionComparison(
        version=metrics["champion_version"],
        events=metrics.get("champion_holdout_events", 0),
        champion=metrics.get("champion"),
        candidate=metrics.get("candidate_on_champion_holdout"),
    )


def metrics_brief(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in values.items() if name != "users")


def _champion_scorer(
    champion: ModelVersion, data: RunData, train: sp.csr_matrix, train_seen: sp.csr_matrix
) -> tuple[FamilyScorer, float]:
    """The champion's model (any family) re-indexed to this run's users and items, scored
    as its family scores. Users it does not know get a zero vector (factor families);
    items it does not know rank last. Item-item champions score this run's train
    histories."""
    artifact = artifact_load(uri=champion.artifact_uri, sha256=champion.artifact_sha256)
    family = family_get(artifact.family)
    model = model_from_artifact(family.kind, artifact.arrays).reindexed(
        IdMap(artifact.id_maps["users"]).indices(data.users.ids),
        IdMap(artifact.id_maps["items"]).indices(data.items.ids),
    )
    params = {"family": family.name, **artifact.hyperparameters}
    scorer = family_scorer(model, params, history=train, last_seen=train_seen)
    window_end = (champion.data_window or {}).get("end")
    trained_until = datetime.fromisoformat(window_end).timestamp() if window_end else 0.0
    return scorer, trained_until
