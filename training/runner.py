"""Running one training run: load -> build -> split -> (search) -> fit -> evaluate ->
gates -> refit -> artifact, each phase timed, logged on the run and reported as progress; then the
version row, the promotion policy and the run's result in one transaction.

Every entry point (the Celery task, ``manage.py retrain``, and through them the admin,
the API and beat) ends here, in ``training_run_execute``. The numeric work is in
``training.pipeline`` (no Django); this module moves data between it and the database.
An ``auto`` run first searches the families (``training.run_search``), then goes on as
a run of the winning family and configuration.

A failure in any phase leaves the run ``failed`` with the error and traceback, removes
an artifact that no version points at, and never touches the active version."""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import scipy.sparse as sp
from django.conf import settings

from recommender.artifact_store import (
    artifact_discard,
    artifact_publish,
)
from recommender.artifacts import (
    ArtifactInfo,
)
from recommender.config_schema import run_hyperparameters
from recommender.exceptions import RecsiteError
from recommender.families import RUN_SETTINGS, SEARCH_SETTINGS, Algorithm, family_get
from recommender.metric_names import metric_key
from recommender.models import ModelVersion, Recommender
from training.dataset import events_load
from training.families.base import FitContext, FittedModel
from training.families.fit import family_scorer, fit_family
from training.models import Decision, TrainingRun
from training.pipeline.gates import (
    DataStats,
    GateConfig,
    Outcome,
    decide,
    run_gates,
)
from training.pipeline.matrices import (
    interaction_matrix,
    last_seen_matrix,
)
from training.pipeline.split import split_matrices
from training.reports import hyperparameters_text
from training.run_data import RunData, holdout_split, run_data_build, run_data_stats
from training.run_evaluation import champion_comparison, champion_unavailable, holdout_evaluate
from training.run_register import run_artifact_write, run_register
from training.run_search import search_phase
from training.search.outcome import outcome_text
from training.selectors import training_run_should_stop
from training.services import (
    training_run_claim,
    training_run_create,
    training_run_fail,
    training_run_finish_cancelled,
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
# An auto run: the search takes most of the bar.
SEARCH_PHASES: dict[str, float] = {
    "load": 0.03,
    "build": 0.02,
    "split": 0.01,
    "search": 0.70,
    "fit": 0.10,
    "evaluate": 0.04,
    "gates": 0.01,
    "refit": 0.07,
    "artifact": 0.02,
}

ProgressCallback = Callable[[str, float, str], None]
"""``on_progress(phase, overall_fraction, message)``: for a foreground caller (the CLI)."""


class RunStopped(Exception):
    """A cancel was requested, or the run was reaped: stop between phases/epochs."""


def _peak_rss_gib() -> float:
    """This process's peak resident memory (Linux reports KiB): where a run's peak is."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def default_worker_name(pid: int | None = None) -> str:
    """``host:pid`` of this process (or of ``pid`` on this host): ``TrainingRun.worker``."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@dataclass
class _Reporter:
    """Progress, log and timings of one run; also its heartbeat."""

    run_id: int
    on_progress: ProgressCallback | None
    phases: dict[str, float] = field(default_factory=lambda: dict(PHASES))
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
        self.done += self.phases[name]
        self.report(
            0.0,
            f"phase {name} done in {self.timings[name]:.2f} s "
            f"(peak RSS so far {_peak_rss_gib():.2f} GiB)",
        )

    def report(self, within: float, message: str) -> None:
        """Progress within the current phase (0..1) and a log line; also the heartbeat."""
        overall = min(1.0, self.done + self.phases.get(self.phase, 0.0) * within)
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
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM in ``manage.py retrain``: end the run now rather than leave
        # it "running" until the reaper, then let the process stop. Python raises the
        # interrupt between steps, so a query in flight has finished: the connection is
        # usable.
        _remove_orphan(reporter)
        training_run_finish_cancelled(
            run_id=run.pk,
            phase_timings=reporter.timings,
            reason=f"interrupted in phase {reporter.phase or 'start'} ({exc or 'SIGINT'})",
        )
        raise
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
            name: getattr(recommender, name)
            for name in ("hyperparameters", *RUN_SETTINGS, *SEARCH_SETTINGS)
        },
        algorithm=options.get("algorithm") or recommender.algorithm,
        overrides=options.get("overrides") or {},
    )


def _execute(run: TrainingRun, reporter: _Reporter) -> None:
    recommender = run.recommender
    options = run.options or {}
    params = _hyperparameters(run)
    searching = params["family"] == Algorithm.AUTO
    if searching:
        reporter.phases = dict(SEARCH_PHASES)
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
        data = run_data_build(recommender, events, params)
        stats = run_data_stats(data)
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
        split = holdout_split(recommender, data)
        n_users, n_items = len(data.users), len(data.items)
        duplicates = recommender.duplicate_aggregation
        train, test = split_matrices(
            data.interactions, split, n_users, n_items, duplicates=duplicates
        )
        stats["split"] = split.stats.as_dict()
        reporter.log(f"split: {split.stats.as_dict()}")

        train_seen = last_seen_matrix(data.interactions.subset(split.train), n_users, n_items)

    if searching:
        with reporter.phase_of("search"):
            params, search = search_phase(
                run_id=run.pk,
                recommender=recommender,
                params=params,
                interactions=data.interactions,
                holdout=split,
                n_users=n_users,
                n_items=n_items,
                item_features=data.item_features.matrix if data.item_features else None,
                user_features=data.user_features.matrix if data.user_features else None,
                report=reporter.report,
                check_stop=reporter.check_stop,
            )
        reporter.log(f"{outcome_text(search)}; fitting it: {hyperparameters_text(params)}")
    family = family_get(params["family"])

    with reporter.phase_of("fit"):
        fitted = _fit(train, train_seen, params, data, reporter)

    with reporter.phase_of("evaluate"):
        scorer = family_scorer(fitted, params, history=train, last_seen=train_seen)
        metrics = holdout_evaluate(
            recommender, data, split, train, train_seen, test, scorer, k, reporter.log
        )

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
            champion=champion_comparison(metrics),
            champion_unavailable=champion_unavailable(metrics),
            candidate_is_baseline=_is_popularity_baseline(params),
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
            # The evaluated model and the split's matrices are done with: freed before the
            # full matrices are built (at 10M events ~0.3 GiB off the run's peak).
            del fitted, scorer, train, test, train_seen
            full = interaction_matrix(data.interactions, n_users, n_items, duplicates=duplicates)
            full_seen = last_seen_matrix(data.interactions, n_users, n_items)
            final = _fit(full, full_seen, params, data, reporter)
        else:
            full, final = train, fitted

    with reporter.phase_of("artifact"):
        reporter.artifact = run_artifact_write(
            recommender, run, data, full, final, metrics["candidate"], params, family
        )
        reporter.log(f"artifact written to {reporter.artifact.path}")
        # Uploaded (S3: verified locally, manifest last) before any row exists.
        reporter.artifact_uri = artifact_publish(reporter.artifact)
        reporter.log(f"artifact {reporter.artifact_uri} published")

    run_register(
        run,
        reporter.artifact,
        reporter.artifact_uri,
        reporter.timings,
        metrics,
        stats,
        gate_results,
        decision,
        params,
        options,
    )


def _is_popularity_baseline(params: dict[str, Any]) -> bool:
    """A popularity model without decay ranks exactly as the baseline it would be gated
    against, so it can never beat it: the gate is skipped for it, saying so."""
    return params["family"] == Algorithm.POPULARITY and not params.get("half_life_days")


def _fit(
    matrix: sp.csr_matrix,
    last_seen: sp.csr_matrix,
    params: dict[str, Any],
    data: RunData,
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
