"""The integration's own tables (capture fingerprints, lease, writer state): declared and created here.

They live where `mapping.bind(dialect).state_table(name)` puts them (the state schema, or a table
prefix on SQLite), in the state database, which may be the Exchequer company's own.
"""

import dataclasses

from exsync.exchequer.errors import DuplicateKeyError
from exsync.exchequer.mapping import Column

__all__ = ["STATE_VALUES_TABLE", "StateTable", "StateValues", "create_state_tables", "text_column"]

_CREATE_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class StateTable:
    """One state table: its name, columns (logical name -> Column) and primary key columns."""

    name: str
    columns: dict
    key: tuple

    def sql_name(self, database):
        return database.names.state_table(self.name)


def _column_sql(dialect, column):
    sql_type = dialect.column_type(column.kind)
    if column.kind.startswith("str:"):
        return f"{dialect.quote(column.name)} {sql_type} NOT NULL DEFAULT ''"
    return f"{dialect.quote(column.name)} {sql_type} NOT NULL DEFAULT 0"


def create_state_tables(database, tables):
    """Creates the state schema and `tables` where missing; existing tables are left alone.

    Processes starting together race on `IF NOT EXISTS` (PostgreSQL checks the catalogue before it
    inserts): a unique-key error means another one created it first, so the statements run again."""
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            _create(database, tables)
            return
        except DuplicateKeyError:
            if attempt == _CREATE_ATTEMPTS:
                raise


def _create(database, tables):
    dialect = database.dialect
    with database.transaction() as cursor:
        schema_sql = dialect.create_schema(database.mapping.state_schema)
        if schema_sql:
            cursor.execute(schema_sql)
        for table in tables:
            table_sql = table.sql_name(database)
            literal = table_sql.replace('"', "")
            body = ", ".join(_column_sql(dialect, column) for column in table.columns.values())
            keys = ", ".join(dialect.quote(table.columns[name].name) for name in table.key)
            cursor.execute(dialect.create_table(table_sql, literal, f"{body}, PRIMARY KEY ({keys})"))


def text_column(name):
    """A column for a JSON document (up to 4,000 characters)."""
    return Column(name, "str:4000")


STATE_VALUES_TABLE = StateTable(name="state_values", key=("name",), columns={
    "name": Column("name", "str:200"),
    "value": Column("value", "str:400"),
})


class StateValues:
    """Small named values (the reconciler's watermarks) in the state database: `get` and `set`,
    each its own transaction, so a value set survives the process and its pod."""

    def __init__(self, *, database):
        self.database = database
        self.sql = STATE_VALUES_TABLE.sql_name(database)

    def ensure(self):
        create_state_tables(self.database, (STATE_VALUES_TABLE,))
        return self

    def get(self, key):
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "value" FROM {self.sql} WHERE "name" = ?', (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key, value):
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.sql} SET "value" = ? WHERE "name" = ?', (value, key))
            if cursor.rowcount:
                return
        try:
            with self.database.transaction() as cursor:
                cursor.execute(f'INSERT INTO {self.sql} ("name", "value") VALUES (?, ?)', (key, value))
        except DuplicateKeyError:
            # Another process inserted the key between the two transactions: its row takes this value.
            with self.database.transaction() as cursor:
                cursor.execute(f'UPDATE {self.sql} SET "value" = ? WHERE "name" = ?', (value, key))
