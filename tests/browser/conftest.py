"""Browser tests: Playwright driving Debian's Chromium (``/usr/bin/chromium``; never a
downloaded browser). They skip with the reason when Chromium or Playwright is missing,
except under ``CI=true``, where a missing browser fails the run instead of hiding it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# A laptop screen: every admin page must fit its width.
LAPTOP = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
STAFF_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "staff"


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install -r requirements-dev.txt"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator:
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls
    # are still synchronous, so Django's async-safety check would refuse them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(60_000)  # a started run trains inside the request (eager)
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    """``screenshot("03-run")`` saves the whole page under test-output/screenshots/.

    ``doc=True`` marks a screenshot docs/STAFF.md shows: with ``RECSITE_STAFF_SCREENSHOTS=1``
    it is also written to docs/staff/ as what the screen shows (1,280 x 800, small PNGs),
    so a normal test run never rewrites the docs."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for_docs = os.environ.get("RECSITE_STAFF_SCREENSHOTS") == "1"

    def take(name: str, *, doc: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if doc and for_docs:
            STAFF_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(STAFF_SCREENSHOTS / f"{name}.png"), full_page=False)
        return path

    return take


@pytest.fixture
def eager_celery(settings) -> Iterator[None]:
    """Tasks run in the process that sends them, so a run started in the admin trains
    inside the live server."""
    from recsite.celery import app
    from training import tasks  # noqa: F401  (registered, as a worker's autodiscovery does)

    # Read before changing the Django setting: Celery loads its config from the settings
    # lazily, and would otherwise take (and later "restore") the eager value.
    previous = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
