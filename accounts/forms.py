"""Forms for the account pages: they parse and show errors; services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest

from accounts import signin
from accounts.models import Membership, TokenScope, User
from accounts.permissions import managed_communities, scopes_allowed_for
from config.errors import ApplicationError
from config.fields import DecimalFormField
from marketplace.models import Community
from units import KW, KW_DIGITS


def add_application_error(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show a service's error next to its field, or above the form when the field isn't on it."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


def request_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


class ThrottledSignInMixin:
    """Refuses sign-in while an email or IP is locked; counts each failure towards a lock."""

    request: HttpRequest | None
    data: Any

    def clean(self) -> dict[str, Any]:
        email = str(self.data.get("username", "")).strip()
        ip_address = request_ip(self.request)
        wait = signin.locked_for_seconds(email=email, ip_address=ip_address)
        if not wait and not signin.attempt_begin(email=email, ip_address=ip_address):
            # Other attempts took the last slots at the same moment: locked like them.
            wait = signin.LOCK_SECONDS
        if wait:
            from accounts.services import sign_in_failure_record

            sign_in_failure_record(email=email, ip_address=ip_address, reason="throttled")
            minutes = max(1, (wait + 59) // 60)
            raise forms.ValidationError(
                f"Too many failed sign-ins. For your security, try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.",
                code="throttled",
            )
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            # The failure itself is audited by the user_login_failed signal (admin too).
            signin.failure_register(email=email, ip_address=ip_address)
            raise
        signin.success_register(email=email, ip_address=ip_address)
        return cleaned


class SignInForm(ThrottledSignInMixin, AuthenticationForm):
    username = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True}))


class AdminSignInForm(ThrottledSignInMixin, AdminAuthenticationForm):
    pass


class SignUpForm(forms.Form):
    """Only the address: the name and password are chosen from the mailed link."""

    email = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )


class SignUpConfirmForm(forms.Form):
    display_name = forms.CharField(
        label="Your name", max_length=150, required=False, help_text="Only your managers see it."
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned


class JoinCommunityForm(forms.Form):
    community = forms.ModelChoiceField(queryset=Community.objects.none(), empty_label=None)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        joined = Membership.objects.filter(user=user).exclude(status="rejected")
        field = self.fields["community"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Community.objects.exclude(
            pk__in=joined.values_list("community_id", flat=True)
        )


def _power(label: str, *, required: bool = True, help_text: str = "") -> forms.DecimalField:
    return DecimalFormField(
        step=KW, max_digits=KW_DIGITS, label=label, required=required, help_text=help_text
    )


class MeterPointForm(forms.Form):
    """Capacity limits are checked by the service, so the error reads the same on every channel."""

    label = forms.CharField(max_length=100)
    import_capacity_kw = _power("Import capacity (kW)")
    export_capacity_kw = _power("Export capacity (kW)")
    pv_kwp = _power("PV (kWp)", required=False)
    battery_kwh = _power("Battery energy (kWh)", required=False)
    battery_kw = _power("Battery power (kW)", required=False)
    flexible_load_kw = _power("Flexible load (kW)", required=False)

    ASSET_FIELDS = ("pv_kwp", "battery_kwh", "battery_kw", "flexible_load_kw")

    def service_values(self) -> dict[str, Any]:
        from decimal import Decimal

        values = dict(self.cleaned_data)
        for name in self.ASSET_FIELDS:
            if values.get(name) is None:
                values[name] = Decimal("0")
        return values


class MembershipChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.community.name} (as {obj.pseudonym})"


class RegisterMeterPointForm(MeterPointForm):
    membership = MembershipChoiceField(
        queryset=Membership.objects.none(), empty_label=None, label="Community"
    )

    field_order = ("membership",)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["membership"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Membership.objects.filter(user=user, status="approved").select_related(
            "community"
        )


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'home battery manager'.")
    scopes = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple)
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Leave empty for a token that does not expire.",
    )

    community = forms.ModelChoiceField(
        queryset=Community.objects.none(),
        required=False,
        help_text="For a 'meter_data' token only: the community whose meter readings it sends "
        "(for your metering operator's meter data service).",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = scopes_allowed_for(user)
        field = self.fields["scopes"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(value, label) for value, label in TokenScope.choices if value in allowed]
        community = self.fields["community"]
        assert isinstance(community, forms.ModelChoiceField)
        if TokenScope.METER_DATA in allowed:
            community.queryset = managed_communities(user)
        else:
            del self.fields["community"]


class ReasonForm(forms.Form):
    """The admin's intermediate page for reject, suspend and reinstate."""

    reason = forms.CharField(
        max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60})
    )
