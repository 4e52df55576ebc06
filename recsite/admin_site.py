"""The admin site: Django's, plus the dashboard page (``training.admin_dashboard``), minus
django-celery-beat's raw screens in the menu.

django-celery-beat registers admin screens for its tables (periodic tasks, crontabs,
intervals, clocked and solar schedules). Its rows for training are written by the
recommender's page (``training.schedules.recommender_schedule_sync``), which overwrites
edits made there; so the screens are not in the menu, and only superusers may open them,
by URL, to look at beat's own state."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.db.models.base import ModelBase
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from training.admin_dashboard import dashboard_view
from training.control_room import CTR_DAYS, control_room_get

# Apps whose admin screens are left out of the menu and open to superusers only.
SUPERUSER_ONLY_APPS = frozenset({"django_celery_beat"})


class SuperusersOnly:
    """A ModelAdmin mixin: every permission (menu entry, view, add, change, delete) is
    the superuser's alone, whatever the user's model permissions say."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest, *args) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)


class RecsiteAdminSite(admin.AdminSite):
    site_header = "recsite admin"
    site_title = "recsite admin"
    index_title = "Recommenders, training runs and model versions"
    index_template = "admin/recsite/index.html"

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        """Django's index with the control room on top: each recommender's active
        version, last run, next run and online CTR (``training.control_room``), for
        staff who may view recommenders."""
        allowed = request.user.has_perm("recommender.view_recommender")
        context = {
            "control_room": control_room_get(now=timezone.now()) if allowed else None,
            "ctr_days": CTR_DAYS,
            "stale_after_hours": settings.RECSITE_MODEL_STALE_AFTER_HOURS,
            **(extra_context or {}),
        }
        return super().index(request, context)

    def get_urls(self) -> list[URLPattern]:
        return [
            path("dashboard/", self.admin_view(dashboard_view), name="dashboard"),
            *super().get_urls(),
        ]

    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        """Django's, except that a model of a ``SUPERUSER_ONLY_APPS`` app gets its admin
        class with ``SuperusersOnly`` in front (whoever registers it, whenever)."""
        single = isinstance(model_or_iterable, ModelBase)
        models = [model_or_iterable] if single else list(model_or_iterable)
        if any(model._meta.app_label in SUPERUSER_ONLY_APPS for model in models):
            base = admin_class or admin.ModelAdmin
            admin_class = type(
                base.__name__, (SuperusersOnly, base), {"__module__": base.__module__}
            )
        super().register(models, admin_class, **options)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        """The menu (index page and sidebar: no ``app_label``) without the
        ``SUPERUSER_ONLY_APPS``; an app's own index page (a superuser typing its URL)
        still lists its models."""
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        return [app for app in apps if app["app_label"] not in SUPERUSER_ONLY_APPS]
