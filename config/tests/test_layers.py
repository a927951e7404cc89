"""The layer rule import contracts cannot express: views, API views and tasks run no ORM query.

They reach models only through services (writes) and selectors (reads), so a read is written,
optimised and permission-filtered once. Importing a model for its type or its choices is fine;
calling its manager (``Model.objects``) is what this test refuses.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIN_LAYERS = (
    "accounts/views.py",
    "accounts/tasks.py",
    "config/views.py",
    "marketplace/views",
    "marketplace/api/views",
    "marketplace/ledger/views.py",
    "marketplace/ledger/tasks.py",
    "marketplace/oversight/views.py",
    "marketplace/tasks.py",
    "notifications/views.py",
    "notifications/tasks.py",
    "simulation/tasks.py",
)


def thin_modules() -> list[Path]:
    found: list[Path] = []
    for entry in THIN_LAYERS:
        path = ROOT / entry
        found.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    return [path for path in found if path.exists()]


def manager_calls(source: str) -> list[int]:
    """Line numbers where ``<something>.objects`` or ``._default_manager`` is reached."""
    tree = ast.parse(source)
    # The schema generator's empty queryset (``<manager>.none()``), read without a request, is
    # not a query.
    empty = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "none"
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in {"objects", "_default_manager"}
        and id(node) not in empty
    ]


def test_the_layers_are_found() -> None:
    assert len(thin_modules()) >= len(THIN_LAYERS)


@pytest.mark.parametrize("module", thin_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_orm_query_in_a_thin_layer(module: Path) -> None:
    lines = manager_calls(module.read_text())
    assert not lines, f"{module.relative_to(ROOT)} queries models at lines {lines}; use a selector"


def test_the_check_sees_a_query() -> None:
    assert manager_calls("from x import M\nrows = M.objects.filter(a=1)\n") == [2]
    assert manager_calls("def f(self):\n    return self.model._default_manager.none()\n") == []
