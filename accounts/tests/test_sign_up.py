"""Sign-up through the real pages: it tells nobody who has an account, and its link is the key.

The form takes an address and answers every valid one with the same redirect and page; the
mail decides: a link to make the account for a new address, "someone tried to sign up" with the
reset link for an address that has one. The link is signed, expires after 24 hours and works
once; a tampered, expired or used link gets a page that says which.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user
from django.core import mail, signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, SignUpRequest, User
from accounts.tests import factories

pytestmark = pytest.mark.django_db

SIGN_UP = reverse("accounts:signup")
PASSWORD = "Sunny-roof-2026!"


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Mails go out after commit; run those callbacks as a real request would."""
    return django_capture_on_commit_callbacks


def _sign_up(client: Client, on_commit: Any, email: str, ip: str = "10.9.0.1") -> Any:
    with on_commit(execute=True):
        return client.post(SIGN_UP, {"email": email}, REMOTE_ADDR=ip)


def _link(message: Any) -> str:
    """The confirmation link's path, as a person would follow it from the mail."""
    match = re.search(r"https?://[^/\s]+(/accounts/signup/confirm/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_a_taken_and_a_free_address_get_the_same_answer(on_commit: Any) -> None:
    taken = factories.UserFactory.create(email="ada@example.test")
    answers = []
    for email in ("ADA@example.test", "bea@example.test"):
        client = Client()
        response = _sign_up(client, on_commit, email)
        page = client.get(response["Location"])
        answers.append((response.status_code, response["Location"], page.status_code, page.content))
    assert answers[0] == answers[1]
    assert answers[0][:3] == (302, reverse("accounts:signup_sent"), 200)
    assert b"Check your email" in answers[0][3]
    # The mails differ: only the address's owner learns which case it was.
    existing, new = mail.outbox
    assert existing.to == [taken.email]
    assert "already has" in existing.body
    assert "/accounts/password/reset/" in existing.body
    assert "/accounts/signup/confirm/" not in existing.body
    assert new.to == ["bea@example.test"]
    assert "/accounts/signup/confirm/" in new.body
    # Nothing was made or changed for the taken address; no account yet for the free one.
    assert User.objects.filter(email="bea@example.test").count() == 0
    assert User.objects.get(pk=taken.pk).check_password(factories.PASSWORD)
    # The same rows either way (so the time taken tells nothing); the taken address's records
    # the attempt against its account.
    rows = dict(SignUpRequest.objects.values_list("email", "user"))
    assert rows == {"ada@example.test": taken.pk, "bea@example.test": None}
    kinds = set(AuditEvent.objects.values_list("kind", flat=True))
    assert {"user.sign_up_requested", "user.sign_up_existing"} <= kinds


def test_a_bad_address_is_a_form_error_whoever_asks(on_commit: Any) -> None:
    response = _sign_up(Client(), on_commit, "not-an-address")
    assert response.status_code == 400
    assert "Enter a valid email address" in response.content.decode()
    assert mail.outbox == []


def test_the_link_makes_the_account_and_signs_it_in(on_commit: Any) -> None:
    client = Client()
    _sign_up(client, on_commit, "Cleo@Example.test")
    link = _link(mail.outbox[0])
    page = client.get(link)
    assert page.status_code == 200
    assert "cleo@example.test" in page.content.decode()
    weak = client.post(link, {"display_name": "Cleo", "password1": "short", "password2": "short"})
    assert weak.status_code == 400
    assert "too short" in weak.content.decode()
    response = client.post(
        link, {"display_name": "Cleo", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:account")
    user = User.objects.get(email="cleo@example.test")
    assert (user.display_name, user.is_active) == ("Cleo", True)
    assert get_user(client).pk == user.pk
    assert SignUpRequest.objects.get(email=user.email).confirmed_at is not None
    # And it signs in with the password chosen there.
    fresh = Client()
    signed_in = fresh.post(
        reverse("accounts:login"), {"username": user.email, "password": PASSWORD}
    )
    assert signed_in.status_code == 302


def _refusal(client: Client, link: str) -> str:
    response = client.get(link)
    assert response.status_code == 400
    return response.content.decode()


def test_a_used_link_is_refused_with_a_clear_page(on_commit: Any) -> None:
    client = Client()
    _sign_up(client, on_commit, "dan@example.test")
    link = _link(mail.outbox[0])
    client.post(link, {"password1": PASSWORD, "password2": PASSWORD})
    client.post(reverse("accounts:logout"))
    assert "This link was used already" in _refusal(client, link)
    again = client.post(link, {"password1": "Other-pass-2026!", "password2": "Other-pass-2026!"})
    assert again.status_code == 400
    assert User.objects.get(email="dan@example.test").check_password(PASSWORD)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # the signature
        lambda token: token.replace(token[:4], "eyJz", 1),  # the payload
        lambda token: signing.dumps({"r": 1}),  # signed by the site, for another purpose
        lambda token: "not-a-token",
    ],
)
def test_a_tampered_link_is_refused(on_commit: Any, tamper: Any) -> None:
    client = Client()
    _sign_up(client, on_commit, "eve@example.test")
    link = _link(mail.outbox[0])
    token = link.rstrip("/").rsplit("/", 1)[1]
    forged = link.replace(token, tamper(token))
    assert "This link does not work" in _refusal(client, forged)
    response = client.post(forged, {"password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 400
    assert not User.objects.filter(email="eve@example.test").exists()


def test_an_expired_link_is_refused(on_commit: Any) -> None:
    start = timezone.now()
    client = Client()
    with time_machine.travel(start, tick=False):
        _sign_up(client, on_commit, "ivy@example.test")
    link = _link(mail.outbox[0])
    with time_machine.travel(start + timedelta(hours=23, minutes=59), tick=False):
        assert client.get(link).status_code == 200
    with time_machine.travel(start + timedelta(hours=24, minutes=1), tick=False):
        assert "This link has expired" in _refusal(client, link)
        response = client.post(link, {"password1": PASSWORD, "password2": PASSWORD})
        assert response.status_code == 400
    assert not User.objects.filter(email="ivy@example.test").exists()


def test_a_second_link_for_an_address_that_has_an_account_says_so(on_commit: Any) -> None:
    client = Client()
    _sign_up(client, on_commit, "fay@example.test")
    _sign_up(client, on_commit, "fay@example.test")
    first, second = (_link(message) for message in mail.outbox)
    assert client.post(first, {"password1": PASSWORD, "password2": PASSWORD}).status_code == 302
    client.post(reverse("accounts:logout"))
    assert "You have an account already" in _refusal(client, second)


def test_sign_up_mails_are_rate_limited_and_the_page_stays_the_same(on_commit: Any) -> None:
    answers = {_sign_up(Client(), on_commit, "gus@example.test")["Location"] for _ in range(5)}
    assert answers == {reverse("accounts:signup_sent")}
    assert len(mail.outbox) == 3  # three mails an hour per address


def test_a_deactivated_account_gets_no_reset_link(on_commit: Any) -> None:
    user = factories.UserFactory.create(email="hal@example.test")
    User.objects.filter(pk=user.pk).update(is_active=False)
    _sign_up(Client(), on_commit, user.email)
    (message,) = mail.outbox
    assert "deactivated" in message.body
    assert "/accounts/password/reset/" not in message.body
