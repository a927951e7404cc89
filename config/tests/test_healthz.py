"""The health endpoint reports database and broker reachability."""

from __future__ import annotations

import pytest
from django.test import Client

from config.celery import app as celery_app


@pytest.mark.django_db
def test_healthz_ok(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True


@pytest.mark.django_db
def test_healthz_503_when_broker_is_down(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(celery_app.conf, "broker_transport_options", {})
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["broker"]["ok"] is False
    assert body["database"]["ok"] is True


@pytest.mark.django_db
def test_home_page_links_to_everything(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for link in ("/accounts/login/", "/api/docs/", "/admin/"):
        assert link in html
    assert "peer-to-peer electricity marketplace" in html
