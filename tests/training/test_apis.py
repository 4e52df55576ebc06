"""Training runs, model versions and the active model over the API."""

import pytest

from recommender.models import Recommender, Scope, VersionStatus
from tests.factories import ModelVersionFactory, RecommenderFactory, TrainingRunFactory
from training.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def trainer(make_api_client):
    return make_api_client(Scope.TRAINING_WRITE)


@pytest.fixture(autouse=True)
def default_is_lightfm(db):
    """These runs check LightFM's overrides against the recommender's family (a fresh
    install's ``default`` is auto, which takes none)."""
    Recommender.objects.filter(name="default").update(algorithm="lightfm")


def test_start_a_run_answers_202_and_enqueues_after_commit(
    trainer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = trainer.post(
            "/api/v1/training-runs",
            {"no_promote": True, "overrides": {"epochs": 3}},
            format="json",
        )
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["trigger"], body["recommender"]) == ("queued", "api", "default")
    assert body["options"] == {"dry_run": False, "no_promote": True, "overrides": {"epochs": 3}}
    assert body["triggered_by_label"].startswith("api-key:")
    assert len(callbacks) == 1


def test_a_second_start_gets_409_with_the_live_run(trainer):
    first = trainer.post("/api/v1/training-runs", {}, format="json").json()
    response = trainer.post("/api/v1/training-runs", {}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "training_already_running"
    assert error["detail"]["run_id"] == first["id"]
    assert TrainingRun.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"overrides": {"epochs": 0}},
        {"overrides": {"loss": "hinge"}},
        {"recommender": "no such thing!"},
        {"dry_run": "perhaps"},
    ],
)
def test_bad_run_requests_get_400(trainer, body):
    response = trainer.post("/api/v1/training-runs", body, format="json")
    assert response.status_code == 400
    assert not TrainingRun.objects.exists()


def test_an_unknown_recommender_is_404(trainer):
    response = trainer.post("/api/v1/training-runs", {"recommender": "nope"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "recommender_not_found"


def test_starting_needs_the_training_scope(make_api_client):
    reader = make_api_client(Scope.RECOMMENDATIONS_READ)
    assert reader.post("/api/v1/training-runs", {}, format="json").status_code == 403
    assert reader.get("/api/v1/training-runs").status_code == 200


def test_run_detail_and_list(trainer, django_assert_max_num_queries):
    recommender = RecommenderFactory(name="books")
    runs = [
        TrainingRunFactory(recommender=recommender, status=RunStatus.SUCCEEDED) for _ in range(5)
    ]
    detail = trainer.get(f"/api/v1/training-runs/{runs[0].pk}")
    assert detail.status_code == 200
    assert detail.json()["id"] == runs[0].pk
    with django_assert_max_num_queries(6):
        listing = trainer.get("/api/v1/training-runs?recommender=books&limit=2").json()
    assert listing["count"] == 5
    assert [run["id"] for run in listing["results"]] == [runs[4].pk, runs[3].pk]
    assert trainer.get("/api/v1/training-runs/999999").status_code == 404


def test_model_versions_and_the_active_one(trainer):
    recommender = RecommenderFactory(name="music")
    ModelVersionFactory(recommender=recommender, number=1, status=VersionStatus.RETIRED)
    ModelVersionFactory(
        recommender=recommender, number=2, status=VersionStatus.ACTIVE, metrics={"auc": 0.9}
    )
    versions = trainer.get("/api/v1/model-versions?recommender=music").json()
    assert [v["number"] for v in versions["results"]] == [2, 1]
    active = trainer.get("/api/v1/models/active?recommender=music").json()
    assert (active["version"], active["metrics"]) == (2, {"auc": 0.9})
    assert active["age_seconds"] >= 0


def test_no_active_version_is_404_with_a_code(trainer):
    response = trainer.get("/api/v1/models/active")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_active_version"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"epochs": 1001}, "epochs", "1001 is out of range: give a number from 1 to 1000."),
        ({"no_components": 513}, "no_components", "give a number from 1 to 512"),
        ({"num_threads": 65}, "num_threads", "give a number from 1 to 64"),
        ({"learning_rate": 0}, "learning_rate", "0 is out of range: give a number greater than 0"),
        ({"loss": "hinge"}, "loss", "'hinge' is not allowed: give one of warp, bpr"),
        ({"epoch": 5}, "epoch", "'epoch' is not a hyper-parameter of lightfm (no_components,"),
    ],
)
def test_out_of_range_overrides_are_400_naming_the_field(trainer, overrides, field, message):
    response = trainer.post("/api/v1/training-runs", {"overrides": overrides}, format="json")
    assert response.status_code == 400, response.content
    detail = response.json()["error"]["detail"]
    assert message in " ".join(detail["overrides"][field])
    assert not TrainingRun.objects.exists()


def test_the_schema_documents_each_familys_overrides(trainer):
    schema = trainer.get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    run = components["TrainingRunInputRequest"]["properties"]
    ref = run["algorithm"]["allOf"][0]["$ref"]  # the enum, with the field's description
    algorithms = components[ref.rsplit("/", 1)[1]]["enum"]
    assert "ease" in algorithms and "auto" in algorithms
    text = run["overrides"]["description"]
    assert "num_threads (from 1 to 64; default 2)" in text
    assert "lightfm: no_components (from 1 to 512; default 32)" in text
    assert "ease: lambda (greater than 0 and at most 1e+07; default 300.0)" in text
    assert "auto (searches the families itself): tuning_budget_seconds (from 1 to 86400" in text


def test_an_auto_run_takes_a_budget_and_refuses_hyper_parameters(trainer):
    response = trainer.post(
        "/api/v1/training-runs",
        {"algorithm": "auto", "overrides": {"lambda": 50, "tuning_budget_seconds": 0}},
        format="json",
    )
    assert response.status_code == 400
    detail = response.json()["error"]["detail"]["overrides"]
    assert "searches the families' hyper-parameters itself" in detail["lambda"][0]
    assert "0 is out of range" in detail["tuning_budget_seconds"][0]
    response = trainer.post(
        "/api/v1/training-runs",
        {"algorithm": "auto", "overrides": {"tuning_budget_seconds": 30}},
        format="json",
    )
    assert response.status_code == 202, response.content
    run = TrainingRun.objects.get()
    detail = trainer.get(f"/api/v1/training-runs/{run.pk}").json()
    assert detail["search"] == {}  # filled as the run searches
    assert "search" not in trainer.get("/api/v1/training-runs").json()["results"][0]
    assert run.hyperparameters == {
        "family": "auto",
        "tuning_budget_seconds": 30,
        "num_threads": 2,
        "random_seed": 42,
    }


def test_a_run_of_another_family_checks_its_overrides_against_that_family(trainer):
    response = trainer.post(
        "/api/v1/training-runs",
        {"algorithm": "ease", "overrides": {"lambda": -1, "epochs": 3}},
        format="json",
    )
    assert response.status_code == 400
    detail = response.json()["error"]["detail"]["overrides"]
    assert "-1 is out of range" in detail["lambda"][0]
    assert "'epochs' is not a hyper-parameter of ease" in detail["epochs"][0]
    response = trainer.post(
        "/api/v1/training-runs", {"algorithm": "ease", "overrides": {"lambda": 50}}, format="json"
    )
    assert response.status_code == 202
    run = TrainingRun.objects.get()
    assert (run.options["algorithm"], run.hyperparameters["lambda"]) == ("ease", 50.0)
