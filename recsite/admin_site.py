"""The admin site: Django's, plus the dashboard page and helpers the custom admin pages
(run, version, compare, confirmation pages) share."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path


class RecsiteAdminSite(admin.AdminSite):
    site_header = "recsite admin"
    site_title = "recsite admin"
    index_title = "Recommenders, training runs and model versions"
    index_template = "admin/recsite/index.html"

    def get_urls(self) -> list[URLPattern]:
        # Imported here: the training app's admin module imports this site's registry.
        from training.admin import dashboard_view

        return [
            path("dashboard/", self.admin_view(dashboard_view), name="dashboard"),
            *super().get_urls(),
        ]


def render_admin_page(
    request: HttpRequest,
    model_admin: ModelAdmin | None,
    template: str,
    *,
    title: str,
    context: dict[str, Any],
    status: int = 200,
) -> TemplateResponse:
    """A custom page inside the admin chrome (header, sidebar, breadcrumbs of the model)."""
    site = model_admin.admin_site if model_admin else admin.site
    base = {**site.each_context(request), "title": title}
    if model_admin is not None:
        opts = model_admin.model._meta
        base.update(opts=opts, app_label=opts.app_label)
    return TemplateResponse(request, template, {**base, **context}, status=status)
