"""The one mechanism that declares and creates exsync's own tables (the state tables).

A `StateTable` names its columns (logical name -> column with a `name` and a `kind`), an optional
primary key, unique keys and indexes. `create_state_tables` creates what is missing and brings a
table made by an earlier version up to date: it adds the columns it lacks and, on PostgreSQL,
widens 32-bit columns declared `bigint` (SQLite's INTEGER is 64-bit already).

The tables live where `database.names.state_table(name)` puts them (the state schema, or a table
prefix on SQLite), in the state database, which may be the Exchequer company's own. The database
is the Exchequer layer's connection (exsync.exchequer.db), used through what `StateDatabase` names.
"""

import dataclasses
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from exsync.state.errors import DuplicateRowError

__all__ = ["ColumnLike", "StateColumn", "StateDatabase", "StateTable", "create_state_tables", "text_column"]

_CREATE_ATTEMPTS = 3
# A JSON document of up to this many characters (`text_column`).
TEXT_COLUMN_CHARS = 4000


class ColumnLike(Protocol):
    """A column of a state table: its physical name and kind (`int`, `bigint`, `float`, `str:<n>`,
    or `text`: unbounded and nullable)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


class StateDatabase(Protocol):
    """What the state tables use of a database connection (exsync.exchequer.db.Database)."""

    dialect: Any
    names: Any
    mapping: Any

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Any]: ...


@dataclasses.dataclass(frozen=True)
class StateColumn:
    """One column of a state table: its physical name and kind (see ColumnLike)."""

    name: str
    kind: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class StateTable:
    """One state table: its name, columns (logical name -> column), primary key columns (none:
    the table has none, e.g. one made before keys were declared), unique keys and indexes."""

    name: str
    columns: Mapping[str, ColumnLike]
    key: tuple[str, ...] = ()
    uniques: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    def sql_name(self, database: StateDatabase) -> str:
        return database.names.state_table(self.name)


def text_column(name: str) -> StateColumn:
    """A column for a JSON document (up to TEXT_COLUMN_CHARS characters)."""
    return StateColumn(name, f"str:{TEXT_COLUMN_CHARS}")


def _column_type(dialect: Any, kind: str) -> str:
    if kind == "text":
        return "VARCHAR(MAX)" if dialect.name == "mssql" else "TEXT"
    return dialect.column_type(kind)


def _column_sql(dialect: Any, column: ColumnLike) -> str:
    if column.kind == "text":
        default = "NULL"
    elif column.kind.startswith("str:"):
        default = dialect.string_default()
    else:
        default = "NOT NULL DEFAULT 0"
    return f"{dialect.quote(column.name)} {_column_type(dialect, column.kind)} {default}"


def create_state_tables(database: StateDatabase, tables: Iterable[StateTable]) -> None:
    """Creates the state schema and `tables` where missing, with their keys and indexes, and
    upgrades older ones (idempotent).

    Processes starting together race on `IF NOT EXISTS` (PostgreSQL checks the catalogue before it
    inserts): a unique-key error means another one created it first, so the statements run again."""
    tables = tuple(tables)
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            _create(database, tables)
            return
        except DuplicateRowError:
            if attempt == _CREATE_ATTEMPTS:
                raise


def _create(database: StateDatabase, tables: tuple[StateTable, ...]) -> None:
    dialect = database.dialect
    schema = database.mapping.state_schema if dialect.supports_schemas else None
    with database.transaction() as cursor:
        if schema is not None:
            cursor.execute(dialect.create_schema(schema))
        for table in tables:
            table_sql = table.sql_name(database)
            literal = table_sql.replace('"', "")
            body = ", ".join(_column_sql(dialect, column) for column in table.columns.values())
            if table.key:
                keys = ", ".join(dialect.quote(table.columns[name].name) for name in table.key)
                body += f", PRIMARY KEY ({keys})"
            cursor.execute(dialect.create_table(table_sql, literal, body))
            _upgrade(cursor, dialect, table_sql, schema, table)
            bare = literal.replace(".", "_")
            for unique, keys in [(True, key) for key in table.uniques] + [(False, key) for key in table.indexes]:
                names = [table.columns[name].name for name in keys]
                index_name = f"{bare}_{'_'.join(names)}_{'key' if unique else 'idx'}"
                cursor.execute(dialect.create_index(index_name, schema, table_sql,
                                                    [dialect.quote(name) for name in names], unique=unique))


def _upgrade(cursor: Any, dialect: Any, table_sql: str, schema: str | None, table: StateTable) -> None:
    """Brings a table made by an earlier version up to date: adds the columns it lacks and, on
    PostgreSQL, widens 32-bit columns declared `bigint` to BIGINT."""
    present = set(cursor.execute(f"SELECT * FROM {table_sql} WHERE 1 = 0").column_names)
    for column in table.columns.values():
        if column.name not in present:
            # IF NOT EXISTS: two processes starting at once may both find the column missing.
            keyword = "ADD COLUMN IF NOT EXISTS" if dialect.name == "postgresql" else "ADD"
            cursor.execute(f"ALTER TABLE {table_sql} {keyword} {_column_sql(dialect, column)}")
    wide = {column.name for column in table.columns.values() if column.kind == "bigint"}
    if dialect.name != "postgresql" or not wide:
        return
    narrow = [row[0] for row in cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "AND data_type = 'integer'", (schema or "public", table.name)).fetchall() if row[0] in wide]
    for name in narrow:
        cursor.execute(f"ALTER TABLE {table_sql} ALTER COLUMN {dialect.quote(name)} TYPE BIGINT")
