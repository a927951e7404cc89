"""The error codes are a contract: one enum, every code explained, listed in the OpenAPI schema,
and no service refusing with the generic ``invalid``."""

from __future__ import annotations

import ast
from pathlib import Path

from drf_spectacular.generators import SchemaGenerator

from config.errors import MEANINGS, ErrorCode
from marketplace.api.exceptions import error_body, listed_code

ROOT = Path(__file__).resolve().parents[2]
# The API's field validation is the one place that may answer ``invalid``.
MAY_USE_INVALID = {ROOT / "config" / "errors.py", ROOT / "marketplace" / "api" / "exceptions.py"}


def test_every_code_has_a_meaning() -> None:
    assert set(MEANINGS) == set(ErrorCode)
    assert all(meaning.strip() for meaning in MEANINGS.values())


def test_the_schema_lists_every_code_with_its_meaning() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    enum = schema["components"]["schemas"]["ErrorCodeEnum"]
    assert enum["enum"] == [code.value for code in ErrorCode]
    for code in ErrorCode:
        assert f"`{code.value}` - {MEANINGS[code]}" in enum["description"]


def _sources() -> list[Path]:
    skip = {".venv", "var", "migrations", "tests", "bench"}
    return [
        path for path in ROOT.rglob("*.py") if not skip.intersection(path.relative_to(ROOT).parts)
    ]


def _uses_invalid(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "INVALID"
        and isinstance(node.value, ast.Name)
        and node.value.id == "ErrorCode"
        for node in ast.walk(tree)
    )


def test_no_service_refuses_with_the_generic_code() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if path not in MAY_USE_INVALID and _uses_invalid(ast.parse(path.read_text()))
    ]
    assert offenders == []


def test_the_source_scan_finds_a_generic_refusal() -> None:
    """The scan above is not vacuous."""
    assert _uses_invalid(ast.parse("raise ApplicationError(ErrorCode.INVALID, 'x')"))
    assert len(_sources()) > 50


def test_an_unlisted_framework_code_is_sent_as_a_listed_one() -> None:
    assert listed_code("over_capacity") is ErrorCode.OVER_CAPACITY
    assert listed_code("null_characters_not_allowed") is ErrorCode.FORBIDDEN_CHARACTER
    assert listed_code("something_new") is ErrorCode.INVALID
    assert error_body("something_new", "m")["code"] == "invalid"
