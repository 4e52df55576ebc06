"""Domain errors of training runs and schedules (see ``recommender.exceptions``)."""

from __future__ import annotations

from recommender.exceptions import RecsiteError


class TrainingAlreadyRunning(RecsiteError):
    code = "training_already_running"
    status = 409
    default_message = "A run of this recommender is already queued or running."


class TrainingRunNotFound(RecsiteError):
    code = "training_run_not_found"
    status = 404
    default_message = "No training run has that id."


class TrainingRunNotCancellable(RecsiteError):
    code = "training_run_not_cancellable"
    status = 409
    default_message = "Only a queued or running run can be cancelled."


class TrainingRunNotRunning(RecsiteError):
    code = "training_run_not_running"
    status = 409
    default_message = "The run is no longer running (reaped, cancelled or finished)."


class InvalidTrainingOptions(RecsiteError):
    code = "invalid_training_options"
    status = 400
    default_message = "Invalid training run options."


class InvalidSchedule(RecsiteError):
    code = "invalid_schedule"
    status = 400
    default_message = "The schedule is not a valid cron expression."


class TrainingRunNotQueued(RecsiteError):
    code = "broker_unavailable"
    status = 503
    default_message = "The run could not be queued: the task broker is unavailable."


class TrainingDatabaseUnavailable(RecsiteError):
    code = "training_database_unavailable"
    status = 503
    default_message = (
        "The training database (RECSITE_TRAINING_DATABASE_URL) does not answer: the run "
        "read nothing and changed nothing."
    )
