"""Admin for recommenders (configuration, schedule, "Start a run now"), training runs
(list, live detail page, cancel). The dashboard page is ``training.admin_dashboard``.

Buttons call the services the CLI and API call: ``training_run_create``,
``training_run_cancel``, ``recommender_schedule_sync``. State changes are POST-only
(``admin_view`` checks CSRF) and need the ``training.start_training_run`` permission
(which also allows cancelling); runs themselves are read-only history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from recommender.admin import age_text, status_badge
from recommender.admin_pages import render_admin_page
from recommender.comparison import metric_name, metric_value
from recommender.config_schema import SETTINGS, time_zone_names
from recommender.models import ModelVersion, Recommender, VersionStatus, validate_schedule_cron
from training import charts
from training.cron import cron_next_runs
from training.dashboard import schedule_next_runs
from training.exceptions import (
    TrainingAlreadyRunning,
    TrainingRunNotCancellable,
    TrainingRunNotQueued,
)
from training.forms import RecommenderForm, family_fieldsets
from training.models import Decision, TrainingRun, Trigger
from training.reports import champion_note, hyperparameters_text, metric_table
from training.schedules import recommender_schedule_sync
from training.search_page import search_section
from training.services import training_run_cancel, training_run_create

START_PERMISSION = "training.start_training_run"
# Decisions as the run list shows them (the full wording is on the run page).
SHORT_DECISIONS = {
    Decision.PROMOTED: "Promoted",
    Decision.KEPT_CHAMPION: "Kept the champion",
    Decision.REJECTED: "Rejected",
    Decision.CANDIDATE: "Candidate",
    Decision.DRY_RUN: "Dry run",
}


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _zoned(moment: datetime) -> str:
    """A run time in its schedule's zone and in UTC: "2025-03-10 18:30 EDT (22:30 UTC)"."""
    if moment.utcoffset() == timedelta(0) and moment.tzname() in ("UTC", None):
        return _utc(moment)
    utc = moment.astimezone(UTC)
    utc_text = utc.strftime("%H:%M" if utc.date() == moment.date() else "%Y-%m-%d %H:%M")
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()} ({utc_text} UTC)"


def _stats_rows(stats: dict) -> list[tuple[str, str]]:
    """Data stats as (name, text) rows; nested dicts (the split counts) on one line.
    Done here because a template would read ``stats.items`` as the ``items`` count."""
    return [
        (
            name,
            "; ".join(f"{k}: {v}" for k, v in value.items())
            if isinstance(value, dict)
            else str(value),
        )
        for name, value in stats.items()
    ]


# --- Recommenders --------------------------------------------------------------------


@admin.register(Recommender)
class RecommenderAdmin(admin.ModelAdmin):
    form = RecommenderForm
    change_form_template = "admin/recommender/recommender/change_form.html"
    list_display = (
        "name",
        "active_version",
        "promotion_policy",
        "schedule",
        "next_run",
        "last_run",
    )
    readonly_fields = ("next_runs",)
    fieldsets = (
        (None, {"fields": ("name", "description")}),
        (
            "Schedule",
            {
                "fields": ("schedule_cron", "schedule_timezone", "schedule_enabled", "next_runs"),
                "description": "Five cron fields (minute hour day-of-month month day-of-week) "
                "read in the schedule's time zone. This is where the recommender's schedule "
                "lives: saving updates the beat entry (Periodic tasks), which is kept in "
                "step with these fields; edit the schedule here, not there.",
            },
        ),
        (
            "Model",
            {
                "fields": ("algorithm", "tuning_budget_seconds", ("num_threads", "random_seed")),
                "description": "The family fitted by every run (its hyper-parameters below), "
                "or auto: search the families and their hyper-parameters for "
                "tuning_budget_seconds on a validation split of the training window, then "
                "fit, evaluate and gate the winner.",
            },
        ),
        *family_fieldsets(),
        (
            "Data",
            {
                "fields": (
                    "event_weights",
                    "duplicate_aggregation",
                    "window_days",
                    ("use_item_features", "use_user_features"),
                )
            },
        ),
        (
            "Evaluation",
            {"fields": ("holdout_strategy", "holdout_fraction", ("eval_k", "key_metric"))},
        ),
        (
            "Quality gates",
            {
                "fields": (
                    ("gate_min_users", "gate_min_items", "gate_min_events"),
                    "gate_min_lift_over_popularity",
                    "champion_tolerance",
                    "champion_no_overlap_policy",
                )
            },
        ),
        (
            "Policy and retention",
            {"fields": ("promotion_policy", "refit_on_full_data", "versions_kept")},
        ),
        (
            "Online metrics",
            {
                "fields": ("click_event_types", "conversion_event_types"),
                "description": "Which attributed events count as clicks and as conversions.",
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        active = ModelVersion.objects.filter(
            recommender=OuterRef("pk"), status=VersionStatus.ACTIVE
        )
        last = TrainingRun.objects.filter(recommender=OuterRef("pk")).order_by("-created_at", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_number=Subquery(active.values("number")[:1]),
                last_run_id=Subquery(last.values("pk")[:1]),
                last_run_status=Subquery(last.values("status")[:1]),
            )
        )

    @admin.display(description="Active version")
    def active_version(self, obj: Recommender) -> str:
        return f"v{obj.active_number}" if obj.active_number else "none yet"

    @admin.display(description="Schedule")
    def schedule(self, obj: Recommender) -> str:
        if not obj.schedule_cron:
            return "none"
        state = "on" if obj.schedule_enabled else "off"
        return f"{obj.schedule_cron} {obj.schedule_timezone} ({state})"

    @admin.display(description="Next run")
    def next_run(self, obj: Recommender) -> str:
        runs = schedule_next_runs(obj, now=timezone.now(), count=1)
        return _zoned(runs[0]) if runs else "—"

    @admin.display(description="Last run")
    def last_run(self, obj: Recommender) -> str:
        if not obj.last_run_id:
            return "—"
        url = reverse("admin:training_trainingrun_change", args=[obj.last_run_id])
        return format_html('<a href="{}">#{}</a> {}', url, obj.last_run_id, obj.last_run_status)

    @admin.display(description="Next 3 runs")
    def next_runs(self, obj: Recommender) -> str:
        if obj.pk is None or not obj.schedule_cron:
            return "No schedule."
        if obj.schedule_timezone not in time_zone_names():  # a form being corrected
            return "—"
        runs = cron_next_runs(
            obj.schedule_cron,
            after=timezone.now(),
            count=3,
            tz=ZoneInfo(obj.schedule_timezone),
        )
        text = ", ".join(_zoned(run) for run in runs) or "none in the next five years"
        return text if obj.schedule_enabled else f"Switched off (would be: {text})"

    def save_model(self, request: HttpRequest, obj: Recommender, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        recommender_schedule_sync(recommender=obj)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/start-run/",
                view(require_POST(self.start_run_view)),
                name="recommender_recommender_start_run",
            ),
            path(
                "cron-preview/",
                view(require_GET(self.cron_preview_view)),
                name="recommender_recommender_cron_preview",
            ),
            *super().get_urls(),
        ]

    def render_change_form(
        self, request: HttpRequest, context: dict, *args, **kwargs
    ) -> HttpResponse:
        context["can_start_run"] = request.user.has_perm(START_PERMISSION)
        return super().render_change_form(request, context, *args, **kwargs)

    def start_run_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        recommender = get_object_or_404(Recommender, pk=object_id)
        try:
            run = training_run_create(
                recommender=recommender, trigger=Trigger.ADMIN, actor=request.user
            )
        except TrainingAlreadyRunning as exc:
            self.message_user(
                request,
                f"Not started: {exc.message} Only one run per recommender at a time; "
                "this is the one in progress.",
                messages.ERROR,
            )
            return HttpResponseRedirect(
                reverse("admin:training_trainingrun_change", args=[exc.detail["run_id"]])
            )
        except TrainingRunNotQueued as exc:  # the run was recorded, and failed
            self.message_user(request, f"Not started: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:training_trainingrun_change", args=[exc.detail["run_id"]])
            )
        self.message_user(
            request, f"Run #{run.pk} of {recommender.name!r} queued.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))

    def cron_preview_view(self, request: HttpRequest) -> JsonResponse:
        """The next 3 run times of a cron expression being typed, in its time zone
        (``tz``, default UTC) and in UTC (no state change)."""
        cron = request.GET.get("cron", "").strip()
        if not cron:
            return JsonResponse({"ok": True, "runs": []})
        try:
            validate_schedule_cron(cron)
            zone = SETTINGS["schedule_timezone"].clean(request.GET.get("tz") or "UTC")
        except forms.ValidationError as exc:
            return JsonResponse({"ok": False, "error": exc.messages[0]})
        runs = cron_next_runs(
            " ".join(cron.split()), after=timezone.now(), count=3, tz=ZoneInfo(zone)
        )
        return JsonResponse({"ok": True, "runs": [_zoned(run) for run in runs]})


# --- Training runs -------------------------------------------------------------------


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = (
        "run_label",
        "recommender",
        "status_display",
        "started_by",
        "queued",
        "duration",
        "key_metric",
        "decision_display",
    )
    list_filter = ("status", "trigger", "decision", "recommender")
    list_select_related = ("recommender", "triggered_by", "version")
    date_hierarchy = "created_at"
    search_fields = ("=id", "decision_reason", "error")

    # Runs are history: no adding, editing or deleting by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        return False

    @admin.display(description="Run", ordering="pk")
    def run_label(self, obj: TrainingRun) -> str:
        return f"#{obj.pk}"

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: TrainingRun) -> str:
        label = obj.get_status_display()
        if obj.status == "running":
            label = f"{label} · {obj.phase} {obj.progress:.0%}"
        return status_badge(obj.status, label)

    @admin.display(description="Started by", ordering="trigger")
    def started_by(self, obj: TrainingRun) -> str:
        """The trigger and who pulled it, in one column (the list must fit 1,280 px)."""
        who = obj.triggered_by.get_username() if obj.triggered_by else obj.triggered_by_label
        return format_html(
            '{}<br><span class="recsite-muted">{}</span>', obj.get_trigger_display(), who or "—"
        )

    @admin.display(description="Queued (UTC)", ordering="created_at")
    def queued(self, obj: TrainingRun) -> str:
        return format_html(
            "{}<br>{}", obj.created_at.strftime("%Y-%m-%d"), obj.created_at.strftime("%H:%M")
        )

    @admin.display(description="Duration")
    def duration(self, obj: TrainingRun) -> str:
        seconds = obj.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description="Key metric (popularity)")
    def key_metric(self, obj: TrainingRun) -> str:
        metrics = obj.metrics or {}
        value = metric_value(obj.recommender.key_metric, metrics.get("candidate", {}))
        if value is None:
            return "—"
        baseline = metric_value(obj.recommender.key_metric, metrics.get("popularity", {}))
        return f"{value:.4f}" + (f" ({baseline:.4f})" if baseline is not None else "")

    @admin.display(description="Decision", ordering="decision")
    def decision_display(self, obj: TrainingRun) -> str:
        if not obj.decision:
            return "—"
        text = SHORT_DECISIONS.get(obj.decision, obj.decision)
        if obj.version_id:
            url = reverse("admin:recommender_modelversion_change", args=[obj.version_id])
            return format_html('{} → <a href="{}">v{}</a>', text, url, obj.version.number)
        return text

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/progress.json",
                view(require_GET(self.progress_view)),
                name="training_trainingrun_progress",
            ),
            path(
                "<int:object_id>/cancel/",
                view(require_POST(self.cancel_view)),
                name="training_trainingrun_cancel",
            ),
            *super().get_urls(),
        ]

    def _get_run(self, request: HttpRequest, object_id: int | str) -> TrainingRun:
        run = get_object_or_404(
            TrainingRun.objects.select_related("recommender", "triggered_by", "version"),
            pk=object_id,
        )
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        """The run page: progress (refreshing itself while live), phase timings, data,
        the metric table, the gates, the decision, the error, the log."""
        run = self._get_run(request, object_id)
        metrics = run.metrics or {}
        key = metric_name(run.recommender.key_metric, metrics.get("candidate", {}))
        return render_admin_page(
            request,
            self,
            "admin/training/trainingrun/detail.html",
            title=f"Run #{run.pk} of {run.recommender.name}",
            context={
                "run": run,
                "original": run,
                "metric_table": metric_table(run),
                "model_text": hyperparameters_text(run.hyperparameters),
                "champion_note": champion_note(metrics),
                "data_stats": _stats_rows(run.data_stats or {}),
                "key_metric_name": key,
                "timings_chart": charts.stacked_bar(
                    title="Phase timings",
                    segments=[(phase, float(s)) for phase, s in (run.phase_timings or {}).items()],
                ),
                "search": search_section(run.search),
                "can_cancel": run.is_live and request.user.has_perm(START_PERMISSION),
                "progress_url": reverse("admin:training_trainingrun_progress", args=[run.pk]),
                "age": age_text(run.created_at),
            },
        )

    def progress_view(self, request: HttpRequest, object_id: int) -> JsonResponse:
        """What the run page polls while the run is live."""
        run = self._get_run(request, object_id)
        return JsonResponse(
            {
                "status": run.status,
                "live": run.is_live,
                "phase": run.phase,
                "progress": run.progress,
                "cancel_requested": run.cancel_requested,
                "duration_seconds": run.duration_seconds,
                "log_tail": run.log[-4000:],
            }
        )

    def cancel_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        run = self._get_run(request, object_id)
        try:
            cancelled = training_run_cancel(run=run, actor=request.user)
        except TrainingRunNotCancellable as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(
                request,
                f"Run #{run.pk} cancelled."
                if cancelled.status == "cancelled"
                else f"Run #{run.pk}: cancel requested; it stops at the next phase boundary.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[run.pk]))
