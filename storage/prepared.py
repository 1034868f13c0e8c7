"""Prebuilt statements that run through SQLAlchemy, or on SQLite straight through ``sqlite3``.

A short statement costs SQLite less than SQLAlchemy's work around each execution (finding the
compiled form, processing parameters and rows); on the claim path that is most of a claim's
time. A :class:`Prepared` statement is written once, in SQLAlchemy Core, and run either way:
the fast path sends its SQLite compilation to the ``sqlite3`` connection under the transaction,
converting parameters and results with the very type processors SQLAlchemy would apply, so
both ways give the same rows.
"""

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from storage.types import UTCDateTime

Row = dict[str, Any]
Driver = sqlite3.Connection | None
_Processor = Callable[[Any], Any]


_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled for one dialect, with what converting its values takes."""

    sql: str
    positional: bool
    # Each parameter in the order the driver takes it: name, converter, default value.
    slots: tuple[tuple[str, _Processor | None, Any], ...]
    results: tuple[tuple[int, _Processor], ...]


class Prepared:
    """One named Core statement, built once, run with the same parameters and results either way.

    Given the ``sqlite3`` connection under the transaction (:func:`sqlite_driver`), it runs
    there; otherwise as ordinary SQLAlchemy Core on ``conn``.
    """

    def __init__(self, name: str, statement: sa.Executable) -> None:
        self.name = name
        self.statement = statement
        self._compiled: dict[tuple[int, tuple[str, ...]], _Compiled] = {}

    def __repr__(self) -> str:
        return f"Prepared({self.name!r})"

    def rows(
        self, conn: Connection, params: Mapping[str, Any], *, driver: Driver = None
    ) -> list[Row]:
        """Every row the statement returns, as dicts keyed by column name."""
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

    def first(
        self, conn: Connection, params: Mapping[str, Any], *, driver: Driver = None
    ) -> Row | None:
        """The first row the statement returns, or None."""
        found = self.rows(conn, params, driver=driver)
        return found[0] if found else None

    def scalar(self, conn: Connection, params: Mapping[str, Any], *, driver: Driver = None) -> Any:
        """The first column of the first row, or None."""
        row = self.first(conn, params, driver=driver)
        return next(iter(row.values())) if row else None

    def rowcount(
        self, conn: Connection, params: Mapping[str, Any], *, driver: Driver = None
    ) -> int:
        """Run a statement that returns no rows; how many rows it changed."""
        if driver is None:
            return int(conn.execute(self.statement, dict(params)).rowcount)
        c = self._compile(conn.dialect)
        cursor = driver.execute(c.sql, _values(c, params))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def many(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]], *, driver: Driver = None
    ) -> None:
        """Run the statement once per parameter set (an INSERT of several rows)."""
        if not rows:
            return
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
        return c.sql, _values(c, params)

    def _compile(self, dialect: sa.Dialect, keys: tuple[str, ...] = ()) -> _Compiled:
        found = self._compiled.get((id(dialect), keys))
        if found is None:
            found = _compile(self.statement, dialect, keys)
            self._compiled[(id(dialect), keys)] = found
        return found


def sqlite_driver(conn: Connection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under this transaction, or None on other databases."""
    if conn.dialect.driver != "pysqlite":
        return None
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _compile(statement: sa.Executable, dialect: sa.Dialect, keys: tuple[str, ...]) -> _Compiled:
    if dialect.name == "sqlite":
        # sqlite3 binds ``:name`` parameters by name: a parameter used in several places
        # (the claimer's kinds in every branch of task next) is converted and passed once.
        dialect = _named_sqlite(dialect)
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    order = compiled.positiontup if compiled.positional else list(compiled.binds)
    slots = []
    for name in order or ():
        bind = compiled.binds[name]
        assert not bind.expanding, f"{name}: expanding parameters are not prebuilt"
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None and isinstance(bind.type, UTCDateTime):
            # A batch of claims shares a few moments: convert each once.
            processor = lru_cache(maxsize=64)(processor)
        default = _MISSING if bind.required else bind.effective_value
        slots.append((name, processor, default))
    results: list[tuple[int, _Processor]] = []
    for i, column in enumerate(getattr(statement, "exported_columns", ())):
        processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if processor is not None:
            results.append((i, processor))
    return _Compiled(compiled.string, compiled.positional, tuple(slots), tuple(results))


def _values(c: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
    """The parameters the driver gets: given ones and the statement's constants, converted.

    In order for a positional paramstyle, by name for a named one.
    """
    values = []
    for name, convert, default in c.slots:
        value = params.get(name, default)
        if value is _MISSING:
            raise KeyError(f"no value for parameter {name!r}")
        values.append(convert(value) if convert is not None and value is not None else value)
    if c.positional:
        return tuple(values)
    return {name: value for (name, _, _), value in zip(c.slots, values, strict=True)}


@lru_cache(maxsize=8)
def _named_sqlite(dialect: sa.Dialect) -> sa.Dialect:
    """The same SQLite dialect, compiling ``:name`` parameters."""
    return type(dialect)(paramstyle="named", dbapi=dialect.dbapi)  # type: ignore[call-arg]


def _row(c: _Compiled, names: tuple[str, ...], raw: Sequence[Any]) -> Row:
    values = list(raw)
    for i, processor in c.results:
        values[i] = processor(values[i])
    return dict(zip(names, values, strict=True))
