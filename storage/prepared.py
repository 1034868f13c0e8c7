"""Prebuilt statements that run through SQLAlchemy, or on SQLite straight through ``sqlite3``.

A short statement costs SQLite less than SQLAlchemy's work around each execution (finding the
compiled form, processing parameters and rows); on the claim path that is most of a claim's
time. A :class:`Prepared` statement is written once, in SQLAlchemy Core, and run either way:
``fast`` sends its SQLite compilation to the ``sqlite3`` connection under the transaction,
converting parameters and results with the very type processors SQLAlchemy would apply, so
both ways give the same rows.
"""

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

Row = dict[str, Any]
_Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled for one dialect, with what converting its values takes."""

    sql: str
    compiled: SQLCompiler
    order: tuple[str, ...]  # parameter names in the order of their ``?``
    binds: tuple[tuple[str, _Processor], ...]
    results: tuple[tuple[int, _Processor], ...]


class Prepared:
    """One named Core statement, built once, run with the same parameters and results either way.

    ``fast`` is honoured only on SQLite (pysqlite); everywhere else the statement runs as
    ordinary SQLAlchemy Core.
    """

    def __init__(self, name: str, statement: sa.Executable) -> None:
        self.name = name
        self.statement = statement
        self._compiled: dict[tuple[int, tuple[str, ...]], _Compiled] = {}

    def __repr__(self) -> str:
        return f"Prepared({self.name!r})"

    def rows(self, conn: Connection, params: Mapping[str, Any], *, fast: bool) -> list[Row]:
        """Every row the statement returns, as dicts keyed by column name."""
        driver = _driver(conn) if fast else None
        if driver is None:
            return [dict(r._mapping) for r in conn.execute(self.statement, dict(params))]
        c = self._compile(conn.dialect)
        cursor = driver.execute(c.sql, _values(c, params))
        try:
            found = cursor.fetchall()
            # The names SQLAlchemy would key the rows by: the statement's column labels.
            names = tuple(d[0] for d in cursor.description or ())
        finally:
            cursor.close()
        return [_row(c, names, raw) for raw in found]

    def first(self, conn: Connection, params: Mapping[str, Any], *, fast: bool) -> Row | None:
        """The first row the statement returns, or None."""
        found = self.rows(conn, params, fast=fast)
        return found[0] if found else None

    def scalar(self, conn: Connection, params: Mapping[str, Any], *, fast: bool) -> Any:
        """The first column of the first row, or None."""
        row = self.first(conn, params, fast=fast)
        return next(iter(row.values())) if row else None

    def rowcount(self, conn: Connection, params: Mapping[str, Any], *, fast: bool) -> int:
        """Run a statement that returns no rows; how many rows it changed."""
        driver = _driver(conn) if fast else None
        if driver is None:
            return int(conn.execute(self.statement, dict(params)).rowcount)
        c = self._compile(conn.dialect)
        cursor = driver.execute(c.sql, _values(c, params))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]], *, fast: bool) -> None:
        """Run the statement once per parameter set (an INSERT of several rows)."""
        if not rows:
            return
        driver = _driver(conn) if fast else None
        if driver is None:
            conn.execute(self.statement, [dict(r) for r in rows])
            return
        c = self._compile(conn.dialect, tuple(rows[0]))
        driver.executemany(c.sql, [_values(c, r) for r in rows]).close()

    def for_driver(
        self, dialect: sa.Dialect, params: Mapping[str, Any]
    ) -> tuple[str, tuple[Any, ...] | dict[str, Any]]:
        """The SQL text and parameters this statement hands the driver of ``dialect``.

        What the fast path sends, and what a benchmark's raw-driver floor can send itself.
        """
        c = self._compile(dialect)
        return c.sql, _values(c, params) if c.compiled.positional else _named(c, params)

    def _compile(self, dialect: sa.Dialect, keys: tuple[str, ...] = ()) -> _Compiled:
        found = self._compiled.get((id(dialect), keys))
        if found is None:
            found = _compile(self.statement, dialect, keys)
            self._compiled[(id(dialect), keys)] = found
        return found


def _driver(conn: Connection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under this transaction, or None on other databases."""
    if conn.dialect.driver != "pysqlite":
        return None
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _compile(statement: sa.Executable, dialect: sa.Dialect, keys: tuple[str, ...]) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    binds = []
    for name, bind in compiled.binds.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            binds.append((name, processor))
    results: list[tuple[int, _Processor]] = []
    for i, column in enumerate(getattr(statement, "exported_columns", ())):
        processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if processor is not None:
            results.append((i, processor))
    return _Compiled(
        sql=compiled.string,
        compiled=compiled,
        order=tuple(compiled.positiontup or ()),
        binds=tuple(binds),
        results=tuple(results),
    )


def _named(c: _Compiled, params: Mapping[str, Any]) -> dict[str, Any]:
    """The statement's parameters by name: given ones and its own constants, converted."""
    values = dict(c.compiled.construct_params(dict(params), escape_names=False))
    for name, processor in c.binds:
        value = values.get(name)
        if value is not None:
            values[name] = processor(value)
    return values


def _values(c: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """The statement's parameters in the order of its ``?`` marks."""
    values = _named(c, params)
    return tuple(values[name] for name in c.order)


def _row(c: _Compiled, names: tuple[str, ...], raw: Sequence[Any]) -> Row:
    values = list(raw)
    for i, processor in c.results:
        values[i] = processor(values[i])
    return dict(zip(names, values, strict=True))
