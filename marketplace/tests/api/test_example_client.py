"""The example client in docs/ places, lists and cancels orders against a live server."""

from __future__ import annotations

import ast
import importlib.util
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from marketplace.models import Posting
from marketplace.tests.api.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT = Path(__file__).resolve().parents[3] / "docs" / "example_client.py"


def load_client() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_client", CLIENT)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_example_client_places_orders(api: Api, live_server: Any, capsys: Any) -> None:
    example = load_client()
    client = example.PeerGridClient(base_url=live_server.url, token=api.full_token)
    posting = client.place_order(
        community="sonnenfeld", side="sell", quantity_kwh=Decimal("1.250"),
        price_per_kwh=Decimal("0.1100"),
    )  # fmt: skip
    assert posting["status"] == "open"
    assert Posting.objects.get(pk=posting["id"]).quantity_kwh == Decimal("1.250")
    assert [row["id"] for row in client.board("sonnenfeld")] == [posting["id"]]
    assert client.cancel(posting["id"])["status"] == "cancelled"

    with pytest.raises(example.ApiError) as refused:
        client.place_order(
            community="sonnenfeld", side="buy", quantity_kwh=Decimal("500"),
            price_per_kwh=Decimal("0.1100"),
        )  # fmt: skip
    assert refused.value.code == "over_capacity"
    assert "quantity_kwh" in refused.value.fields

    # The command line, as a user runs it.
    import os

    os.environ["PEERGRID_URL"], os.environ["PEERGRID_TOKEN"] = live_server.url, api.full_token
    try:
        argv = ["--community", "sonnenfeld", "--side", "buy", "--quantity", "0.500",
                "--price", "0.1000"]  # fmt: skip
        assert example.main(argv) == 0
    finally:
        del os.environ["PEERGRID_URL"], os.environ["PEERGRID_TOKEN"]
    assert "posted #" in capsys.readouterr().out
    assert Posting.objects.filter(side="buy", status="open").count() == 1


def test_example_client_needs_only_the_standard_library() -> None:
    tree = ast.parse(CLIENT.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}  # fmt: skip
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside == set()
