"""The helper the custom admin pages (run, version, compare, confirmation pages, the
dashboard) share to render inside the admin chrome."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.http import HttpRequest
from django.template.response import TemplateResponse


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


def admin_actor_label(request: HttpRequest) -> str:
    """How an audit row names a staff member acting in the admin."""
    return f"admin:{request.user.get_username()}"
