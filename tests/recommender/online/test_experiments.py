"""Experiments: start (validations with field errors), stop, promote the winner through
the registry, each with its audit row and a serving bump after commit; the API."""

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError

from recommender.models import ModelVersion, PromotionEvent, Scope, VersionStatus
from recommender.online.exceptions import (
    ExperimentAlreadyRunning,
    ExperimentNotPromotable,
    ExperimentNotRunning,
)
from recommender.online.experiment_figures import experiment_figures, experiment_winner
from recommender.online.experiments import (
    TreatmentSpec,
    experiment_create,
    experiment_promote,
    experiment_stop,
)
from recommender.online.models import ExperimentEvent, ExperimentStatus, ExperimentUserStat
from recommender.services import model_version_promote, model_version_reject
from recommender.serving.signal import active_version_key
from tests.factories import ModelVersionFactory, RecommenderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def recommender(artifact_dir):
    """default: v1 active, v2 and v3 candidates."""
    recommender = RecommenderFactory(name="default")
    v1, _, _ = (ModelVersionFactory(recommender=recommender) for _ in range(3))
    model_version_promote(version=v1, reason="setup")
    return recommender


@pytest.fixture
def trainer(make_api_client):
    return make_api_client(Scope.TRAINING_WRITE)


def start(recommender, *treatments, **extra):
    specs = [TreatmentSpec(*t) if isinstance(t, tuple) else t for t in treatments]
    return experiment_create(recommender=recommender, name="ranker v2", treatments=specs, **extra)


def test_an_experiment_pits_the_active_version_against_its_treatments(recommender):
    experiment = start(recommender, (2, 0.3), (3, 0.2))
    arms = [(a.name, a.version.number, a.share) for a in experiment.arms.all()]
    assert arms == [("control", 1, 0.5), ("treatment-1", 2, 0.3), ("treatment-2", 3, 0.2)]
    assert experiment.status == ExperimentStatus.RUNNING and experiment.salt
    assert ExperimentEvent.objects.get().kind == "create"


def test_a_treatment_may_be_another_recommenders_version(recommender, artifact_dir):
    other = ModelVersionFactory(recommender=RecommenderFactory(name="other"))
    experiment = start(
        recommender, TreatmentSpec(version=other.number, share=0.5, recommender="other")
    )
    assert experiment.arms.get(name="treatment-1").version == other


@pytest.mark.parametrize(
    ("treatments", "field", "message"),
    [
        ([(9, 0.5)], "treatments", "has no version 9"),
        ([(1, 0.5)], "treatments", "is the control"),
        ([(2, 0.6), (3, 0.4)], "treatments", "leave the control"),
        ([(2, 0.001)], "treatments", "share must be"),
        ([], "treatments", "Give 1 to 4"),
        ([(2, 0.5), (2, 0.2)], "treatments", "already an arm"),
    ],
)
def test_invalid_settings_are_refused_on_their_field(recommender, treatments, field, message):
    with pytest.raises(ValidationError) as raised:
        start(recommender, *treatments)
    assert message in " ".join(raised.value.message_dict[field])


def test_a_rejected_version_is_no_treatment(recommender):
    model_version_reject(version=recommender.versions.get(number=2), reason="bad")
    with pytest.raises(ValidationError, match="rejected"):
        start(recommender, (2, 0.5))


def test_without_an_active_version_there_is_no_control(artifact_dir):
    recommender = RecommenderFactory(name="fresh")
    ModelVersionFactory(recommender=recommender)
    with pytest.raises(ValidationError) as raised:
        start(recommender, (1, 0.5))
    assert "no active version" in raised.value.message_dict["recommender"][0]


def test_a_recommender_runs_one_experiment_at_a_time(recommender):
    start(recommender, (2, 0.5))
    with pytest.raises(ExperimentAlreadyRunning):
        start(recommender, (3, 0.5))


def test_stopping_audits_and_bumps_serving_after_commit(
    recommender, django_capture_on_commit_callbacks, settings
):
    experiment = start(recommender, (2, 0.5))
    before = cache.get(active_version_key(recommender.pk))
    with django_capture_on_commit_callbacks(execute=True):
        stopped = experiment_stop(experiment=experiment, actor_label="test", reason="enough")
    assert stopped.status == ExperimentStatus.STOPPED and stopped.stopped_at
    assert cache.get(active_version_key(recommender.pk)) != before
    assert ExperimentEvent.objects.filter(kind="stop", reason="enough").exists()
    with pytest.raises(ExperimentNotRunning):
        experiment_stop(experiment=stopped)


def test_the_winner_is_promoted_through_the_registry_with_the_experiment_in_the_audit(recommender):
    experiment = start(recommender, (2, 0.5))
    with pytest.raises(ExperimentNotPromotable):
        experiment_promote(experiment=experiment, arm="treatment-1")
    experiment = experiment_stop(experiment=experiment)
    promotion = experiment_promote(experiment=experiment, arm="treatment-1", actor_label="test")
    assert ModelVersion.objects.get(status=VersionStatus.ACTIVE).number == 2
    assert f"experiment {experiment.pk}" in promotion.reason
    audit = ExperimentEvent.objects.get(kind="promote")
    assert (audit.arm, audit.promotion) == (
        "treatment-1",
        PromotionEvent.objects.get(pk=promotion.pk),
    )


def test_the_control_or_an_unknown_arm_cannot_be_promoted(recommender):
    experiment = experiment_stop(experiment=start(recommender, (2, 0.5)))
    for arm in ("control", "nope"):
        with pytest.raises(ExperimentNotPromotable):
            experiment_promote(experiment=experiment, arm=arm)


def add_users(experiment, arm, users, impressions, clicks_per_user):
    ExperimentUserStat.objects.bulk_create(
        ExperimentUserStat(
            experiment=experiment,
            arm=arm,
            user_external_id=f"{arm}-{n}",
            impressions=impressions,
            clicks=clicks_per_user(n),
        )
        for n in range(users)
    )


def test_figures_give_each_arm_its_users_rate_and_a_verdict(recommender):
    experiment = start(recommender, (2, 0.5))
    add_users(experiment, "control", 2000, 10, lambda n: 1 if n % 10 == 0 else 0)
    add_users(experiment, "treatment-1", 2000, 10, lambda n: 1 if n % 2 == 0 else 0)
    figures = experiment_figures(experiment=experiment)
    control, treatment = figures.arms
    assert (control.users, control.impressions, control.clicks) == (2000, 20_000, 200)
    assert control.verdict is None
    assert treatment.rate.value == pytest.approx(0.05)
    assert treatment.rate.low < 0.05 < treatment.rate.high
    assert treatment.verdict.text == "better"
    assert not figures.sample_ratio.alarm
    assert experiment_winner(figures) == "treatment-1"


def test_an_experiment_without_data_says_no_difference_yet(recommender):
    figures = experiment_figures(experiment=start(recommender, (2, 0.5)))
    assert figures.arms[1].verdict.text.startswith("no difference yet")
    assert experiment_winner(figures) is None


# --- API -------------------------------------------------------------------------------


def test_the_minimal_body_starts_an_experiment(recommender, trainer):
    response = trainer.post(
        "/api/v1/experiments",
        {"recommender": "default", "name": "v2 test", "treatments": [{"version": 2, "share": 0.5}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] and body["status"] == "running"
    assert [(a["name"], a["version"], a["share"]) for a in body["arms"]] == [
        ("control", 1, 0.5),
        ("treatment-1", 2, 0.5),
    ]
    assert ExperimentEvent.objects.get().actor_label.startswith("api-key:")


def test_an_invalid_experiment_is_a_400_naming_the_field(recommender, trainer):
    response = trainer.post(
        "/api/v1/experiments",
        {"name": "x", "treatments": [{"version": 1, "share": 0.5}]},
        format="json",
    )
    assert response.status_code == 400
    assert "is the control" in " ".join(response.json()["error"]["detail"]["treatments"])


def test_a_second_experiment_is_a_409(recommender, trainer):
    body = {"name": "x", "treatments": [{"version": 2, "share": 0.5}]}
    assert trainer.post("/api/v1/experiments", body, format="json").status_code == 201
    response = trainer.post("/api/v1/experiments", body, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "experiment_already_running",
    )


def test_get_shows_per_arm_figures_and_stop_ends_it(recommender, trainer):
    experiment = start(recommender, (2, 0.5))
    add_users(experiment, "treatment-1", 3, 4, lambda n: 1)
    body = trainer.get(f"/api/v1/experiments/{experiment.pk}").json()
    treatment = body["arms"][1]
    assert (treatment["users"], treatment["impressions"], treatment["clicks"]) == (3, 12, 3)
    assert treatment["verdict"]["label"]
    stopped = trainer.post(f"/api/v1/experiments/{experiment.pk}/stop", {}, format="json")
    assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")
    again = trainer.post(f"/api/v1/experiments/{experiment.pk}/stop", {}, format="json")
    assert again.status_code == 409
    assert trainer.get("/api/v1/experiments/999999").status_code == 404


def test_experiments_need_the_training_scope(recommender, make_api_client):
    reader = make_api_client(Scope.RECOMMENDATIONS_READ)
    assert reader.get("/api/v1/experiments/1").status_code == 403
    assert reader.post("/api/v1/experiments", {}, format="json").status_code == 403
