"""The one table mechanism: keys, unique keys, indexes, nullable text, 64-bit ids, and the upgrade
of tables an earlier version made."""

import pytest

from exsync.exchequer import DuplicateKeyError
from exsync.state import DuplicateRowError, StateColumn, StateTable, create_state_tables

WIDE = 2**40

TABLE = StateTable(name="widgets", uniques=(("widget_id",),), indexes=(("colour",),), columns={
    "widget_id": StateColumn("widget_id", "bigint"),
    "colour": StateColumn("colour", "str:16"),
    "body": StateColumn("body", "text"),
    "count": StateColumn("count", "int"),
})


def test_a_table_is_created_once_with_its_unique_key_and_nullable_text(state_database):
    create_state_tables(state_database, (TABLE,))
    create_state_tables(state_database, (TABLE,))  # idempotent
    table = TABLE.sql_name(state_database)
    with state_database.transaction() as cursor:
        cursor.execute(f'INSERT INTO {table} ("widget_id", "colour") VALUES (?, ?)', (WIDE, "red"))
    with state_database.transaction(write=False) as cursor:
        row = cursor.execute(f'SELECT "widget_id", "colour", "body", "count" FROM {table}').fetchone()
    assert (int(row[0]), row[1], row[2], int(row[3])) == (WIDE, "red", None, 0)
    with pytest.raises(DuplicateRowError), state_database.transaction() as cursor:
        cursor.execute(f'INSERT INTO {table} ("widget_id", "colour") VALUES (?, ?)', (WIDE, "blue"))


def test_the_database_layer_duplicate_key_error_is_the_state_packages():
    assert issubclass(DuplicateKeyError, DuplicateRowError)


def test_an_older_table_gains_its_missing_columns_and_wide_ids(state_database):
    older = StateTable(name="widgets", key=("widget_id",), columns={
        "widget_id": StateColumn("widget_id", "int"),
        "colour": StateColumn("colour", "str:16"),
    })
    create_state_tables(state_database, (older,))
    create_state_tables(state_database, (TABLE,))
    table = TABLE.sql_name(state_database)
    with state_database.transaction() as cursor:
        cursor.execute(f'INSERT INTO {table} ("widget_id", "colour", "body", "count") VALUES (?, ?, ?, ?)',
                       (WIDE, "green", '{"a": 1}', 3))
    with state_database.transaction(write=False) as cursor:
        row = cursor.execute(f'SELECT "widget_id", "body", "count" FROM {table}').fetchone()
    assert (int(row[0]), row[1], int(row[2])) == (WIDE, '{"a": 1}', 3)
