"""A staff member's day in the admin, in a real browser: log in, edit the schedule, start
runs and see them finish, compare two versions, promote with a reason, roll back, read
the dashboard and its charts, create an API key. A screenshot of each page is saved."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django_celery_beat.models import PeriodicTask

from recommender.models import (
    ModelVersion,
    PromotionEvent,
    PromotionKind,
    Recommender,
    VersionStatus,
)
from recommender.services import demo_data_generate
from tests.factories import RecommenderFactory
from training.models import RunStatus, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def shop(transactional_db, settings, tmp_path, eager_celery):
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    demo_data_generate(users=100, items=60, events=4000, seed=7, days=20)
    recommender = RecommenderFactory(name="default")
    for field, value in {
        "algorithm": "lightfm",
        "hyperparameters": {"lightfm": {"epochs": 3, "no_components": 8}},
        "num_threads": 1,
        "gate_min_users": 1,
        "gate_min_items": 1,
        "gate_min_events": 1,
        "gate_min_lift_over_popularity": -1.0,
        "promotion_policy": "manual",
    }.items():
        setattr(recommender, field, value)
    recommender.save()
    User.objects.create_superuser("admin", "admin@example.com", "admin-password")
    return recommender


def start_run_and_wait(page, live_server, recommender) -> None:
    page.goto(f"{live_server.url}/admin/recommender/recommender/{recommender.pk}/change/")
    page.click("#recsite-start-run button")  # trains inside the request (eager)
    page.wait_for_selector("#recsite-run-status")
    assert page.inner_text("#recsite-run-status") == "Succeeded", page.inner_text("#content")


def choose_action(page, live_server, action: str, numbers: list[int]) -> None:
    page.goto(f"{live_server.url}/admin/recommender/modelversion/")
    for number in numbers:
        link = page.get_by_role("link", name=f"v{number}", exact=True)
        page.locator("#result_list tbody tr", has=link).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_staff_journey(page, screenshot, live_server, shop):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-password")
    screenshot("01-login")
    page.click("input[type=submit]")
    page.wait_for_selector("#recsite-dashboard-link")
    screenshot("02-admin-index", doc=True)

    # The schedule: typed, previewed, saved, synced to beat.
    page.goto(f"{live_server.url}/admin/recommender/recommender/{shop.pk}/change/")
    page.fill("#id_schedule_cron", "15 4 * * *")
    page.check("#id_schedule_enabled")
    page.wait_for_selector("#recsite-cron-preview:has-text('04:15 UTC')")
    screenshot("03-recommender-schedule-preview", doc=True)
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    assert "04:15 UTC" in page.inner_text(".field-next_runs")
    assert PeriodicTask.objects.get(name="training: default").enabled
    screenshot("04-recommender-saved")

    # Two runs, each started by the button and finished in process.
    start_run_and_wait(page, live_server, shop)
    assert page.locator("#recsite-metrics").is_visible()
    assert page.locator("#recsite-gates").is_visible()
    screenshot("05-run-finished", doc=True)
    # The second run with more components, so the comparison has something to show.
    Recommender.objects.filter(pk=shop.pk).update(
        hyperparameters={"lightfm": {"epochs": 3, "no_components": 16}}
    )
    start_run_and_wait(page, live_server, shop)
    assert TrainingRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2
    page.goto(f"{live_server.url}/admin/training/trainingrun/")
    screenshot("06-run-list", doc=True)

    # Compare v1 and v2.
    choose_action(page, live_server, "compare_versions", [1, 2])
    page.wait_for_selector(".recsite-compare")
    compared = page.inner_text("#content").lower()
    assert "default v1" in compared and "default v2" in compared and "(differs)" in compared
    screenshot("07-compare", doc=True)

    # Promote v1 from the list (nothing active yet), then v2 from its page, with reasons.
    choose_action(page, live_server, "promote_version", [1])
    page.wait_for_selector("#recsite-confirm")
    page.fill("#id_reason", "first model")
    page.click("#recsite-confirm input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    v2 = ModelVersion.objects.get(recommender=shop, number=2)
    page.goto(f"{live_server.url}/admin/recommender/modelversion/{v2.pk}/change/")
    screenshot("08-version-candidate", doc=True)
    page.click("#recsite-promote input[type=submit]")
    page.wait_for_selector("#recsite-confirm")
    assert "v1 → v2" in page.inner_text("#recsite-confirm h2")
    screenshot("09-promote-confirmation", doc=True)
    page.fill("#id_reason", "v2 trained on more data")
    page.click("#recsite-confirm input[type=submit]")
    page.wait_for_selector("#recsite-audit")
    assert "v2 trained on more data" in page.inner_text("#recsite-audit")
    v2.refresh_from_db()
    assert v2.status == VersionStatus.ACTIVE
    screenshot("10-version-promoted", doc=True)

    # Roll back to v1.
    page.click("#recsite-rollback input[type=submit]")
    page.wait_for_selector("#recsite-confirm")
    assert "v2 → v1" in page.inner_text("#recsite-confirm h2")
    screenshot("11-rollback-confirmation", doc=True)
    page.fill("#id_reason", "conversion dropped")
    page.click("#recsite-confirm input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    rollback = PromotionEvent.objects.latest("id")
    assert (rollback.kind, rollback.to_version.number, rollback.reason) == (
        PromotionKind.ROLLBACK,
        1,
        "conversion dropped",
    )
    screenshot("12-version-rolled-back", doc=True)
    page.goto(f"{live_server.url}/admin/recommender/modelversion/")
    screenshot("13-version-list")

    # The dashboard with its charts.
    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_selector("#serving-processes")
    assert page.locator("svg.recsite-chart").count() >= 3
    assert "v1" in page.inner_text("#recommender-default")
    assert "04:15 UTC" in page.inner_text("#recommender-default")
    screenshot("14-dashboard", doc=True)

    # An API key for a client app, shown once.
    page.goto(f"{live_server.url}/admin/recommender/apikey/add/")
    page.fill("#id_name", "web-frontend")
    page.check("input[value='recommendations:read']")
    page.click("#apikey_form input[type=submit]")
    page.wait_for_selector("#recsite-new-key")
    screenshot("15-api-key-created", doc=True)
