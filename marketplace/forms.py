"""Forms of the board: post an offer or request, modify it, bid on a posting, accept a bid.

The forms only collect text; quantities and prices are parsed and checked by the services
(``posting_create``, ``bid_create``, ``bid_accept``), so the pages show exactly the errors the
API gives. Choices (intervals, meter points) are plain lists built once per page, so rendering
a form per posting costs no query.
"""

from __future__ import annotations

import re
import secrets

from django import forms

from config.errors import ApplicationError
from marketplace.autopilot import STRATEGY_LABELS, AutopilotStrategy
from marketplace.models import Side

Choices = list[tuple[int | str, str]]


def add_service_error(form: forms.BaseForm, error: ApplicationError) -> None:
    """Show a service's error next to its field, or above the form when the field isn't on it."""
    form.add_error(error.field if error.field in form.fields else None, error.message)


def _decimal_input(placeholder: str) -> forms.TextInput:
    # Text, not number: the service decides what a valid amount is and says why, and phones
    # still show a numeric keypad.
    return forms.TextInput(
        attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": placeholder}
    )


FORM_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
FORM_TOKEN_MISSING = "This form is out of date: reload the page and submit it again."  # noqa: S105


class OneTimeForm(forms.Form):
    """A form that creates something carries a one-time token, so a double submit creates once.

    Each rendering gets a fresh token; the view claims it in the durable idempotency records
    (``marketplace.views.common.form_submission_claim``) before it creates anything.
    """

    # Not required at the field: a hidden field's error would show nowhere, so clean() puts it
    # above the form.
    form_token = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not self.is_bound:
            self.initial["form_token"] = secrets.token_urlsafe(18)

    def clean(self) -> dict[str, object] | None:
        data = super().clean()
        token = (data or {}).get("form_token") or ""
        if not FORM_TOKEN_PATTERN.fullmatch(str(token)):
            self.add_error(None, FORM_TOKEN_MISSING)
        return data


class _ChoicesForm(forms.Form):
    """A form whose select fields get their choices from the page (validation needs none)."""

    def set_choices(self, **choices: Choices) -> None:
        for name, values in choices.items():
            if name in self.fields:
                self.fields[name].widget.choices = values


class PostingForm(OneTimeForm, _ChoicesForm):
    """An offer to sell or a request to buy energy in one interval."""

    side = forms.ChoiceField(
        choices=[(Side.SELL.value, "Offer (sell)"), (Side.BUY.value, "Request (buy)")],
        widget=forms.RadioSelect,
        initial=Side.SELL.value,
    )
    interval = forms.IntegerField(label="Delivery interval", widget=forms.Select)
    quantity_kwh = forms.CharField(label="Energy (kWh)", widget=_decimal_input("e.g. 1.5"))
    limit_price_per_kwh = forms.CharField(label="Limit price", widget=_decimal_input("e.g. 0.2000"))
    meter_point = forms.IntegerField(label="Meter point", widget=forms.Select)
    auto_accept_best_bids = forms.BooleanField(
        required=False,
        initial=True,
        label="Accept the best remaining bids automatically at gate closure",
    )
    flexible = forms.BooleanField(
        required=False,
        initial=False,
        label="Flexible purchase (battery, EV, heat pump): the grid check may curtail it",
    )


class BidForm(OneTimeForm, _ChoicesForm):
    """A bid on someone else's posting."""

    quantity_kwh = forms.CharField(label="Energy (kWh)", widget=_decimal_input("kWh"))
    price_per_kwh = forms.CharField(label="Price", widget=_decimal_input("price"))
    meter_point = forms.IntegerField(label="Meter point", widget=forms.Select)


class ModifyForm(forms.Form):
    """Change one's open posting: lowering only the quantity keeps its time priority."""

    quantity_kwh = forms.CharField(label="Energy (kWh)", widget=_decimal_input("kWh"))
    limit_price_per_kwh = forms.CharField(
        label="Limit price per kWh", widget=_decimal_input("price")
    )


class BidModifyForm(forms.Form):
    """Change one's pending bid: lowering only the quantity keeps its time priority."""

    quantity_kwh = forms.CharField(label="Energy (kWh)", widget=_decimal_input("kWh"))
    price_per_kwh = forms.CharField(label="Price per kWh", widget=_decimal_input("price"))


class AcceptForm(forms.Form):
    """Accept a bid; an empty quantity takes as much as both the bid and the posting allow."""

    quantity_kwh = forms.CharField(
        label="Energy (kWh)", required=False, widget=_decimal_input("all")
    )


class AutopilotForm(_ChoicesForm):
    """The member's autopilot for one meter point: the strategy and the limits it keeps to."""

    meter_point = forms.IntegerField(label="Meter point", widget=forms.Select)
    strategy = forms.ChoiceField(
        choices=[(s.value, label) for s, label in STRATEGY_LABELS.items()],
        widget=forms.RadioSelect,
        initial=AutopilotStrategy.BETWEEN_TARIFFS.value,
    )
    max_buy_kwh = forms.CharField(
        label="Buy at most (kWh per interval)", widget=_decimal_input("e.g. 1.0")
    )
    max_sell_kwh = forms.CharField(
        label="Sell at most (kWh per interval)", widget=_decimal_input("e.g. 1.0")
    )
    sell_floor_per_kwh = forms.CharField(
        label="Never sell below (per kWh)", widget=_decimal_input("e.g. 0.1000")
    )
    buy_ceiling_per_kwh = forms.CharField(
        label="Never buy above (per kWh)", widget=_decimal_input("e.g. 0.3000")
    )
