"""Plain SQL for the few statements on an annotator's hot path (token check, claim, submit).

Two costs dominate those requests on a small machine, and neither is the database's work:
building a query through the ORM (~0.5–3 ms of Python each) and PostgreSQL planning it again
on every call (a claim's candidate query plans in 0.4 ms and runs in 0.1). So these
statements are written once as SQL text and, on PostgreSQL, sent with server-side binding as
prepared statements (planned once per pooled connection). The same text runs on SQLite
through Django's cursor. Rows become model instances through the fields' own converters,
as the ORM would build them.

Placeholders are `%(name)s`; datetimes are passed as aware datetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)
Params = Mapping[str, Any]
Converter = Callable[[Any, Any, Any], Any]


def columns(model: type[Model], alias: str) -> str:
    """The model's columns, in the order fetch_model expects them first."""
    return ", ".join(f"{alias}.{field.column}" for field in model._meta.concrete_fields)


@contextmanager
def _cursor() -> Iterator[Any]:
    with connection.wrap_database_errors:  # Django's IntegrityError etc., as from the ORM
        if connection.vendor == "postgresql":
            import psycopg

            connection.ensure_connection()
            with psycopg.Cursor(connection.connection) as cursor:  # server-side binding
                yield cursor
        else:
            with connection.cursor() as cursor:
                yield cursor


def _run(cursor: Any, sql: str, params: Params) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(sql, params, prepare=True)
    else:
        adapt = connection.ops.adapt_datetimefield_value
        cursor.execute(
            sql, {k: adapt(v) if isinstance(v, datetime) else v for k, v in params.items()}
        )


def execute(sql: str, params: Params) -> int:
    """Run a statement; the number of rows it changed."""
    with _cursor() as cursor:
        _run(cursor, sql, params)
        return int(cursor.rowcount)


def fetch_one(sql: str, params: Params) -> tuple[Any, ...] | None:
    with _cursor() as cursor:
        _run(cursor, sql, params)
        row = cursor.fetchone()
    return tuple(row) if row is not None else None


def fetch_all(sql: str, params: Params) -> list[tuple[Any, ...]]:
    with _cursor() as cursor:
        _run(cursor, sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def insert(instance: M) -> M:
    """INSERT one new instance (its pk comes back), as a prepared statement."""
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    statement = _insert_statement(type(instance))
    params = {
        field.attname: field.get_db_prep_save(getattr(instance, field.attname), connection)
        for field in fields
    }
    with _cursor() as cursor:
        _run(cursor, statement, params)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


@cache
def _insert_statement(model: type[Model]) -> str:
    meta = model._meta
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    names = ", ".join(str(field.column) for field in fields)
    values = ", ".join(f"%({field.attname})s" for field in fields)
    return f"INSERT INTO {meta.db_table} ({names}) VALUES ({values}) RETURNING {meta.pk.column}"


def fetch_model(model: type[M], sql: str, params: Params) -> tuple[M, tuple[Any, ...]] | None:
    """The first row as a model instance (its columns first, see columns()) and the values of
    any columns the SELECT lists after them; None when there is no row."""
    found = fetch_models(sql, params, model)
    return (found[0][0], found[1]) if found else None  # type: ignore[return-value]


def fetch_models(
    sql: str, params: Params, *models: type[Model]
) -> tuple[list[Model], tuple[Any, ...]] | None:
    """The first row as one instance of each model, from consecutive groups of columns (see
    columns()), and the values of any columns after them; None when there is no row."""
    row = fetch_one(sql, params)
    if row is None:
        return None
    instances = []
    start = 0
    for model in models:
        converters = _converters(model, connection.vendor)
        values = list(row[start : start + len(converters)])
        for index, (expression, functions) in enumerate(converters):
            for convert in functions:
                values[index] = convert(values[index], expression, connection)
        names = [field.attname for field in model._meta.concrete_fields]
        instances.append(model.from_db(connection.alias, names, values))
        start += len(converters)
    return instances, row[start:]


@cache
def _converters(model: type[Model], vendor: str) -> Sequence[tuple[Any, list[Converter]]]:
    found = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        found.append(
            (
                column,
                connection.ops.get_db_converters(column) + column.get_db_converters(connection),
            )
        )
    return found
