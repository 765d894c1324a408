"""exsync's own state: its tables, one lease, and the stores the consumers keep their rows in.

The package stands below the Exchequer layer and the consumers (it imports neither): they hand it
a database connection (the Exchequer layer's, see StateDatabase) and keep their rules to themselves.

    create_state_tables(database, ORDER_TABLES)
    lease = Lease(database=database, table=CURSOR_TABLE).held(("ZZZZ01",), holder=holder_id(), seconds=120)
    if lease.claim(): ...
"""

from exsync.state.errors import DuplicateRowError, LinkChangedError, StateError
from exsync.state.lease import HeldLease, Lease, holder_id, updated_rows
from exsync.state.tables import (
    ColumnLike,
    StateColumn,
    StateDatabase,
    StateTable,
    create_state_tables,
    text_column,
)
from exsync.state.values import STATE_VALUES_TABLE, StateValues

__all__ = [
    "STATE_VALUES_TABLE",
    "ColumnLike",
    "DuplicateRowError",
    "HeldLease",
    "Lease",
    "LinkChangedError",
    "StateColumn",
    "StateDatabase",
    "StateError",
    "StateTable",
    "StateValues",
    "create_state_tables",
    "holder_id",
    "text_column",
    "updated_rows",
]
