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
