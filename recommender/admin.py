"""Admin for the model registry (versions, their audit trail) and client API keys.

Every button calls the service the CLI and API call (``model_version_promote``,
``model_version_rollback``, ``api_key_create``, ``api_key_revoke``). State changes are
POST-only (CSRF-checked by ``admin_view``) and check the custom permissions
``promote_modelversion`` / ``rollback_modelversion``; promote and rollback go through a
confirmation page that shows from -> to with the metric deltas and asks for a reason.

Items, events, user profiles and the deletion audit trail are in ``admin_data``.
The Recommender admin lives in ``training.admin``: its buttons (start a run, sync the
schedule) call training services, and ``recommender`` never imports ``training``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST
from rest_framework_api_key.models import APIKey

from recommender import admin_data  # noqa: F401  (registers the data and erasure admins)
from recommender.admin_pages import render_admin_page
from recommender.comparison import compare_rows, metric_value
from recommender.exceptions import RecsiteError
from recommender.exports.admin import EXPORT_PERMISSION, export_recommendations
from recommender.models import (
    ApiKey,
    ModelVersion,
    PromotionEvent,
    Recommender,
    Scope,
    VersionStatus,
)
from recommender.online import admin as online_admin  # noqa: F401  (registers experiments)
from recommender.online.selectors import online_compare_column, online_metrics_by_version
from recommender.selectors import active_version_get, rollback_target_get
from recommender.services import (
    api_key_create,
    api_key_revoke,
    model_version_promote,
    model_version_rollback,
)

PROMOTE_PERMISSION = "recommender.promote_modelversion"
ROLLBACK_PERMISSION = "recommender.rollback_modelversion"
COMPARE_MAX = 6


def age_text(moment: datetime | None) -> str:
    return f"{timesince(moment, timezone.now()).split(',')[0]} ago" if moment else "—"


def status_badge(status: str, label: str) -> str:
    """A status as text in a styled badge: the word carries the meaning, the colour helps."""
    return format_html('<span class="recsite-badge recsite-{}">{}</span>', status, label)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: kept in the audit trail.",
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "version_label",
        "recommender",
        "status_display",
        "key_metric",
        "age",
        "size",
        "artifact",
    )
    list_filter = ("recommender", "status")
    list_select_related = ("recommender",)
    actions = (
        "compare_versions",
        "promote_version",
        "rollback_recommender",
        export_recommendations,
    )
    ordering = ("recommender__name", "-number")

    # Versions are records of what was trained: nobody edits or deletes them here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        return False

    def has_promote_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PROMOTE_PERMISSION)

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION)

    def has_rollback_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ROLLBACK_PERMISSION)

    # -- list columns --

    @admin.display(description="Version", ordering="number")
    def version_label(self, obj: ModelVersion) -> str:
        return f"v{obj.number}"

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: ModelVersion) -> str:
        label = obj.get_status_display()
        if obj.status == VersionStatus.ACTIVE:
            label = "● Active (serving)"
        return status_badge(obj.status, label)

    @admin.display(description="Key metric")
    def key_metric(self, obj: ModelVersion) -> str:
        value = metric_value(obj.recommender.key_metric, obj.metrics)
        return "—" if value is None else f"{obj.recommender.key_metric} {value:.4f}"

    @admin.display(description="Age", ordering="-created_at")
    def age(self, obj: ModelVersion) -> str:
        return age_text(obj.created_at)

    @admin.display(description="Size", ordering="artifact_size")
    def size(self, obj: ModelVersion) -> str:
        return filesizeformat(obj.artifact_size)

    @admin.display(description="Artifact")
    def artifact(self, obj: ModelVersion) -> str:
        return "deleted by retention" if obj.artifact_deleted_at else "kept"

    # -- actions (from the list) --

    @admin.action(description="Compare the selected versions side by side")
    def compare_versions(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        ids = list(queryset.values_list("pk", flat=True)[: COMPARE_MAX + 1])
        if not 2 <= len(ids) <= COMPARE_MAX:
            self.message_user(
                request, f"Select 2 to {COMPARE_MAX} versions to compare.", messages.WARNING
            )
            return None
        url = reverse("admin:recommender_modelversion_compare")
        return HttpResponseRedirect(f"{url}?ids={','.join(map(str, sorted(ids)))}")

    @admin.action(description="Promote the selected version…", permissions=["promote"])
    def promote_version(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.WARNING)
            return None
        version = queryset.select_related("recommender").get()
        return self._promote_confirmation(request, version, ReasonForm())

    @admin.action(
        description="Roll back the recommender of the selected version…",
        permissions=["rollback"],
    )
    def rollback_recommender(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        recommender_ids = set(queryset.values_list("recommender_id", flat=True))
        if len(recommender_ids) != 1:
            self.message_user(
                request, "Select versions of exactly one recommender.", messages.WARNING
            )
            return None
        recommender = Recommender.objects.get(pk=recommender_ids.pop())
        return self._rollback_confirmation(request, recommender, ReasonForm())

    # -- pages --

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("compare/", view(self.compare_view), name="recommender_modelversion_compare"),
            path(
                "<int:object_id>/promote/",
                view(self.promote_view),
                name="recommender_modelversion_promote",
            ),
            path(
                "rollback/<int:recommender_id>/",
                view(self.rollback_view),
                name="recommender_modelversion_rollback",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        """The version page: metrics, hyper-parameters, data, artifact, the runs that made
        it, its audit trail, and the Promote / Roll back buttons the user may use."""
        version = get_object_or_404(
            ModelVersion.objects.select_related("recommender"), pk=object_id
        )
        if not self.has_view_permission(request, version):
            raise PermissionDenied
        recommender = version.recommender
        active = active_version_get(recommender=recommender)
        audit = (
            PromotionEvent.objects.filter(Q(from_version=version) | Q(to_version=version))
            .select_related("from_version", "to_version", "actor")
            .order_by("-created_at", "-id")
        )
        can_rollback = (
            version.status == VersionStatus.ACTIVE
            and self.has_rollback_permission(request)
            and rollback_target_get(recommender=recommender) is not None
        )
        return render_admin_page(
            request,
            self,
            "admin/recommender/modelversion/detail.html",
            title=f"{recommender.name} v{version.number}",
            context={
                "version": version,
                "original": version,
                "active": active,
                "metric_rows": compare_rows(
                    [version.metrics],
                    baseline=active.metrics if active and active != version else None,
                    metrics=True,
                ),
                "hyperparameter_rows": compare_rows([version.hyperparameters]),
                "runs": version.training_runs.select_related("triggered_by").order_by("-pk"),
                "audit": audit,
                "can_promote": version.status in (VersionStatus.CANDIDATE, VersionStatus.RETIRED)
                and version.artifact_deleted_at is None
                and self.has_promote_permission(request),
                "can_rollback": can_rollback,
                "age": age_text(version.created_at),
            },
        )

    @staticmethod
    def _parse_ids(raw: str) -> list[int]:
        return [int(part) for part in raw.split(",") if part.strip().isdigit()][:COMPARE_MAX]

    def compare_view(self, request: HttpRequest) -> HttpResponse:
        """Read-only: the chosen versions side by side, with deltas against the active
        version of their recommender (added as a column when it was not chosen)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        versions = list(
            ModelVersion.objects.filter(pk__in=self._parse_ids(request.GET.get("ids", "")))
            .select_related("recommender")
            .order_by("recommender__name", "number")
        )
        recommenders = {v.recommender_id for v in versions}
        active = (
            active_version_get(recommender=versions[0].recommender)
            if len(recommenders) == 1
            else None
        )
        if active is not None and active not in versions:
            versions.append(active)
        baseline = active
        online = (
            online_metrics_by_version(
                recommender=versions[0].recommender, numbers=[v.number for v in versions]
            )
            if len(recommenders) == 1
            else {}
        )
        online_columns = [online_compare_column(online.get(v.number)) for v in versions]
        return render_admin_page(
            request,
            self,
            "admin/recommender/modelversion/compare.html",
            title="Compare model versions",
            context={
                "versions": versions,
                "active": active,
                "mixed_recommenders": len(recommenders) > 1,
                "sections": [
                    (
                        "Metrics (each on its own holdout)",
                        compare_rows(
                            [v.metrics for v in versions],
                            baseline=baseline.metrics if baseline else None,
                            metrics=True,
                        ),
                    ),
                    (
                        "Online (what users did with the lists each version served)",
                        compare_rows(
                            online_columns,
                            baseline=online_compare_column(online.get(baseline.number))
                            if baseline
                            else None,
                        ),
                    ),
                    ("Hyper-parameters", compare_rows([v.hyperparameters for v in versions])),
                    ("Data window", compare_rows([v.data_window for v in versions])),
                    (
                        "Data",
                        compare_rows(
                            [
                                {
                                    k: v.data_stats.get(k)
                                    for k in ("events", "users", "items", "density")
                                    if k in v.data_stats
                                }
                                for v in versions
                            ],
                            baseline=(
                                {
                                    k: baseline.data_stats.get(k)
                                    for k in ("events", "users", "items")
                                }
                                if baseline
                                else None
                            ),
                        ),
                    ),
                ],
            },
        )

    def _promote_confirmation(
        self, request: HttpRequest, version: ModelVersion, form: ReasonForm, status: int = 200
    ) -> HttpResponse:
        current = active_version_get(recommender=version.recommender)
        return self._confirmation(
            request,
            kind="promote",
            recommender=version.recommender,
            source=current,
            target=version,
            form=form,
            action_url=reverse("admin:recommender_modelversion_promote", args=[version.pk]),
            status=status,
        )

    def _rollback_confirmation(
        self, request: HttpRequest, recommender: Recommender, form: ReasonForm, status: int = 200
    ) -> HttpResponse:
        current = active_version_get(recommender=recommender)
        target = rollback_target_get(recommender=recommender)
        if current is None or target is None:
            self.message_user(
                request,
                f"{recommender.name!r} has no previous active version to roll back to.",
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:recommender_modelversion_changelist"))
        return self._confirmation(
            request,
            kind="rollback",
            recommender=recommender,
            source=current,
            target=target,
            form=form,
            action_url=reverse("admin:recommender_modelversion_rollback", args=[recommender.pk]),
            status=status,
        )

    def _confirmation(
        self,
        request: HttpRequest,
        *,
        kind: str,
        recommender: Recommender,
        source: ModelVersion | None,
        target: ModelVersion,
        form: ReasonForm,
        action_url: str,
        status: int,
    ) -> HttpResponse:
        columns = [source.metrics, target.metrics] if source else [target.metrics]
        verb = "Promote" if kind == "promote" else "Roll back"
        return render_admin_page(
            request,
            self,
            "admin/recommender/modelversion/confirm.html",
            title=f"{verb} {recommender.name}: "
            + (f"v{source.number} → v{target.number}" if source else f"v{target.number}"),
            context={
                "kind": kind,
                "verb": verb,
                "recommender": recommender,
                "source": source,
                "target": target,
                "form": form,
                "action_url": action_url,
                "metric_rows": compare_rows(
                    columns, baseline=source.metrics if source else None, metrics=True
                ),
            },
            status=status,
        )

    def _finish(
        self,
        request: HttpRequest,
        form: ReasonForm,
        confirmation: Callable[..., HttpResponse],
        do: Callable[[str], PromotionEvent],
    ) -> HttpResponse:
        """Second step of promote / rollback: without ``confirm`` show the page; with a
        valid reason call the service and report what it did (or its domain error)."""
        if "confirm" not in request.POST:
            return confirmation(ReasonForm())
        if not form.is_valid():
            return confirmation(form, status=400)
        try:
            event = do(form.cleaned_data["reason"])
        except RecsiteError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:recommender_modelversion_changelist"))
        source = f"v{event.from_version.number}" if event.from_version else "nothing"
        self.message_user(
            request,
            f"{event.recommender.name}: {event.get_kind_display().lower()} from {source} to "
            f"v{event.to_version.number}. Serving processes switch within seconds.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse("admin:recommender_modelversion_change", args=[event.to_version.pk])
        )

    def promote_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return require_POST(self._promote)(request, object_id)

    def _promote(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not self.has_promote_permission(request):
            raise PermissionDenied
        version = get_object_or_404(
            ModelVersion.objects.select_related("recommender"), pk=object_id
        )
        return self._finish(
            request,
            ReasonForm(request.POST),
            lambda form, status=200: self._promote_confirmation(request, version, form, status),
            lambda reason: model_version_promote(
                version=version, actor=request.user, reason=reason
            ),
        )

    def rollback_view(self, request: HttpRequest, recommender_id: int) -> HttpResponse:
        return require_POST(self._rollback)(request, recommender_id)

    def _rollback(self, request: HttpRequest, recommender_id: int) -> HttpResponse:
        if not self.has_rollback_permission(request):
            raise PermissionDenied
        recommender = get_object_or_404(Recommender, pk=recommender_id)
        return self._finish(
            request,
            ReasonForm(request.POST),
            lambda form, status=200: self._rollback_confirmation(
                request, recommender, form, status
            ),
            lambda reason: model_version_rollback(
                recommender=recommender, actor=request.user, reason=reason
            ),
        )


@admin.register(PromotionEvent)
class PromotionEventAdmin(admin.ModelAdmin):
    """The audit trail, read-only."""

    list_display = ("created_at", "recommender", "kind", "transition", "who", "reason")
    list_filter = ("recommender", "kind")
    list_select_related = ("recommender", "from_version", "to_version", "actor")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: PromotionEvent | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: PromotionEvent | None = None
    ) -> bool:
        return False

    @admin.display(description="From → to")
    def transition(self, obj: PromotionEvent) -> str:
        source = f"v{obj.from_version.number}" if obj.from_version else "—"
        return f"{source} → v{obj.to_version.number}"

    @admin.display(description="Who")
    def who(self, obj: PromotionEvent) -> str:
        return obj.actor.get_username() if obj.actor else (obj.actor_label or "—")


# --- API keys ------------------------------------------------------------------------


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=50, help_text="The client app, e.g. “web-frontend”.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Give only what the app needs.",
    )


# The library registers its own concrete APIKey model, which recsite does not use.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created through ``api_key_create`` (the plain key is shown once, never
    stored) and revoked through ``api_key_revoke``; nothing else is editable."""

    list_display = ("name", "prefix", "scope_list", "created", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix")
    actions = ("revoke_keys",)
    fields = ("name", "prefix", "scopes", "created", "revoked", "expiry_date")
    readonly_fields = fields

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("recommender.change_apikey")

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        keys = list(queryset.filter(revoked=False))
        for key in keys:
            api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = ApiKeyCreateForm(request.POST)
            if form.is_valid():
                api_key, key = api_key_create(
                    name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"]
                )
                return render_admin_page(
                    request,
                    self,
                    "admin/recommender/apikey/created.html",
                    title=f"API key for {api_key.name}",
                    context={"api_key": api_key, "key": key},
                )
        else:
            form = ApiKeyCreateForm()
        return render_admin_page(
            request,
            self,
            "admin/recommender/apikey/add.html",
            title="New API key",
            context={"form": form},
        )
