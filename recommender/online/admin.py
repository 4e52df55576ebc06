"""Experiments in the admin: start one (a form over ``experiment_create``), its page with
the per-arm figures and verdicts and its audit trail, Stop and Promote the winner (POST,
a confirmation page with a reason, the services the API calls). Permissions:
``recommender.manage_experiment`` to start and stop; promoting the winner is a promotion:
``recommender.promote_modelversion``. ``recommender/admin.py`` imports this module."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from recommender.admin_pages import admin_actor_label, render_admin_page
from recommender.exceptions import RecsiteError
from recommender.models import ModelVersion, Recommender
from recommender.online.experiment_figures import experiment_figures, experiment_winner
from recommender.online.experiments import (
    TreatmentSpec,
    experiment_create,
    experiment_promote,
    experiment_stop,
)
from recommender.online.models import Experiment, ExperimentStatus, PrimaryMetric

MANAGE_PERMISSION = "recommender.manage_experiment"
PROMOTE_PERMISSION = "recommender.promote_modelversion"


class ExperimentStartForm(forms.Form):
    recommender = forms.ModelChoiceField(Recommender.objects.all())
    name = forms.CharField(max_length=200)
    primary_metric = forms.ChoiceField(choices=PrimaryMetric.choices)
    treatment_version = forms.ModelChoiceField(
        ModelVersion.objects.select_related("recommender").order_by("recommender__name", "-number"),
        help_text="A version of this recommender (or of another one) to test against the "
        "active one.",
    )
    treatment_share = forms.FloatField(
        min_value=0.01,
        max_value=0.99,
        initial=0.5,
        help_text="Share of users; the control gets the rest.",
    )
    second_version = forms.ModelChoiceField(
        ModelVersion.objects.select_related("recommender").order_by("recommender__name", "-number"),
        required=False,
        label="Second treatment (optional)",
    )
    second_share = forms.FloatField(min_value=0.01, max_value=0.99, required=False)
    reason = forms.CharField(
        max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def treatments(self) -> list[TreatmentSpec]:
        data = self.cleaned_data
        pairs = [(data["treatment_version"], data["treatment_share"])]
        if data.get("second_version") is not None:
            pairs.append((data["second_version"], data.get("second_share") or 0.0))
        return [
            TreatmentSpec(version=version.number, share=share, recommender=version.recommender.name)
            for version, share in pairs
        ]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept in the audit trail.",
    )


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "recommender", "status", "primary_metric", "started_at", "stopped_at")
    list_filter = ("recommender", "status")
    list_select_related = ("recommender",)
    ordering = ("-started_at", "-id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/stop/", view(self.stop_view), name="recommender_experiment_stop"),
            path(
                "<int:object_id>/promote/",
                view(self.promote_view),
                name="recommender_experiment_promote",
            ),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ExperimentStartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                experiment = experiment_create(
                    recommender=form.cleaned_data["recommender"],
                    name=form.cleaned_data["name"],
                    treatments=form.treatments(),
                    primary_metric=form.cleaned_data["primary_metric"],
                    actor=request.user,
                    actor_label=admin_actor_label(request),
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            except RecsiteError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request, f"Experiment {experiment.name!r} started.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:recommender_experiment_change", args=[experiment.pk])
                )
        return render_admin_page(
            request,
            self,
            "admin/recommender/experiment/start.html",
            title="Start an experiment",
            context={"form": form},
            status=400 if form.errors else 200,
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        experiment = get_object_or_404(
            Experiment.objects.select_related("recommender"), pk=object_id
        )
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        figures = experiment_figures(experiment=experiment)
        stopped = experiment.status == ExperimentStatus.STOPPED
        return render_admin_page(
            request,
            self,
            "admin/recommender/experiment/detail.html",
            title=f"Experiment: {experiment.name}",
            context={
                "experiment": experiment,
                "original": experiment,
                "figures": figures,
                "winner": experiment_winner(figures),
                "audit": experiment.events.select_related("actor", "promotion"),
                "can_stop": not stopped and request.user.has_perm(MANAGE_PERMISSION),
                "can_promote": stopped and request.user.has_perm(PROMOTE_PERMISSION),
            },
        )

    def _confirm(
        self,
        request: HttpRequest,
        experiment: Experiment,
        *,
        verb: str,
        what: str,
        action: str,
        do: Callable[[str], str],
    ) -> HttpResponse:
        """Without ``confirm``: the confirmation page; with a valid reason: the service."""
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            try:
                self.message_user(request, do(form.cleaned_data["reason"]), messages.SUCCESS)
            except RecsiteError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:recommender_experiment_change", args=[experiment.pk])
            )
        return render_admin_page(
            request,
            self,
            "admin/recommender/experiment/confirm.html",
            title=f"{verb}: {experiment.name}",
            context={
                "experiment": experiment,
                "verb": verb,
                "what": what,
                "form": form,
                "arm": request.POST.get("arm", ""),
                "action_url": reverse(
                    f"admin:recommender_experiment_{action}", args=[experiment.pk]
                ),
            },
            status=400 if form.errors else 200,
        )

    def stop_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return require_POST(self._stop)(request, object_id)

    def _stop(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(MANAGE_PERMISSION):
            raise PermissionDenied
        experiment = get_object_or_404(Experiment, pk=object_id)

        def do(reason: str) -> str:
            experiment_stop(
                experiment=experiment,
                actor=request.user,
                actor_label=admin_actor_label(request),
                reason=reason,
            )
            return "Experiment stopped: every user gets the active version again within seconds."

        return self._confirm(
            request,
            experiment,
            verb="Stop the experiment",
            what="All traffic goes back to the active version at once.",
            action="stop",
            do=do,
        )

    def promote_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return require_POST(self._promote)(request, object_id)

    def _promote(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if not request.user.has_perm(PROMOTE_PERMISSION):
            raise PermissionDenied
        experiment = get_object_or_404(
            Experiment.objects.select_related("recommender"), pk=object_id
        )
        arm = request.POST.get("arm", "")

        def do(reason: str) -> str:
            event = experiment_promote(
                experiment=experiment,
                arm=arm,
                actor=request.user,
                actor_label=admin_actor_label(request),
                reason=reason,
            )
            return f"{arm}: v{event.to_version.number} is now the active version."

        return self._confirm(
            request,
            experiment,
            verb=f"Promote {arm}",
            what=f"The version of {arm} becomes the active version of "
            f"{experiment.recommender.name}.",
            action="promote",
            do=do,
        )
