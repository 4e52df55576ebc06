"""The online loop's domain errors (rendered by ``recsite.api_errors`` like every
``RecsiteError``). Invalid experiment settings are Django ``ValidationError``s keyed by
field, so the API's 400 and the admin form name the field."""

from __future__ import annotations

from recommender.exceptions import RecsiteError


class ExperimentNotFound(RecsiteError):
    code = "experiment_not_found"
    status = 404
    default_message = "No experiment has that id."


class ExperimentAlreadyRunning(RecsiteError):
    code = "experiment_already_running"
    status = 409
    default_message = "This recommender already runs an experiment; stop it first."


class ExperimentNotRunning(RecsiteError):
    code = "experiment_not_running"
    status = 409
    default_message = "This experiment is not running."


class ExperimentNotPromotable(RecsiteError):
    code = "experiment_not_promotable"
    status = 409
    default_message = "This arm cannot be promoted."
