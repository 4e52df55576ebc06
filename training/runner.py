"""Running one training run: load -> build -> split -> fit -> evaluate -> gates -> refit
-> artifact, each phase timed, logged on the run and reported as progress; then the
version row, the promotion policy and the run's result in one transaction.

Every entry point (the Celery task, ``manage.py retrain``, and through them the admin,
the API and beat) ends here, in ``training_run_execute``. The numeric work is in
``training.pipeline`` (no Django); this module moves data between it and the database.

A failure in any phase leaves the run ``failed`` with the error and traceback, removes
an artifact that no version points at, and never touches the active version."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db import transaction

from recommender.artifact_store import (
    artifact_discard,
    artifact_load,
    artifact_publish,
    artifact_staging_dir,
)
from recommender.artifacts import (
    ArtifactError,
    ArtifactInfo,
    ArtifactMeta,
    artifact_name_new,
    write_artifact,
)
from recommender.config_schema import run_hyperparameters
from recommender.exceptions import ArtifactStoreUnavailable, RecsiteError
from recommender.families import RUN_SETTINGS, Family, family_get
from recommender.features import IDENTITY_PREFIX, category_feature_names, user_feature_names
from recommender.metric_names import metric_key
from recommender.models import ModelVersion, PromotionKind, Recommender, VersionStatus
from recommender.selectors import active_version_get
from recommender.services.registry import model_version_create, model_version_promote
from recommender.services.retention import artifacts_retain
from training.dataset import EventColumns, catalog_load, events_load, user_features_load
from training.families.base import FitContext, FittedModel, model_from_artifact
from training.families.fit import FamilyScorer, family_scorer, fit_family
from training.models import Decision, TrainingRun
from training.pipeline.gates import (
    ChampionComparison,
    DataStats,
    GateConfig,
    Outcome,
    decide,
    run_gates,
)
from training.pipeline.gates import Decision as GateDecision
from training.pipeline.matrices import (
    FeatureMatrix,
    IdMap,
    Interactions,
    feature_matrix,
    interaction_matrix,
    last_seen_matrix,
)
from training.pipeline.metrics import evaluate
from training.pipeline.models import PopularityScorer
from training.pipeline.split import Split, split_global, split_matrices, split_per_user
from training.reports import hyperparameters_text
from training.selectors import training_run_should_stop
from training.services import (
    training_run_claim,
    training_run_create,
    training_run_fail,
    training_run_finish_cancelled,
    training_run_log_append,
    training_run_report,
    training_run_succeed,
)

logger = logging.getLogger(__name__)

# Share of the progress bar each phase takes (fit and refit dominate the wall time).
PHASES: dict[str, float] = {
    "load": 0.06,
    "build": 0.04,
    "split": 0.02,
    "fit": 0.45,
    "evaluate": 0.08,
    "gates": 0.01,
    "refit": 0.30,
    "artifact": 0.04,
}

ProgressCallback = Callable[[str, float, str], None]
"""``on_progress(phase, overall_fraction, message)``: for a foreground caller (the CLI)."""


class RunStopped(Exception):
    """A cancel was requested, or the run was reaped: stop between phases/epochs."""


def default_worker_name(pid: int | None = None) -> str:
    """``host:pid`` of this process (or of ``pid`` on this host): ``TrainingRun.worker``."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@dataclass
class _Reporter:
    """Progress, log and timings of one run; also its heartbeat."""

    run_id: int
    on_progress: ProgressCallback | None
    timings: dict[str, float] = field(default_factory=dict)
    artifact: ArtifactInfo | None = None  # set once written; removed again if the run fails
    artifact_uri: str | None = None  # set once published to the store
    phase: str = ""
    done: float = 0.0

    @contextmanager
    def phase_of(self, name: str):
        self.check_stop()
        self.phase = name
        self.report(0.0, f"phase {name} started")
        started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - started, 3)
        self.done += PHASES[name]
        self.report(0.0, f"phase {name} done in {self.timings[name]:.2f} s")

    def report(self, within: float, message: str) -> None:
        """Progress within the current phase (0..1) and a log line; also the heartbeat."""
        overall = min(1.0, self.done + PHASES.get(self.phase, 0.0) * within)
        if self.on_progress is not None:
            self.on_progress(self.phase, overall, message)
        still_running = training_run_report(
            run_id=self.run_id, phase=self.phase, progress=overall, log=message
        )
        if not still_running:
            raise RunStopped("the run is no longer running")

    def log(self, message: str) -> None:
        self.report(0.0, message)

    def check_stop(self) -> None:
        if training_run_should_stop(run_id=self.run_id):
            raise RunStopped("cancel requested")


@dataclass
class _Data:
    events: EventColumns
    users: IdMap
    items: IdMap
    interactions: Interactions
    item_pks: np.ndarray
    item_features: FeatureMatrix | None
    user_features: FeatureMatrix | None


def training_run_execute(
    *, run_id: int, worker: str | None = None, on_progress: ProgressCallback | None = None
) -> TrainingRun | None:
    """Claim a queued run and run it to the end. Returns the finished run, or None when
    the run was not queued (already running elsewhere or finished: a duplicate delivery
    never trains twice)."""
    run = training_run_claim(run_id=run_id, worker=worker or default_worker_name())
    if run is None:  # the claim logged and recorded why
        return None
    reporter = _Reporter(run_id=run.pk, on_progress=on_progress)
    try:
        _execute(run, reporter)
    except RunStopped:
        _remove_orphan(reporter)
        training_run_finish_cancelled(run_id=run.pk, phase_timings=reporter.timings)
    except Exception as exc:
        _remove_orphan(reporter)
        logger.exception("training run %s failed in phase %s", run.pk, reporter.phase)
        training_run_fail(
            run_id=run.pk,
            error=f"{reporter.phase or 'start'}: {type(exc).__name__}: {exc}"
            + (f" [{exc.code}]" if isinstance(exc, RecsiteError) else ""),
            traceback=traceback.format_exc(),
            phase_timings=reporter.timings,
        )
    return TrainingRun.objects.select_related("version").get(pk=run.pk)


def _remove_orphan(reporter: _Reporter) -> None:
    """An artifact written (and maybe published) by a run that then failed has no
    version: delete it, from the store and from the local staging directory."""
    if reporter.artifact is None:
        return
    uri = reporter.artifact_uri
    if uri is None or not ModelVersion.objects.filter(artifact_uri=uri).exists():
        artifact_discard(info=reporter.artifact, uri=uri)


def _hyperparameters(run: TrainingRun) -> dict[str, Any]:
    """What the run fits: resolved when it was created; a run queued before runs recorded
    it is resolved now, from its options."""
    if run.hyperparameters:
        return dict(run.hyperparameters)
    recommender, options = run.recommender, run.options or {}
    return run_hyperparameters(
        recommender_values={
            name: getattr(recommender, name) for name in ("hyperparameters", *RUN_SETTINGS)
        },
        family=family_get(options.get("algorithm") or recommender.algorithm),
        overrides=options.get("overrides") or {},
    )


def _execute(run: TrainingRun, reporter: _Reporter) -> None:
    recommender = run.recommender
    options = run.options or {}
    params = _hyperparameters(run)
    family = family_get(params["family"])
    k = recommender.eval_k
    key = metric_key(recommender.key_metric, k)

    with reporter.phase_of("load"):
        events = events_load(recommender=recommender)
        reporter.log(
            f"loaded {len(events)} events in the window from the {events.source} database "
            f"(up to {events.window_end.isoformat()})"
        )
        if events.ignored_types:
            reporter.log(f"ignored event types without a weight: {events.ignored_types}")
        if events.invalid_weights:
            reporter.log(
                f"skipped {events.invalid_weights} events with an unusable weight (not finite, "
                f"<= 0 or above RECSITE_EVENT_WEIGHT_MAX)"
            )

    with reporter.phase_of("build"):
        data = _build(recommender, events)
        stats = _data_stats(data)
        reporter.log(
            f"{stats['users']} users x {stats['items']} items, density {stats['density']:.5f}"
        )

    if options.get("dry_run"):
        plan = (
            f"dry run: would fit {hyperparameters_text(params)} on {stats['events']} events, "
            f"holdout {recommender.holdout_strategy} {recommender.holdout_fraction:g}, k={k}"
        )
        reporter.log(plan)
        training_run_succeed(
            run=run,
            decision=Decision.DRY_RUN,
            decision_reason=plan,
            data_stats=stats,
            phase_timings=reporter.timings,
        )
        return
    if len(events) == 0:
        raise ValueError("no events in the training window: nothing to train on")

    with reporter.phase_of("split"):
        split = _split(recommender, data)
        n_users, n_items = len(data.users), len(data.items)
        duplicates = recommender.duplicate_aggregation
        train, test = split_matrices(
            data.interactions, split, n_users, n_items, duplicates=duplicates
        )
        stats["split"] = split.stats.as_dict()
        reporter.log(f"split: {split.stats.as_dict()}")

        train_seen = last_seen_matrix(data.interactions.subset(split.train), n_users, n_items)

    with reporter.phase_of("fit"):
        fitted = _fit(train, train_seen, params, data, reporter)

    with reporter.phase_of("evaluate"):
        scorer = family_scorer(fitted, params, history=train, last_seen=train_seen)
        metrics = _evaluate(recommender, data, split, train, train_seen, test, scorer, k, reporter)

    with reporter.phase_of("gates"):
        gates = run_gates(
            config=GateConfig(
                min_users=recommender.gate_min_users,
                min_items=recommender.gate_min_items,
                min_events=recommender.gate_min_events,
                key_metric=key,
                min_lift_over_popularity=recommender.gate_min_lift_over_popularity,
                max_regression_vs_champion=recommender.champion_tolerance,
                champion_no_overlap_policy=recommender.champion_no_overlap_policy,
            ),
            data=DataStats(n_users=n_users, n_items=n_items, n_events=len(events)),
            candidate=metrics["candidate"],
            popularity=metrics["popularity"],
            champion=_champion_comparison(metrics),
            champion_unavailable=_champion_unavailable(metrics),
        )
        decision = decide(gates=gates, policy=recommender.promotion_policy)
        gate_results = [gate.as_dict() for gate in gates]
        for gate in gates:
            if gate.held or gate.skipped:
                reporter.log(f"{gate.name}: {gate.message}")
        reporter.log(decision.reason)

    if decision.outcome is Outcome.REJECT:
        training_run_succeed(
            run=run,
            decision=Decision.REJECTED,
            decision_reason=decision.reason,
            metrics=metrics,
            data_stats=stats,
            gate_results=gate_results,
            phase_timings=reporter.timings,
        )
        return

    with reporter.phase_of("refit"):
        if recommender.refit_on_full_data:
            full = interaction_matrix(data.interactions, n_users, n_items, duplicates=duplicates)
            full_seen = last_seen_matrix(data.interactions, n_users, n_items)
            final = _fit(full, full_seen, params, data, reporter)
        else:
            full, final = train, fitted

    with reporter.phase_of("artifact"):
        reporter.artifact = _write(
            recommender, run, data, full, final, metrics["candidate"], params, family
        )
        reporter.log(f"artifact written to {reporter.artifact.path}")
        # Uploaded (S3: verified locally, manifest last) before any row exists.
        reporter.artifact_uri = artifact_publish(reporter.artifact)
        reporter.log(f"artifact {reporter.artifact_uri} published")

    _register(run, reporter, metrics, stats, gate_results, decision, params, options)


def _build(recommender: Recommender, events: EventColumns) -> _Data:
    users, user_index = IdMap(events.users), events.user_codes
    item_pks, item_index = np.unique(events.item_pks, return_inverse=True)
    catalog = catalog_load(item_pks=item_pks)
    items = IdMap(np.asarray(catalog.external_ids, dtype=np.str_))
    # IdMap keeps the given order, so item index i is item_pks[i].
    interactions = Interactions(
        users=user_index,
        items=item_index.astype(np.int64),
        weights=events.weights,
        timestamps=events.timestamps,
    )
    item_features = None
    if recommender.use_item_features:
        rows = np.repeat(
            np.arange(len(items), dtype=np.int64), [len(c) for c in catalog.categories]
        )
        labels = [label for names in catalog.categories for label in category_feature_names(names)]
        item_features = feature_matrix(items, rows, np.asarray(labels, dtype=np.str_))
    user_features = None
    if recommender.use_user_features:
        profiles = user_features_load(user_ids=users.ids.tolist())
        per_user = [profiles.get(user, []) for user in users.ids.tolist()]
        rows = np.repeat(np.arange(len(users), dtype=np.int64), [len(f) for f in per_user])
        labels = [label for names in per_user for label in user_feature_names(names)]
        user_features = feature_matrix(users, rows, np.asarray(labels, dtype=np.str_))
    return _Data(events, users, items, interactions, item_pks, item_features, user_features)


def _data_stats(data: _Data) -> dict[str, Any]:
    n_users, n_items, n_events = len(data.users), len(data.items), len(data.events)
    pairs = int(np.unique(data.interactions.users * max(n_items, 1) + data.interactions.items).size)
    return {
        "events": n_events,
        "users": n_users,
        "items": n_items,
        "pairs": pairs,
        "density": pairs / (n_users * n_items) if n_users and n_items else 0.0,
        "window_start": _iso(data.events.window_start),
        "window_end": _iso(data.events.window_end),
        "data_source": data.events.source,
        "first_event": _iso_ts(data.events.timestamps.min()) if n_events else None,
        "last_event": _iso_ts(data.events.timestamps.max()) if n_events else None,
        "ignored_event_types": data.events.ignored_types,
        "invalid_weights_skipped": data.events.invalid_weights,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _iso_ts(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), tz=UTC).isoformat()


def _split(recommender: Recommender, data: _Data) -> Split:
    if recommender.holdout_strategy == "global_cutoff":
        stamps = data.interactions.timestamps
        cutoff = float(np.quantile(stamps, 1.0 - recommender.holdout_fraction))
        return split_global(data.interactions, cutoff)
    return split_per_user(data.interactions, recommender.holdout_fraction)


def _fit(
    matrix: sp.csr_matrix,
    last_seen: sp.csr_matrix,
    params: dict[str, Any],
    data: _Data,
    reporter: _Reporter,
) -> FittedModel:
    def on_progress(done: int, total: int) -> None:
        reporter.check_stop()
        reporter.report(done / total, f"fit {params['family']}: step {done}/{total}")

    context = FitContext(
        num_threads=int(params["num_threads"]),
        random_seed=int(params["random_seed"]),
        on_progress=on_progress,
        item_features=data.item_features.matrix if data.item_features else None,
        user_features=data.user_features.matrix if data.user_features else None,
        last_seen=last_seen,
        ease_max_items=settings.RECSITE_EASE_MAX_ITEMS,
    )
    return fit_family(matrix, params, context)


def _evaluate(
    recommender: Recommender,
    data: _Data,
    split: Split,
    train: sp.csr_matrix,
    train_seen: sp.csr_matrix,
    test: sp.csr_matrix,
    candidate_scorer: FamilyScorer,
    k: int,
    reporter: _Reporter,
) -> dict[str, Any]:
    """Candidate and popularity on the holdout; the champion on the part of the holdout
    it has not been trained on (events after its data window), next to the candidate on
    exactly that part, so neither side is judged on data it has seen."""
    sample = settings.RECSITE_EVAL_MAX_USERS
    metrics: dict[str, Any] = {
        "k": k,
        "candidate": evaluate(candidate_scorer, train, test, k=k, max_users=sample),
        "popularity": evaluate(PopularityScorer(train), train, test, k=k, max_users=sample),
    }
    reporter.log(f"candidate {_brief(metrics['candidate'])}")
    reporter.log(f"popularity {_brief(metrics['popularity'])}")
    champion = active_version_get(recommender=recommender)
    if champion is None:
        reporter.log("no champion yet")
        return metrics
    metrics["champion_version"] = champion.number
    try:
        champion_scorer, trained_until = _champion_scorer(champion, data, train, train_seen)
    except (ArtifactError, ArtifactStoreUnavailable) as exc:
        metrics["champion_error"] = f"{exc.code}: {exc.message}"
        reporter.log(f"champion v{champion.number} cannot be loaded ({exc.message}); not compared")
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
        reporter.log(
            f"champion v{champion.number}: no holdout events newer than its data; "
            f"champion_no_overlap_policy={recommender.champion_no_overlap_policy}"
        )
        return metrics
    metrics["champion"] = evaluate(champion_scorer, train, newer_test, k=k, max_users=sample)
    metrics["candidate_on_champion_holdout"] = evaluate(
        candidate_scorer, train, newer_test, k=k, max_users=sample
    )
    reporter.log(
        f"on the {newer_test.nnz} held-out events newer than champion v{champion.number}'s "
        f"data: champion {_brief(metrics['champion'])}; candidate "
        f"{_brief(metrics['candidate_on_champion_holdout'])}"
    )
    return metrics


def _champion_unavailable(metrics: dict[str, Any]) -> str | None:
    """Why an active version could not be compared, for the champion gate: its artifact is
    missing (lost or deleted from disk) or unusable. None when there is no champion or
    it was loaded."""
    error = metrics.get("champion_error")
    if error is None:
        return None
    what = "missing" if error.startswith("missing_file:") else "unusable"
    return f"champion artifact {what}: v{metrics['champion_version']} ({error})"


def _champion_comparison(metrics: dict[str, Any]) -> ChampionComparison | None:
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


def _brief(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in values.items() if name != "users")


def _champion_scorer(
    champion: ModelVersion, data: _Data, train: sp.csr_matrix, train_seen: sp.csr_matrix
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


def _write(
    recommender: Recommender,
    run: TrainingRun,
    data: _Data,
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


def _register(
    run: TrainingRun,
    reporter: _Reporter,
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
    artifact = reporter.artifact
    recommender = run.recommender
    promote = decision.outcome is Outcome.PROMOTE and not options.get("no_promote")
    reason = _decision_reason(decision, options)
    with transaction.atomic():
        version = model_version_create(
            recommender=recommender,
            artifact_uri=reporter.artifact_uri,
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
            phase_timings=reporter.timings,
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


def training_run_execute_now(
    *,
    recommender: Recommender,
    trigger: str,
    options: dict[str, Any] | None = None,
    actor_label: str = "",
    on_progress: ProgressCallback | None = None,
) -> TrainingRun:
    """Create a run and execute it in this process (``manage.py retrain``). The slot is
    the same as for queued runs: ``TrainingAlreadyRunning`` when one is live."""
    run = training_run_create(
        recommender=recommender,
        trigger=trigger,
        actor_label=actor_label,
        options=options,
        enqueue=False,
    )
    finished = training_run_execute(run_id=run.pk, on_progress=on_progress)
    assert finished is not None  # just created and queued by us
    return finished
