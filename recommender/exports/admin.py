"""Admin for export jobs: the model version list's "Export recommendations" action
queues one (``export_job_create``, the service the task runs), the job list shows its
progress and, once it succeeded, a download link (``export_job_download``: a redirect to
a presigned URL of the S3 store, or the file streamed from the store)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from recommender.exceptions import ExportFileGone
from recommender.exports.models import ExportJob, ExportStatus
from recommender.exports.services import export_job_create, export_job_download

EXPORT_PERMISSION = "recommender.add_exportjob"


@admin.action(
    description="Export recommendations (every user's top 50, JSON lines)",
    permissions=["export"],  # the ModelAdmin's has_export_permission: EXPORT_PERMISSION
)
def export_recommendations(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    """For ``ModelVersionAdmin.actions``: queue an export of the one selected version."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one version to export.", messages.WARNING)
        return None
    job = export_job_create(version=queryset.get(), actor=request.user)
    modeladmin.message_user(
        request,
        format_html(
            'Export #{} queued: <a href="{}">follow it here</a>; the download link appears '
            "when it is done.",
            job.pk,
            reverse("admin:recommender_exportjob_change", args=[job.pk]),
        ),
        messages.SUCCESS,
    )
    return HttpResponseRedirect(reverse("admin:recommender_exportjob_changelist"))


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "recommender",
        "version_label",
        "status",
        "progress",
        "format",
        "limit",
        "actor_label",
        "created_at",
        "download",
    )
    list_filter = ("recommender", "status")
    list_select_related = ("recommender", "version")
    readonly_fields = (
        "recommender",
        "version",
        "status",
        "format",
        "limit",
        "users_total",
        "users_done",
        "fallback_users",
        "download",
        "path",
        "file_deleted_at",
        "error",
        "actor",
        "actor_label",
        "created_at",
        "started_at",
        "finished_at",
    )

    # Jobs are records: started from the version list, never edited or deleted here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ExportJob | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ExportJob | None = None) -> bool:
        return False

    @admin.display(description="Version", ordering="version__number")
    def version_label(self, obj: ExportJob) -> str:
        return f"v{obj.version.number}"

    @admin.display(description="Progress")
    def progress(self, obj: ExportJob) -> str:
        if obj.users_total:
            return f"{obj.users_done:,} / {obj.users_total:,} users"
        return f"{obj.users_done:,} users"

    @admin.display(description="File")
    def download(self, obj: ExportJob) -> str:
        if obj.status != ExportStatus.SUCCEEDED:
            return "—"
        if obj.file_deleted_at is not None:
            return f"deleted {obj.file_deleted_at:%Y-%m-%d}"
        url = reverse("admin:recommender_exportjob_download", args=[obj.pk])
        return format_html('<a href="{}">Download</a>', url)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/download/",
                view(self.download_view),
                name="recommender_exportjob_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, object_id: int) -> HttpResponseBase:
        job = get_object_or_404(ExportJob, pk=object_id, status=ExportStatus.SUCCEEDED)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        try:
            download = export_job_download(job=job)
        except ExportFileGone as exc:
            raise Http404(exc.message) from exc
        if download.url is not None:
            return HttpResponseRedirect(download.url)
        response = FileResponse(download.stream, as_attachment=True, filename=download.filename)
        if download.size is not None:
            response["Content-Length"] = str(download.size)
        return response
