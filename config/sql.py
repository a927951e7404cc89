"""Hand-written SELECTs that still give model instances, for the few hottest queries.

The ORM compiles every query anew, which on the API's order post cost more CPU than the
database's work. ``ModelSelect`` takes the column list from the models' fields and runs each
value through the converters the ORM would apply (dates and decimals on SQLite, JSON
everywhere), so the instances equal what ``select_related`` gives. Build one per process (e.g.
under ``functools.cache``) and keep every value a query parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Field, Model

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
        # Per part: the model, its columns' attnames, and only the columns that have
        # converters (their place in the part, the column, the converters): most columns have
        # none on PostgreSQL, and a thousand-row select pays for each value it looks at.
        self._parts: list[
            tuple[type[Model], list[str], list[tuple[int, Any, list[Converter]]]]
        ] = []
        for model, alias, names in parts:
            fields = [f for f in model._meta.concrete_fields if names is None or f.attname in names]
            converters = []
            for index, field in enumerate(fields):
                col = field.get_col(alias)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if found:
                    converters.append((index, col, found))
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
            values = list(row[at : at + len(attnames)])
            at += len(attnames)
            for index, col, found in converters:
                for convert in found:
                    values[index] = convert(values[index], col, connection)
            out.append(model.from_db(connection.alias, attnames, values))
        return out + list(row[at:])


def table_name(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# SQLite allows 32,766 parameters in one statement.
_MAX_PARAMETERS = 32_000

# Fields whose PostgreSQL preparation (``get_db_prep_save``) returns a value of this Python type
# unchanged: such a column is passed to the driver as it is, which for 10,000 rows saves more
# time than the statement takes. Anything else (a JSON field, a naive datetime, a float for a
# decimal) goes through the field as an ordinary save would.
_NATIVE: dict[str, type | tuple[type, ...]] = {
    "AutoField": int,
    "BigAutoField": int,
    "BigIntegerField": int,
    "PositiveBigIntegerField": int,
    "IntegerField": int,
    "PositiveIntegerField": int,
    "PositiveSmallIntegerField": int,
    "SmallIntegerField": int,
    "ForeignKey": int,
    "OneToOneField": int,
    "BooleanField": bool,
    "CharField": str,
    "TextField": str,
    "DecimalField": Decimal,
    "DateTimeField": datetime,
}


def _native(field: Field[Any, Any], values: Sequence[Any]) -> bool:
    """True if every value is None or of the Python type the field would pass on unchanged."""
    kind = _NATIVE.get(field.get_internal_type())
    if kind is None:
        return False
    # Exact types, checked in C (``map``): a bool is an int, but a bool in an integer column,
    # like any subclass but a str enum's member, is left to the field.
    types = set(map(type, values)) - {type(None)}
    if not all(t is kind or (kind is str and issubclass(t, str)) for t in types):
        return False
    if kind is datetime:
        # A naive datetime is the field's to warn about and make aware.
        return None not in map(datetime.utcoffset, filter(None, values))
    return True


def _column(field: Field[Any, Any], values: Sequence[Any]) -> list[Any]:
    """One column's values prepared for the database, as ``save`` would prepare them."""
    if connection.vendor == "postgresql" and _native(field, values):
        return list(values)
    return [field.get_db_prep_save(value, connection) for value in values]


def _array_type(field: Field[Any, Any]) -> str:
    return f"{field.rel_db_type(connection) if field.is_relation else field.db_type(connection)}[]"


def update_rows(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Set ``fields`` of many rows, each ``(pk, value, ...)``, in one statement.

    On PostgreSQL, ``UPDATE t SET f = v.f, ... FROM unnest(%b::type[], ...) v WHERE t.id = v.id``:
    one array parameter per column, whatever the number of rows. ``bulk_update`` writes a CASE
    with a branch per row and field, which Django compiles and the database evaluates row by
    row, and a VALUES list needs a placeholder per value, which the driver then scans one by one
    (a second for 10,000 rows of three fields). On SQLite, ``FROM (VALUES ...)`` per chunk of
    32,000 parameters. Values are prepared by the fields themselves, as an ordinary save would.
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
    assignments = ", ".join(
        f"{connection.ops.quote_name(field.column or field.name)} = v.v{i}"
        for i, field in enumerate(targets)
    )
    if connection.vendor == "postgresql":
        columns = [
            _column(field, [row[i] for row in rows])
            for i, field in enumerate([meta.pk, *targets], start=0)
        ]
        # Binary parameters (%b): the driver packs an array of 10,000 decimals in a third of the
        # time the text form takes.
        arrays = ", ".join(f"%b::{_array_type(f)}" for f in [meta.pk, *targets])
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM unnest({arrays}) "  # noqa: S608 - names only
                f"AS v({', '.join(names)}) WHERE {table}.{pk_column} = v.id",
                columns,
            )
        return
    # SQLite stores what it gets (and its CAST to a type it does not know, such as datetime,
    # would keep only a leading number), so no cast is applied.
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


def insert_rows(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert many rows of ``fields`` (attribute names, e.g. ``buyer_id``) in one statement.

    For thousands of rows where model instances would cost more than the insert: no instance
    is built, no primary key is returned. A concrete field not in ``fields`` gets what a new
    instance would hold (its default, one value for all rows, e.g. one ``now``; "" for text;
    else NULL), or its database default if it has only that.
    PostgreSQL: ``COPY t (columns) FROM STDIN`` (the driver formats the rows in C: for 10,000
    trades a third of the client time of an INSERT from arrays); SQLite: ``executemany``.
    Values are prepared by the fields, as ``save`` would.
    """
    if not rows:
        return
    meta = model._meta
    by_attname = {field.attname: field for field in meta.concrete_fields}
    targets = [by_attname[name] for name in fields]
    columns = [[row[i] for row in rows] for i in range(len(targets))]
    for field in meta.concrete_fields:
        if field in targets or field.primary_key:
            continue
        if not field.has_default() and field.has_db_default():
            continue  # the database fills it in
        # What a new instance would hold: its default, "" for text, else None.
        targets.append(field)
        columns.append([field.get_default()] * len(rows))
    prepared = [_column(field, column) for field, column in zip(targets, columns, strict=True)]
    table = table_name(model)
    names = ", ".join(connection.ops.quote_name(f.column or f.attname) for f in targets)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in zip(*prepared, strict=True):
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(targets))
        cursor.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({placeholders})",  # noqa: S608 - names only
            list(zip(*prepared, strict=True)),
        )
