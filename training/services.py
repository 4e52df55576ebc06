"""The training run lifecycle: create (queue), claim, heartbeat / report, finish, cancel,
skip and reap. The pipeline that runs between claim and finish lives elsewhere.

    queued --claim--> running --succeed--> succeeded
       |                 |----fail-------> failed      (also: the reaper, a lost worker)
       |                 '----cancel-----> cancel_requested, then cancelled by the pipeline
       |--cancel--> cancelled
       '--its pool process lost before the claim--> failed
    (skipped: a scheduled trigger that had nothing to do; never queued)

The slot (at most one queued-or-running run per recommender) is the partial unique
constraint ``training_run_one_live_per_recommender``; no lock file, no advisory lock.
Writes during a run are conditional UPDATEs on ``status='running'``, so a run that was
reaped or cancelled is never brought back by a late report from its worker."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from recommender.config_schema import run_hyperparameters, run_overrides_clean
from recommender.families import RUN_SETTINGS, SEARCH_SETTINGS, Algorithm, FamilyUnavailable
from recommender.models import Event, ModelVersion, Recommender
from training.exceptions import (
    InvalidTrainingOptions,
    TrainingAlreadyRunning,
    TrainingRunNotCancellable,
    TrainingRunNotQueued,
    TrainingRunNotRunning,
)
from training.models import (
    LIVE_STATUSES,
    LOG_MAX_CHARS,
    Decision,
    RunStatus,
    TrainingRun,
    Trigger,
)
from training.selectors import training_run_last_succeeded_get, training_run_live_get

logger = logging.getLogger(__name__)

# The task the lead wires to the pipeline: ``@shared_task(queue="training",
# acks_late=True, ignore_result=True) def run_training(run_id)`` in training/tasks.py.
RUN_TRAINING_TASK = "training.tasks.run_training"
TRAINING_QUEUE = "training"
LOG_TRUNCATED_MARKER = "[... earlier log lines dropped ...]\n"
_OPTION_FLAGS = ("dry_run", "no_promote")


# --- Options and log helpers ---------------------------------------------------------


def training_options_clean(
    options: dict[str, Any] | None, *, recommender: Recommender
) -> dict[str, Any]:
    """Validate and normalise run options: ``{"dry_run": bool, "no_promote": bool,
    "algorithm": family or auto (default: the recommender's), "overrides": {name: value}}``.
    Overrides are the family's hyper-parameters (an auto run: ``tuning_budget_seconds``)
    and the run settings, checked by their schemas
    (``recommender.config_schema.run_overrides_clean``), each error under its name."""
    options = dict(options or {})
    known = [*_OPTION_FLAGS, "algorithm", "overrides"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InvalidTrainingOptions(
            f"Unknown option(s): {', '.join(unknown)}.", unknown=unknown, known=known
        )
    cleaned: dict[str, Any] = {flag: bool(options.get(flag, False)) for flag in _OPTION_FLAGS}
    algorithm = options.get("algorithm") or recommender.algorithm
    if algorithm not in Algorithm.values:
        message = f"{algorithm!r} is not an algorithm: choose one of {', '.join(Algorithm.values)}"
        raise InvalidTrainingOptions(message, algorithm=[message])
    if options.get("algorithm"):
        cleaned["algorithm"] = str(algorithm)
    overrides = options.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise InvalidTrainingOptions("overrides must be an object of hyper-parameters.")
    try:
        cleaned["overrides"] = run_overrides_clean(algorithm, overrides)
    except FamilyUnavailable as exc:
        raise InvalidTrainingOptions(str(exc), algorithm=[str(exc)]) from exc
    except ValidationError as exc:
        raise InvalidTrainingOptions(
            f"Invalid hyper-parameter override(s) for {algorithm}.",
            overrides=exc.message_dict,
        ) from exc
    return cleaned


def _timestamped(text: str, now: datetime) -> str:
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return "".join(f"{stamp} {line}\n" for line in text.splitlines() or [""])


def log_cap(log: str, limit: int = LOG_MAX_CHARS) -> str:
    """Keep the last ``limit`` characters, cut at a line start, with a marker on top."""
    if len(log) <= limit:
        return log
    tail = log[-(limit - len(LOG_TRUNCATED_MARKER)) :]
    newline = tail.find("\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1 :]
    return LOG_TRUNCATED_MARKER + tail


def _locked_log(run_id: int, *, statuses: tuple[str, ...]) -> str | None:
    """The run's log, row-locked, or None when the run is not in ``statuses``."""
    return (
        TrainingRun.objects.select_for_update()
        .filter(pk=run_id, status__in=statuses)
        .values_list("log", flat=True)
        .first()
    )


def _actor_name(actor: AbstractBaseUser | None, actor_label: str) -> str:
    if actor is not None:
        return actor.get_username()
    return actor_label or "unknown"


# --- Create and enqueue --------------------------------------------------------------


def _send(run_id: int) -> None:
    """Send ``training.tasks.run_training(run_id)`` to the training queue (by name, so this
    module does not import the task module that imports it)."""
    current_app.send_task(RUN_TRAINING_TASK, args=[run_id], queue=TRAINING_QUEUE)


def _enqueue(run_id: int) -> None:
    """After commit: send the run to the broker. A broker that refuses the message (Redis
    down) fails the run at once, so the slot does not stay taken by a run nobody will
    claim, and raises ``TrainingRunNotQueued`` (503) so the caller learns it.

    With ``CELERY_TASK_ALWAYS_EAGER`` the run executes here, in this process: Celery's
    ``send_task`` ignores eager mode, so the task registered under its name (by
    ``TrainingConfig.ready``) is applied directly."""
    if current_app.conf.task_always_eager:
        current_app.tasks[RUN_TRAINING_TASK].apply(args=[run_id])
        return
    try:
        _send(run_id)
    except Exception as exc:
        logger.exception("could not enqueue training run %s", run_id)
        cause = f"{type(exc).__name__}: {exc}"
        training_run_fail(run_id=run_id, error=f"could not enqueue the run: {cause}")
        raise TrainingRunNotQueued(
            f"Run #{run_id} could not be sent to the task broker ({cause}); it was failed. "
            "Retry later.",
            run_id=run_id,
        ) from exc


@transaction.atomic
def training_run_create(
    *,
    recommender: Recommender,
    trigger: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    options: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> TrainingRun:
    """Queue a run. A second run while one is queued or running is refused by the
    database and raised as ``TrainingAlreadyRunning`` (409, ``detail.run_id``). With
    ``enqueue`` the Celery task is sent after commit (``TrainingRunNotQueued`` when the
    broker refuses it); ``retrain`` runs in the foreground and passes ``enqueue=False``."""
    if trigger not in Trigger.values:
        raise ValueError(f"unknown trigger {trigger!r}")
    cleaned = training_options_clean(options, recommender=recommender)
    try:
        with transaction.atomic():  # a savepoint: the IntegrityError leaves the outer usable
            run = TrainingRun.objects.create(
                recommender=recommender,
                trigger=trigger,
                triggered_by=actor,
                triggered_by_label=actor_label,
                options=cleaned,
                hyperparameters=run_hyperparameters(
                    recommender_values={
                        name: getattr(recommender, name)
                        for name in ("hyperparameters", *RUN_SETTINGS, *SEARCH_SETTINGS)
                    },
                    algorithm=cleaned.get("algorithm") or recommender.algorithm,
                    overrides=cleaned["overrides"],
                ),
                status=RunStatus.QUEUED,
                enqueued_at=timezone.now() if enqueue else None,
                log=_timestamped(
                    f"queued by {trigger} ({_actor_name(actor, actor_label)})", timezone.now()
                ),
            )
    except IntegrityError:
        existing = training_run_live_get(recommender=recommender)
        if existing is None:
            raise
        raise TrainingAlreadyRunning(
            f"Run #{existing.pk} of {recommender.name!r} is already {existing.status}.",
            run_id=existing.pk,
            status=existing.status,
            recommender=recommender.name,
        )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(run.pk))
    return run


@transaction.atomic
def training_run_skip(
    *, recommender: Recommender, trigger: str, reason: str, actor_label: str = ""
) -> TrainingRun:
    """Record a trigger that had nothing to do (e.g. a schedule with no new events)."""
    now = timezone.now()
    return TrainingRun.objects.create(
        recommender=recommender,
        trigger=trigger,
        triggered_by_label=actor_label,
        status=RunStatus.SKIPPED,
        finished_at=now,
        decision_reason=reason,
        log=_timestamped(f"skipped: {reason}", now),
    )


def training_run_scheduled(*, recommender_id: int) -> TrainingRun | None:
    """What the beat schedule calls: queue a run, or record a skipped one when the
    schedule is disabled, a run is already queued or running, or no event was ingested
    since the last successful run started. None when the recommender no longer exists."""
    recommender = Recommender.objects.filter(pk=recommender_id).first()
    if recommender is None:
        logger.warning("scheduled training: recommender %s no longer exists", recommender_id)
        return None

    def skip(reason: str) -> TrainingRun:
        logger.info("scheduled training of %s skipped: %s", recommender.name, reason)
        return training_run_skip(
            recommender=recommender, trigger=Trigger.SCHEDULE, reason=reason, actor_label="schedule"
        )

    if not recommender.schedule_enabled:
        return skip("the schedule is disabled")
    live = training_run_live_get(recommender=recommender)
    if live is not None:
        return skip(f"run #{live.pk} is already {live.status}")
    last = training_run_last_succeeded_get(recommender=recommender)
    if last is None:
        if not Event.objects.exists():
            return skip("no events have been ingested yet")
    else:
        since = last.started_at or last.created_at
        # The newest row by primary key carries the latest ingestion time: one index
        # lookup, where a filter on ingested_at would need an index that slows ingest.
        latest = Event.objects.order_by("-pk").values_list("ingested_at", flat=True).first()
        if latest is None or latest <= since:
            return skip(
                f"no new events since run #{last.pk} started ({since.isoformat()}); "
                "the active model already saw all the data"
            )
    try:
        return training_run_create(
            recommender=recommender, trigger=Trigger.SCHEDULE, actor_label="schedule"
        )
    except TrainingAlreadyRunning as exc:
        return skip(exc.message)


# --- While running -------------------------------------------------------------------


def training_run_claim(*, run_id: int, worker: str) -> TrainingRun | None:
    """Move a queued run to running, for this worker. One conditional UPDATE: of two
    deliveries of the same run id exactly one gets the run, the other gets None (as does
    a run that was cancelled while queued)."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker[:255],
        phase="starting",
        progress=0.0,
    )
    if not claimed:
        _delivery_ignored_record(run_id=run_id, worker=worker)
        return None
    training_run_report(run_id=run_id, log=f"claimed by {worker}")
    return TrainingRun.objects.select_related("recommender").get(pk=run_id)


@transaction.atomic
def _delivery_ignored_record(*, run_id: int, worker: str) -> None:
    """A delivery of a run that is not queued (a broker redelivery, a second worker, a
    run cancelled while queued): a warning and a line in the run's own log, so the
    duplicate is visible on the run page, not only in one worker's output."""
    row = (
        TrainingRun.objects.select_for_update()
        .filter(pk=run_id)
        .values_list("status", "log")
        .first()
    )
    if row is None:
        logger.warning("training run %s does not exist; delivery to %s ignored", run_id, worker)
        return
    status, log = row
    message = f"delivery to {worker} ignored: the run is {status}, not queued"
    logger.warning("training run %s: %s", run_id, message)
    TrainingRun.objects.filter(pk=run_id).update(
        log=log_cap(log + _timestamped(message, timezone.now()))
    )


def training_run_heartbeat(*, run_id: int) -> bool:
    """The worker is alive. False when the run is no longer running (stop working)."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            heartbeat_at=timezone.now()
        )
    )


@transaction.atomic
def training_run_report(
    *,
    run_id: int,
    phase: str | None = None,
    progress: float | None = None,
    log: str | None = None,
) -> bool:
    """Progress of a running run; also a heartbeat. ``log`` lines are appended with a UTC
    timestamp and the log keeps its last ~64 KB. False when the run is no longer running
    (nothing is written then)."""
    now = timezone.now()
    fields: dict[str, Any] = {"heartbeat_at": now}
    if phase is not None:
        fields["phase"] = phase[:64]
    if progress is not None:
        fields["progress"] = min(1.0, max(0.0, float(progress)))
    if log:
        current = _locked_log(run_id, statuses=(RunStatus.RUNNING,))
        if current is None:
            return False
        fields["log"] = log_cap(current + _timestamped(log, now))
    return bool(TrainingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(**fields))


def training_run_search_record(*, run_id: int, search: dict[str, Any]) -> bool:
    """The ``auto`` search so far (every trial), written as it goes so the run page shows
    it live; also a heartbeat. False when the run is no longer running (nothing written)."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            search=search, heartbeat_at=timezone.now()
        )
    )


@transaction.atomic
def training_run_log_append(*, run_id: int, log: str) -> None:
    """Append timestamped lines to a run's log whatever its status: for what happens after
    a run finished (the retention it triggers), which never changes its outcome."""
    current = (
        TrainingRun.objects.select_for_update()
        .filter(pk=run_id)
        .values_list("log", flat=True)
        .first()
    )
    if current is None:
        return
    updated = log_cap(current + _timestamped(log, timezone.now()))
    TrainingRun.objects.filter(pk=run_id).update(log=updated)


# --- Finishing -----------------------------------------------------------------------


@transaction.atomic
def training_run_succeed(
    *,
    run: TrainingRun,
    decision: str,
    decision_reason: str = "",
    version: ModelVersion | None = None,
    metrics: dict[str, Any] | None = None,
    data_stats: dict[str, Any] | None = None,
    gate_results: list[dict[str, Any]] | None = None,
    phase_timings: dict[str, float] | None = None,
) -> TrainingRun:
    """Finish a running run with its decision (promoted, kept_champion, rejected,
    candidate, dry_run). Raises ``TrainingRunNotRunning`` when the run was reaped or
    finished meanwhile."""
    if decision not in Decision.values or decision == Decision.NONE:
        raise ValueError(f"unknown decision {decision!r}")
    now = timezone.now()
    current = _locked_log(run.pk, statuses=(RunStatus.RUNNING,))
    if current is None:
        raise TrainingRunNotRunning(
            f"Run #{run.pk} is no longer running; its result was not recorded.", run_id=run.pk
        )
    summary = f"succeeded: {decision}" + (f" ({decision_reason})" if decision_reason else "")
    fields: dict[str, Any] = {
        "status": RunStatus.SUCCEEDED,
        "finished_at": now,
        "heartbeat_at": now,
        "phase": "done",
        "progress": 1.0,
        "decision": decision,
        "decision_reason": decision_reason,
        "version": version,
        "log": log_cap(current + _timestamped(summary, now)),
    }
    for name, value in (
        ("metrics", metrics),
        ("data_stats", data_stats),
        ("gate_results", gate_results),
        ("phase_timings", phase_timings),
    ):
        if value is not None:
            fields[name] = value
    TrainingRun.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()
    return run


@transaction.atomic
def training_run_fail(
    *,
    run_id: int,
    error: str,
    traceback: str = "",
    phase_timings: dict[str, float] | None = None,
) -> bool:
    """Fail a queued or running run with its error. False when it had already finished."""
    now = timezone.now()
    current = _locked_log(run_id, statuses=LIVE_STATUSES)
    if current is None:
        return False
    fields: dict[str, Any] = {
        "status": RunStatus.FAILED,
        "finished_at": now,
        "error": error,
        "traceback": traceback,
        "log": log_cap(current + _timestamped(f"failed: {error}", now)),
    }
    if phase_timings is not None:
        fields["phase_timings"] = phase_timings
    return bool(TrainingRun.objects.filter(pk=run_id).update(**fields))


@transaction.atomic
def training_run_worker_lost(*, run_id: int, worker: str, error: str) -> bool:
    """The worker's main process saw the pool process ``worker`` (host:pid) that held a
    delivery of this run end without finishing it (SIGKILL, the OOM killer): fail the run
    now rather than after the reaper's stale delay. Only a run still queued (the process
    died before claiming it; Celery acknowledged the message, so no one else will run it)
    or running *on that process* is failed: a duplicate delivery that dies never fails
    the run another process holds. False when there was nothing to fail."""
    run = (
        TrainingRun.objects.select_for_update()
        .filter(pk=run_id)
        .filter(Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING, worker=worker[:255]))
        .first()
    )
    if run is None:
        return False
    now = timezone.now()
    run.status = RunStatus.FAILED
    run.finished_at = now
    run.error = error
    run.log = log_cap(run.log + _timestamped(f"failed: {error}", now))
    run.save(update_fields=["status", "finished_at", "error", "log"])
    logger.warning("training run %s failed: %s", run_id, error)
    return True


@transaction.atomic
def training_run_cancel(
    *, run: TrainingRun, actor: AbstractBaseUser | None = None, actor_label: str = ""
) -> TrainingRun:
    """Cancel a run: a queued one at once; a running one is flagged
    (``cancel_requested``) and the pipeline stops at its next phase boundary and calls
    ``training_run_finish_cancelled``."""
    locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
    now = timezone.now()
    who = _actor_name(actor, actor_label)
    if locked.status == RunStatus.QUEUED:
        locked.status = RunStatus.CANCELLED
        locked.finished_at = now
        locked.decision_reason = f"cancelled by {who} before it started"
        locked.log = log_cap(locked.log + _timestamped(f"cancelled by {who}", now))
        locked.save(update_fields=["status", "finished_at", "decision_reason", "log"])
    elif locked.status == RunStatus.RUNNING:
        if not locked.cancel_requested:
            locked.cancel_requested = True
            locked.log = log_cap(
                locked.log + _timestamped(f"cancel requested by {who}; stopping", now)
            )
            locked.save(update_fields=["cancel_requested", "log"])
    else:
        raise TrainingRunNotCancellable(
            f"Run #{locked.pk} is {locked.status}; only queued or running runs can be cancelled.",
            run_id=locked.pk,
            status=locked.status,
        )
    return locked


@transaction.atomic
def training_run_finish_cancelled(
    *,
    run_id: int,
    phase_timings: dict[str, float] | None = None,
    reason: str = "cancelled while running",
) -> bool:
    """The pipeline saw ``cancel_requested`` and stopped, or its process was interrupted
    (``reason`` says which): the run ends ``cancelled``."""
    now = timezone.now()
    current = _locked_log(run_id, statuses=(RunStatus.RUNNING,))
    if current is None:
        return False
    fields: dict[str, Any] = {
        "status": RunStatus.CANCELLED,
        "finished_at": now,
        "decision_reason": reason,
        "log": log_cap(current + _timestamped(f"stopped: {reason}", now)),
    }
    if phase_timings is not None:
        fields["phase_timings"] = phase_timings
    return bool(TrainingRun.objects.filter(pk=run_id).update(**fields))


@transaction.atomic
def training_runs_reap(*, stale_after: timedelta) -> int:
    """Fail running runs whose worker stopped heart-beating ``stale_after`` ago, which
    frees their recommender's slot. Queued runs are not touched: waiting for a busy
    worker is not a failure (a run that could not be enqueued is failed when sending it
    fails; ``training_runs_requeue`` sends one whose message was lost again). Returns how
    many runs were reaped."""
    now = timezone.now()
    cutoff = now - stale_after
    stale = (
        TrainingRun.objects.select_for_update(skip_locked=True)
        .filter(status=RunStatus.RUNNING)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
    )
    reaped = 0
    for run in stale:
        last_sign = run.heartbeat_at or run.started_at
        error = (
            f"worker lost: no heartbeat since {last_sign.isoformat()} "
            f"(worker {run.worker or 'unknown'}, stale after {stale_after})"
        )
        reaped += TrainingRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, heartbeat_at=run.heartbeat_at
        ).update(
            status=RunStatus.FAILED,
            finished_at=now,
            error=error,
            log=log_cap(run.log + _timestamped(f"failed: {error}", now)),
        )
        logger.warning("reaped training run %s: %s", run.pk, error)
    return reaped


def training_runs_requeue(*, queued_for: timedelta) -> int:
    """Send queued runs to the broker again when they were sent ``queued_for`` ago and no
    worker has claimed them. A broker that lost its messages (Redis restarted without
    persistence, a flushed database) would otherwise leave such a run queued for ever,
    holding its recommender's slot. A run merely waiting behind busy workers gets one
    more message per ``queued_for``, which its claim makes a no-op: a run never trains
    twice. Runs started in the foreground (no ``enqueued_at``) are never sent. Returns
    how many runs were sent again."""
    now = timezone.now()
    waiting = TrainingRun.objects.filter(
        status=RunStatus.QUEUED, enqueued_at__lt=now - queued_for
    ).values_list("pk", "enqueued_at")
    sent = 0
    for run_id, enqueued_at in waiting:
        note = (
            f"still queued {now - enqueued_at} after it was sent to the broker (its message "
            "may have been lost); sending it again"
        )
        with transaction.atomic():
            current = _locked_log(run_id, statuses=(RunStatus.QUEUED,))
            marked = current is not None and TrainingRun.objects.filter(
                pk=run_id, status=RunStatus.QUEUED, enqueued_at=enqueued_at
            ).update(enqueued_at=now, log=log_cap(current + _timestamped(note, now)))
        if not marked:  # claimed, cancelled or sent by another reaper meanwhile
            continue
        try:
            _send(run_id)
        except Exception:
            logger.warning("could not send queued training run %s again", run_id, exc_info=True)
            continue
        logger.warning("training run %s: %s", run_id, note)
        sent += 1
    return sent
