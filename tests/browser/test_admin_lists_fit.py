"""Every admin list page fits a 1,280 px laptop screen: the index, the dashboard and each
changelist, with rows in them, open without a horizontal scroll bar. A screenshot of
each is saved."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

from tests.browser.control_room import control_room_create

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# What scrolls sideways: the page itself, or any box inside it (Django's changelist table
# sits in a box that scrolls, which hides a too-wide table from the page's own width).
OVERFLOW_JS = """() => {
  const root = document.documentElement;
  const found = [];
  if (root.scrollWidth > root.clientWidth) {
    found.push(`page: ${root.scrollWidth} > ${root.clientWidth}`);
  }
  for (const e of document.querySelectorAll('body *')) {
    const style = getComputedStyle(e).overflowX;
    if ((style === 'auto' || style === 'scroll') && e.scrollWidth > e.clientWidth + 1) {
      found.push(`${e.tagName.toLowerCase()}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`);
    }
  }
  return found;
}"""


def changelist_urls() -> list[str]:
    """The index and the dashboard, then every registered model's list."""
    return [reverse("admin:index"), reverse("admin:dashboard")] + sorted(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
    )


def log_in(page, live_server) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#content")


def test_every_list_page_fits_a_laptop_screen(
    page, screenshot, live_server, transactional_db, settings, tmp_path
):
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    control_room_create()
    User.objects.create_superuser("admin", "admin@example.com", "admin-password")
    log_in(page, live_server)
    assert page.viewport_size["width"] == 1280

    overflowing = {}
    for url in changelist_urls():
        page.goto(f"{live_server.url}{url}")
        page.wait_for_selector("#changelist, #content-main")
        name = "list-" + (url.removeprefix("/admin/").strip("/").replace("/", "-") or "index")
        screenshot(name)
        found = page.evaluate(OVERFLOW_JS)
        if found:
            overflowing[url] = found
    assert not overflowing, "\n".join(f"{url}: {found}" for url, found in overflowing.items())
