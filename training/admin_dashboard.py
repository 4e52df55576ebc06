"""The admin dashboard page. Its URL is added by the admin site (``recsite/admin_site.py``);
this module registers no admin, so the site can import it without a cycle."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from recommender.admin_pages import render_admin_page
from training.dashboard import dashboard_get


def dashboard_view(request: HttpRequest) -> TemplateResponse:
    return render_admin_page(
        request,
        None,
        "admin/recsite/dashboard.html",
        title="Dashboard",
        context={"dashboard": dashboard_get(now=timezone.now())},
    )
