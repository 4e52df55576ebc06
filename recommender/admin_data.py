"""Admin for the data: items, events and user profiles (browse and search), and the
audit trail of deletions.

Every list stays fast at 10M events: the paginator counts at most ``COUNT_CAP`` rows
(``SELECT COUNT(*) FROM (... LIMIT n)``) and the full count is never asked
(``show_full_result_count = False``); searches are exact or prefix matches on indexed
columns, case-sensitive like the ids they match (``field__exact``, ``field__startswith``:
the admin's ``=`` and ``^`` are case-insensitive, ``UPPER(column)``, which no index
serves: every event read); there are no list filters on unindexed columns; foreign keys
are raw ids.

Nothing is edited here (the API and ``import_dataset`` write the data). Deleting goes
through the actions below, each a confirmation page with a required reason that calls
``items_erase`` / ``events_erase`` / ``user_erase`` (one ``DataErasure`` row each);
Django's own bulk delete, which writes no audit row, is removed."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from recommender.admin_pages import admin_actor_label, render_admin_page
from recommender.models import DataErasure, Event, Item, UserProfile
from recommender.services import events_erase, items_erase, user_erase

COUNT_CAP = 10_000
# Users one "erase" action may erase (each is its own transaction and audit row).
USERS_PER_ACTION_MAX = 100
DELETE_EVENT = "recommender.delete_event"
DELETE_ITEM = "recommender.delete_item"


class ErasureReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why, e.g. the erasure request's reference: kept in the audit trail.",
    )


class CappedCountPaginator(Paginator):
    """Counts at most ``COUNT_CAP + 1`` rows: page links reach ``COUNT_CAP`` rows; search
    to narrow the list beyond that."""

    @cached_property
    def count(self) -> int:
        return self.object_list[: COUNT_CAP + 1].count()


class SortableOnlyChangeList(ChangeList):
    """Honours ``sortable_by`` in the ``o`` parameter too, not only in the headers: a
    hand-written ``?o=5`` on a big table would otherwise sort every row by that column."""

    def get_ordering_field(self, field_name: Any) -> Any:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class DataAdmin(admin.ModelAdmin):
    """Read-only, capped counts, no Django bulk delete."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 100

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SortableOnlyChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_erase_events_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DELETE_EVENT)

    def has_erase_items_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DELETE_ITEM)

    def confirm_erasure(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        *,
        title: str,
        summary: list[str],
        erase: Callable[[str], str],
    ) -> HttpResponse | None:
        """Without ``confirm``: the confirmation page (what goes, a reason field). With a
        valid reason: ``erase(reason)`` and its message; back to the list."""
        form = ErasureReasonForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            self.message_user(request, erase(form.cleaned_data["reason"]), messages.SUCCESS)
            return None
        return render_admin_page(
            request,
            self,
            "admin/recommender/erase_confirm.html",
            title=title,
            context={
                "summary": summary,
                "form": form,
                "action": request.POST.get("action", ""),
                "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "checkbox_name": ACTION_CHECKBOX_NAME,
            },
            status=400 if form.is_bound else 200,
        )

    def erase_users_confirm(
        self, request: HttpRequest, queryset: QuerySet, users: list[str]
    ) -> HttpResponse | None:
        if len(users) > USERS_PER_ACTION_MAX:
            self.message_user(
                request,
                f"Select at most {USERS_PER_ACTION_MAX} users at a time ({len(users)} selected).",
                messages.WARNING,
            )
            return None
        events = Event.objects.filter(user_external_id__in=users).count()

        def erase(reason: str) -> str:
            for user_id in users:
                user_erase(
                    user_id=user_id,
                    actor=request.user,
                    actor_label=admin_actor_label(request),
                    reason=reason,
                )
            return f"Erased {len(users)} user(s): their events and profiles are deleted."

        return self.confirm_erasure(
            request,
            queryset,
            title=f"Erase {len(users)} user(s)",
            summary=[
                f"Users: {', '.join(users[:20])}" + (" …" if len(users) > 20 else ""),
                f"{events:,} events and their profiles are deleted. Serving treats them as "
                "unknown users within seconds; the next training run no longer sees them.",
            ],
            erase=erase,
        )


@admin.register(Item)
class ItemAdmin(DataAdmin):
    list_display = ("external_id", "title", "active", "category_list", "updated_at")
    search_fields = ("external_id__startswith",)
    ordering = ("external_id",)
    actions = ("delete_items",)

    @admin.display(description="Categories")
    def category_list(self, obj: Item) -> str:
        return ", ".join(obj.categories or [])

    @admin.action(
        description="Delete the selected items and their events…", permissions=["erase_items"]
    )
    def delete_items(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        items = queryset.count()
        events = Event.objects.filter(item__in=queryset).count()

        def erase(reason: str) -> str:
            erasure = items_erase(
                items=queryset,
                actor=request.user,
                actor_label=admin_actor_label(request),
                reason=reason,
            )
            return (
                f"Deleted {erasure.items_deleted:,} item(s) and {erasure.events_deleted:,} "
                "event(s)."
            )

        return self.confirm_erasure(
            request,
            queryset,
            title=f"Delete {items:,} item(s)",
            summary=[
                f"{items:,} items and their {events:,} events are deleted.",
                "Serving stops recommending them at its next catalog check (seconds).",
            ],
            erase=erase,
        )


@admin.register(Event)
class EventAdmin(DataAdmin):
    list_display = (
        "timestamp",
        "user_external_id",
        "item",
        "event_type",
        "weight",
        "client",
        "event_id",
    )
    search_fields = ("user_external_id__exact", "event_id__exact")
    search_help_text = "An exact user id or event id."
    ordering = ("-timestamp",)
    # Only the indexed order: sorting 10M events by another column is a full sort (10 s).
    sortable_by = ("timestamp",)
    raw_id_fields = ("item",)
    list_select_related = ("item",)
    actions = ("delete_events", "erase_event_users")

    @admin.action(description="Delete the selected events…", permissions=["erase_events"])
    def delete_events(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        count = queryset.count()

        def erase(reason: str) -> str:
            erasure = events_erase(
                events=queryset,
                actor=request.user,
                actor_label=admin_actor_label(request),
                reason=reason,
            )
            return f"Deleted {erasure.events_deleted:,} event(s)."

        return self.confirm_erasure(
            request,
            queryset,
            title=f"Delete {count:,} event(s)",
            summary=[f"{count:,} events are deleted; the next training run no longer sees them."],
            erase=erase,
        )

    @admin.action(
        description="Erase the users of the selected events (all their events and profiles)…",
        permissions=["erase_events"],
    )
    def erase_event_users(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        users = sorted(
            set(
                queryset.order_by()
                .values_list("user_external_id", flat=True)
                .distinct()[: USERS_PER_ACTION_MAX + 1]
            )
        )
        return self.erase_users_confirm(request, queryset, users)


@admin.register(UserProfile)
class UserProfileAdmin(DataAdmin):
    list_display = ("external_id", "feature_list", "updated_at")
    search_fields = ("external_id__startswith",)
    ordering = ("external_id",)
    actions = ("erase_users",)

    @admin.display(description="Features")
    def feature_list(self, obj: UserProfile) -> str:
        return ", ".join(obj.features or [])

    @admin.action(
        description="Erase the selected users (all their events and profiles)…",
        permissions=["erase_events"],
    )
    def erase_users(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        users = list(queryset.values_list("external_id", flat=True)[: USERS_PER_ACTION_MAX + 1])
        return self.erase_users_confirm(request, queryset, users)


@admin.register(DataErasure)
class DataErasureAdmin(admin.ModelAdmin):
    """The audit trail of deletions, read-only."""

    list_display = (
        "created_at",
        "kind",
        "subject",
        "events_deleted",
        "items_deleted",
        "profiles_deleted",
        "who",
        "reason",
    )
    list_filter = ("kind",)
    search_fields = ("subject__exact",)
    list_select_related = ("actor",)
    readonly_fields = [field.name for field in DataErasure._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Who")
    def who(self, obj: DataErasure) -> str:
        return obj.actor.get_username() if obj.actor else (obj.actor_label or "—")
