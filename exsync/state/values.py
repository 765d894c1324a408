"""Small named values (the reconciler's watermarks) in the state database."""

from exsync.state.errors import DuplicateRowError
from exsync.state.tables import StateColumn, StateDatabase, StateTable, create_state_tables

__all__ = ["STATE_VALUES_TABLE", "StateValues"]

STATE_VALUES_TABLE = StateTable(name="state_values", key=("name",), columns={
    "name": StateColumn("name", "str:200"),
    "value": StateColumn("value", "str:400"),
})


class StateValues:
    """Small named values in the state database: `get` and `set`, each its own transaction, so a
    value set survives the process and its pod."""

    def __init__(self, *, database: StateDatabase) -> None:
        self.database = database
        self.sql = STATE_VALUES_TABLE.sql_name(database)

    def ensure(self) -> "StateValues":
        create_state_tables(self.database, (STATE_VALUES_TABLE,))
        return self

    def get(self, key: str) -> str | None:
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "value" FROM {self.sql} WHERE "name" = ?', (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key: str, value: str) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.sql} SET "value" = ? WHERE "name" = ?', (value, key))
            if cursor.rowcount:
                return
        try:
            with self.database.transaction() as cursor:
                cursor.execute(f'INSERT INTO {self.sql} ("name", "value") VALUES (?, ?)', (key, value))
        except DuplicateRowError:
            # Another process inserted the key between the two transactions: its row takes this value.
            with self.database.transaction() as cursor:
                cursor.execute(f'UPDATE {self.sql} SET "value" = ? WHERE "name" = ?', (value, key))
