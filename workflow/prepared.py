"""Prepared statements: SQLAlchemy Core statements compiled once per dialect and executed on
the DBAPI cursor of the current transaction.

The hot path (a fire: load, compare-and-set, event insert, count upsert) runs four statements
per unit of work. SQLAlchemy's execution layer costs several times what SQLite takes to run
them (measured in ``bench/FINDINGS.md``), so these statements skip it: each is compiled once
per dialect, its parameters go through SQLAlchemy's *own* bind processors (so what is stored
is byte for byte what ``Connection.execute`` would store) and its rows through the result
processors. They run inside the caller's SQLAlchemy transaction, on the same DBAPI
connection; a driver error comes back as SQLAlchemy's ``DBAPIError`` (with ``orig`` and, for
a lost connection, the connection invalidated), exactly as from ``Connection.execute``.

Unlike ``Connection.execute``, these statements fire no ``before_cursor_execute`` /
``handle_error`` events and are not echoed by ``echo=True``.

Only plain statements qualify: every bound name must be given by the caller (no Python-side
column defaults, no expanding or literal-rendered parameters). :class:`Prepared` checks that
when it compiles, so a statement that would need SQLAlchemy's execution context fails loudly.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

__all__ = ["Prepared", "driver_sql", "translated"]

Processor = Callable[[Any], Any]


class _Compiled:
    __slots__ = ("bind_at", "columns", "keys", "names", "positional", "result_at", "sql")

    def __init__(self, stmt: Any, dialect: Dialect, keys: Sequence[str] | None) -> None:
        # for_executemany: no implicit RETURNING of an INSERT's new id (nobody reads it)
        compiled = stmt.compile(
            dialect=dialect, column_keys=list(keys) if keys else None, for_executemany=True
        )
        self.sql: str = compiled.string
        self.positional: bool = bool(compiled.positional)
        names = list(compiled.positiontup or []) if self.positional else list(compiled.binds)
        missing = [n for n in names if keys is not None and n not in keys]
        plain = all(
            b.callable is None and (b.value is None or b.required) for b in compiled.binds.values()
        )
        if missing or not plain or compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError(
                f"statement needs SQLAlchemy's execution context (defaults for {missing}, "
                "literal or callable values)"
            )
        self.names: tuple[str, ...] = tuple(names)
        # named styles: a bind name the driver cannot take is escaped in the SQL text
        escaped = dict(compiled.escaped_bind_names or {})
        self.keys = tuple(escaped.get(n, n) for n in names)
        procs = {
            n: compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
            for n in dict.fromkeys(names)
        }
        # where each processor applies: a position (qmark) or a parameter name (pyformat)
        spots = range(len(names)) if self.positional else self.keys
        self.bind_at: list[tuple[Any, Processor]] = [
            (at, procs[n]) for at, n in zip(spots, names, strict=True) if procs[n] is not None
        ]
        self.columns: tuple[str, ...] = ()
        self.result_at: list[tuple[str, Processor]] = []
        # a SELECT's columns, or what an INSERT/UPDATE ... RETURNING gives back
        if isinstance(stmt, sa.Select) or getattr(stmt, "_returning", None):
            selected = stmt.exported_columns
            self.columns = tuple(selected.keys())
            for name, col in zip(self.columns, selected, strict=True):
                proc = col.type.dialect_impl(dialect).result_processor(dialect, None)
                if proc is not None:
                    self.result_at.append((name, proc))

    def processed(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for ``values``: bind processors applied (to None too, as
        SQLAlchemy does: a JSON None is stored as ``null``), in bind order."""
        out: Any
        if self.positional:
            out = [values[n] for n in self.names]
        else:
            out = {key: values[n] for n, key in zip(self.names, self.keys, strict=True)}
        for at, p in self.bind_at:
            out[at] = p(out[at])
        return tuple(out) if self.positional else out

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        out = dict(zip(self.columns, raw, strict=True))
        for name, p in self.result_at:
            out[name] = p(out[name])
        return out


class Prepared:
    """``stmt``, compiled on first use per dialect. ``keys``: for an INSERT, the columns every
    row gives (the statement is compiled for exactly those)."""

    def __init__(self, stmt: Any, keys: Iterable[str] | None = None) -> None:
        self.stmt = stmt
        self.keys = tuple(keys) if keys is not None else None
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def compiled(self, dialect: Dialect) -> _Compiled:
        c = self._compiled.get(dialect)
        if c is None:
            c = self._compiled[dialect] = _Compiled(self.stmt, dialect, self.keys)
        return c

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run with one set of values; the number of rows it matched."""
        c = self.compiled(conn.dialect)
        return _run(conn, c.sql, c.processed(values))[0]

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        c = self.compiled(conn.dialect)
        if len(rows) == 1:
            _run(conn, c.sql, c.processed(rows[0]))
        else:
            _run(conn, c.sql, [c.processed(r) for r in rows], many=True)

    def returned_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """PostgreSQL (psycopg): run with each set of values in one round trip (an
        ``executemany`` psycopg pipelines); the first column of every row the statement
        returned (``RETURNING``), in order."""
        c = self.compiled(conn.dialect)
        returned: list[Any] = _run(
            conn, c.sql, [c.processed(r) for r in rows], many=True, returned=True
        )[1]
        return returned

    def first(self, conn: Connection, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row as a dict keyed by the selected columns' names, or None."""
        c = self.compiled(conn.dialect)
        raw = _run(conn, c.sql, c.processed(values), fetch=True)[1]
        return None if raw is None else c.row(raw)


def driver_sql(conn: Connection, sql: str) -> None:
    """Run a parameterless statement on the DBAPI connection: ``BEGIN IMMEDIATE`` from inside
    SQLAlchemy's ``begin`` event, so it never begins a transaction itself."""
    _run(conn, sql, (), autobegin=False)


def _run(
    conn: Connection,
    sql: str,
    params: Any,
    *,
    many: bool = False,
    fetch: bool = False,
    returned: bool = False,
    autobegin: bool = True,
) -> tuple[int, Any]:
    """(rowcount, first row if ``fetch``; with ``many`` and ``returned``: the first column of
    every returned row). Like ``Connection.execute``: begins the connection's transaction when
    none is open, and turns any driver error - from the cursor, the statement or the fetch -
    into SQLAlchemy's, invalidating a lost connection."""
    if autobegin and not conn.in_transaction():
        conn.begin()
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cursor = None
    try:
        cursor = dbapi_conn.cursor()
        if many and returned:
            pg: Any = cursor  # (psycopg's cursor: ``returning`` and ``nextset``)
            pg.executemany(sql, params, returning=True)
            out: list[Any] = []
            while True:
                out.extend(r[0] for r in pg.fetchall())
                if not pg.nextset():
                    return pg.rowcount, out
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        return cursor.rowcount, (cursor.fetchone() if fetch else None)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise translated(conn, exc, sql, params, cursor) from exc
    finally:
        if cursor is not None:  # (a cursor of a connection that just went away may refuse)
            with contextlib.suppress(conn.dialect.loaded_dbapi.Error):
                cursor.close()


def translated(
    conn: Connection, exc: Any, sql: str, params: Any, cursor: Any = None
) -> sa.exc.StatementError:
    """SQLAlchemy's error for a driver error of ``conn`` (as ``Connection.execute`` raises
    it), the connection invalidated when it was lost."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
    error: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        sql,
        params,
        exc,
        conn.dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )
    return error
