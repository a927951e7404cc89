"""Hand-written SELECTs that still give model instances, for the few hottest queries.

The ORM compiles every query anew, which on the API's order post cost more CPU than the
database's work. ``ModelSelect`` takes the column list from the models' fields and runs each
value through the converters the ORM would apply (dates and decimals on SQLite, JSON
everywhere), so the instances equal what ``select_related`` gives. Build one per process (e.g.
under ``functools.cache``) and keep every value a query parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model

Converter = Callable[[Any, Any, Any], Any]


class ModelSelect:
    """One SELECT over several models' columns, turned back into model instances.

    Column names come from the models' fields and values go through the same converters the
    ORM applies (dates and decimals on SQLite, JSON everywhere), so the instances equal what
    ``select_related`` would give.
    """

    def __init__(
        self,
        parts: Sequence[tuple[type[Model], str, Sequence[str] | None]],
        tail: str,
        extra: Sequence[str] = (),
    ) -> None:
        columns: list[str] = []
        self._parts: list[tuple[type[Model], list[str], list[tuple[Any, list[Converter]]]]] = []
        for model, alias, names in parts:
            fields = [f for f in model._meta.concrete_fields if names is None or f.attname in names]
            converters = []
            for field in fields:
                col = field.get_col(alias)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                converters.append((col, found))
            columns += [
                f"{alias}.{connection.ops.quote_name(f.column or f.attname)}" for f in fields
            ]
            self._parts.append((model, [f.attname for f in fields], converters))
        self.sql = f"SELECT {', '.join([*columns, *extra])} {tail}"

    def build(self, row: Sequence[Any]) -> list[Any]:
        """The parts' instances in order, then any columns after theirs as they came."""
        out: list[Any] = []
        at = 0
        for model, attnames, converters in self._parts:
            values = []
            for col, found in converters:
                value = row[at]
                at += 1
                for convert in found:
                    value = convert(value, col, connection)
                values.append(value)
            out.append(model.from_db(connection.alias, attnames, values))
        return out + list(row[at:])


def table_name(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# SQLite allows 32,766 parameters in one statement; PostgreSQL 65,535.
_MAX_PARAMETERS = 32_000


def update_rows(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Set ``fields`` of many rows, each ``(pk, value, ...)``, in one statement per chunk.

    ``UPDATE t SET f = v.f, ... FROM (VALUES ...) v WHERE t.id = v.id``:
    ``bulk_update`` writes a CASE with a branch per row and field, which Django compiles and the
    database evaluates row by row (most of clearing 10,000 postings). Values are prepared by the
    fields themselves, as an ordinary save would.
    """
    if not rows:
        return
    meta = model._meta
    by_name = {field.name: field for field in meta.concrete_fields}
    targets = [by_name[name] for name in fields]
    assert meta.pk is not None
    assert meta.pk.column is not None
    table = table_name(model)
    pk_column = connection.ops.quote_name(meta.pk.column)
    names = ["id", *(f"v{i}" for i in range(len(targets)))]
    # PostgreSQL types a VALUES column from its values (a NULL in the first row makes it text),
    # so each is cast to its column's type; SQLite stores what it gets, and its CAST to a type
    # it does not know (datetime) would keep only a leading number, so there none is applied.
    cast = connection.vendor != "sqlite"
    assignments = ", ".join(
        f"{connection.ops.quote_name(field.column or field.name)} = "
        + (f"CAST(v.v{i} AS {field.db_type(connection)})" if cast else f"v.v{i}")
        for i, field in enumerate(targets)
    )
    per_statement = max(1, _MAX_PARAMETERS // len(names))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params: list[Any] = []
        for row in chunk:
            pk, *values = row
            params.append(pk)
            params += [
                field.get_db_prep_save(value, connection)
                for field, value in zip(targets, values, strict=True)
            ]
        placeholders = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH v({', '.join(names)}) AS (VALUES {placeholders}) "  # noqa: S608 - names only
                f"UPDATE {table} SET {assignments} FROM v WHERE {table}.{pk_column} = v.id",
                params,
            )
