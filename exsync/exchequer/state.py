"""The integration's own tables (capture fingerprints, lease, writer state): declared and created here.

They live where `mapping.bind(dialect).state_table(name)` puts them (the state schema, or a table
prefix on SQLite), in the state database, which may be the Exchequer company's own.
"""

import dataclasses

from exsync.exchequer.mapping import Column

__all__ = ["StateTable", "create_state_tables", "text_column"]


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
    """Creates the state schema and `tables` where missing; existing tables are left alone."""
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
