"""The admin site: Django's, plus the dashboard page (``training.admin_dashboard``)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, path

from training.admin_dashboard import dashboard_view


class RecsiteAdminSite(admin.AdminSite):
    site_header = "recsite admin"
    site_title = "recsite admin"
    index_title = "Recommenders, training runs and model versions"
    index_template = "admin/recsite/index.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("dashboard/", self.admin_view(dashboard_view), name="dashboard"),
            *super().get_urls(),
        ]
