"""The account pages: sign-up, sign-in, my account, my meter points, my API tokens.

Thin: each view parses a form, calls a service or selector and renders; errors a service raises
are shown next to their field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services, signin
from accounts.access import access_api_token, access_meter_point
from accounts.forms import (
    ApiTokenForm,
    JoinCommunityForm,
    MeterPointForm,
    RegisterMeterPointForm,
    SignInForm,
    SignUpConfirmForm,
    SignUpForm,
    add_application_error,
    request_ip,
)
from accounts.models import User
from config.errors import ApplicationError, ErrorCode


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required guarantees it
    return request.user


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    redirect_authenticated_user = True


@never_cache
@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    """The address only; every valid one gets the same redirect, whether it has an account."""
    if request.user.is_authenticated:
        return redirect("accounts:account")
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.sign_up_request(
                    email=form.cleaned_data["email"], ip_address=request_ip(request)
                )
            except ApplicationError as error:
                add_application_error(form, error)
            else:
                return redirect("accounts:signup_sent")
        return render(request, "accounts/sign_up.html", {"form": form}, status=400)
    return render(request, "accounts/sign_up.html", {"form": form})


@require_http_methods(["GET"])
def sign_up_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/sign_up_sent.html")


# A refused link's page names what went wrong; the codes a link check raises.
_LINK_REFUSALS = {
    ErrorCode.LINK_INVALID,
    ErrorCode.LINK_EXPIRED,
    ErrorCode.LINK_USED,
    ErrorCode.DUPLICATE,
}


def _link_refused(request: HttpRequest, error: ApplicationError) -> HttpResponse:
    return render(
        request,
        "accounts/sign_up_link.html",
        {"code": error.code.value, "reason": error.message},
        status=400,
    )


@never_cache
@require_http_methods(["GET", "POST"])
def sign_up_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The mailed link: choose a name and password, and the account is made and signed in."""
    if request.user.is_authenticated:
        messages.info(request, "You are signed in already; sign out to open a sign-up link.")
        return redirect("accounts:account")
    try:
        pending = services.sign_up_link_check(token=token)
    except ApplicationError as error:
        return _link_refused(request, error)
    form = SignUpConfirmForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                user = services.user_sign_up_confirm(
                    token=token,
                    password=form.cleaned_data["password1"],
                    display_name=form.cleaned_data["display_name"],
                )
            except ApplicationError as error:
                if error.code in _LINK_REFUSALS:
                    return _link_refused(request, error)
                if error.field == "password":
                    error.field = "password1"
                add_application_error(form, error)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(
                    request, "Your account is ready. Join a community to start trading."
                )
                return redirect("accounts:account")
        status = 400
    else:
        status = 200
    return render(
        request, "accounts/sign_up_confirm.html", {"form": form, "sign_up": pending}, status=status
    )


@login_required
@require_http_methods(["GET"])
def account(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "accounts/account.html",
        {
            "memberships": selectors.memberships_of_user(user=user),
            "join_form": JoinCommunityForm(user=user),
        },
    )


@login_required
@require_POST
def membership_join(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = JoinCommunityForm(request.POST, user=user)
    if form.is_valid():
        community = form.cleaned_data["community"]
        try:
            services.membership_request(user=user, community=community)
        except ApplicationError as error:
            add_application_error(form, error)
        else:
            messages.success(
                request, f"You asked to join {community.name}. Its manager will decide."
            )
            return redirect("accounts:account")
    return render(
        request,
        "accounts/account.html",
        {"memberships": selectors.memberships_of_user(user=user), "join_form": form},
        status=400,
    )


@login_required
@require_http_methods(["GET", "POST"])
def meter_points(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = RegisterMeterPointForm(request.POST or None, user=user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            values = form.service_values()
            try:
                services.meter_point_register(registered_by=user, **values)
            except ApplicationError as error:
                add_application_error(form, error)
            else:
                messages.success(request, f"Meter point {values['label']} registered.")
                return redirect("accounts:meter_points")
        status = 400
    return render(
        request,
        "accounts/meter_points.html",
        {"meter_points": selectors.meter_points_of_user(user=user), "form": form},
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def meter_point_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    # Someone else's meter point is a 404, not a 403: its existence is not the caller's business.
    meter_point = access_meter_point(user, pk)
    initial = {field: getattr(meter_point, field) for field in services.METER_POINT_EDITABLE}
    form = MeterPointForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.meter_point_update(
                    meter_point=meter_point, updated_by=user, **form.service_values()
                )
            except ApplicationError as error:
                add_application_error(form, error)
            else:
                messages.success(request, "Meter point saved.")
                return redirect("accounts:meter_points")
        status = 400
    return render(
        request,
        "accounts/meter_point_edit.html",
        {"meter_point": meter_point, "form": form},
        status=status,
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ApiTokenForm(request.POST or None, user=user)
    new_token: str | None = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            days = form.cleaned_data["expires_in_days"]
            try:
                _, new_token = services.api_token_create(
                    user=user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
                    community=form.cleaned_data.get("community"),
                )
            except ApplicationError as error:
                add_application_error(form, error)
                status = 400
            else:
                # Rendered, not redirected: the plaintext must not travel in a URL or a session.
                form = ApiTokenForm(user=user)
        else:
            status = 400
    return render(
        request,
        "accounts/api_tokens.html",
        {
            "tokens": selectors.api_tokens_of_user(user=user),
            "form": form,
            "new_token": new_token,
            "now": timezone.now(),
        },
        status=status,
    )


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    token = access_api_token(user, pk)
    services.api_token_revoke(token=token, revoked_by=user)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("accounts:api_tokens")


password_change = auth_views.PasswordChangeView.as_view(
    success_url=reverse_lazy("accounts:password_change_done")
)
password_change_done = auth_views.PasswordChangeDoneView.as_view()


class ThrottledPasswordResetView(auth_views.PasswordResetView):
    """Django's reset form, sending at most a few mails per address and IP an hour. Over the
    limit the page is the same "check your mail" page, so it tells nothing about the address."""

    def form_valid(self, form: Any) -> HttpResponse:
        email = str(form.cleaned_data.get("email", ""))
        if not signin.password_reset_allowed(email=email, ip_address=request_ip(self.request)):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


password_reset = ThrottledPasswordResetView.as_view(
    success_url=reverse_lazy("accounts:password_reset_done"),
    email_template_name="registration/password_reset_email.txt",
    subject_template_name="registration/password_reset_subject.txt",
)
password_reset_done = auth_views.PasswordResetDoneView.as_view()
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    success_url=reverse_lazy("accounts:password_reset_complete")
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view()
