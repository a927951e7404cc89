"""The member's notifications: the bell, the list, opening one, and the choice of kinds."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from accounts.selectors import time_zone_of_user
from notifications.models import Notification, NotificationKind
from notifications.selectors import notifications_of, notifications_unread_count
from notifications.services import (
    notification_preferences,
    notification_preferences_set,
    notifications_mark_read,
)

PER_PAGE = 30


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required guarantees it
    return request.user


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    page = Paginator(notifications_of(user=user), PER_PAGE).get_page(request.GET.get("page"))
    zone = time_zone_of_user(user=user)
    return render(request, "notifications/list.html", {"page": page, "zone": zone})


@login_required
@require_GET
def bell(request: HttpRequest) -> HttpResponse:
    """The bell alone, for the navigation's periodic refresh."""
    count = notifications_unread_count(user=_user(request))
    return render(request, "notifications/_bell.html", {"unread": count})


@login_required
@require_POST
def mark_all_read(request: HttpRequest) -> HttpResponse:
    done = notifications_mark_read(user=_user(request))
    messages.success(request, f"{done} notification{'s' if done != 1 else ''} marked read.")
    return redirect("notifications:list")


@login_required
@require_POST
def notification_open(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark one read and go where it points (only within this site)."""
    notification = get_object_or_404(Notification, pk=pk, user=_user(request))
    notifications_mark_read(user=_user(request), ids=[notification.pk])
    target = notification.url
    if not target or not url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        return redirect("notifications:list")
    return redirect(target)


class PreferencesForm(forms.Form):
    """Two boxes per kind: in the app, by e-mail."""

    def __init__(
        self, *args: object, initial_choices: dict[str, tuple[bool, bool]], **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for kind, label in NotificationKind.choices:
            in_app, email = initial_choices[kind]
            self.fields[f"{kind}__app"] = forms.BooleanField(
                required=False, initial=in_app, label=f"{label}: in PeerGrid"
            )
            self.fields[f"{kind}__email"] = forms.BooleanField(
                required=False, initial=email, label=f"{label}: by e-mail"
            )

    def rows(self) -> list[tuple[str, forms.BoundField, forms.BoundField]]:
        return [(label, self[f"{kind}__app"], self[f"{kind}__email"])
                for kind, label in NotificationKind.choices]  # fmt: skip

    def choices(self) -> dict[str, tuple[bool, bool]]:
        data = self.cleaned_data
        return {kind: (data[f"{kind}__app"], data[f"{kind}__email"])
                for kind in NotificationKind.values}  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    current = notification_preferences(user=user)
    if request.method == "POST":
        form = PreferencesForm(request.POST, initial_choices=current)
        if form.is_valid():
            notification_preferences_set(user=user, choices=form.choices())
            messages.success(request, "Your notification choices are saved.")
            return redirect("notifications:preferences")
    else:
        form = PreferencesForm(initial_choices=current)
    return render(request, "notifications/preferences.html", {"form": form})
