"""exsync's own state: its tables, one lease, and the stores the consumers keep their rows in.

- tables.py: `StateTable` declares a table (columns, primary key, unique keys, indexes);
  `create_state_tables` creates what is missing and upgrades older tables.
- lease.py: `Lease` (claim, renew, release over a holder and an expiry) and `holder_id()`.
- values.py: `StateValues`, small named values (the reconciler's watermarks).
- orders.py, links.py: the order pipeline's and the customer sync's stores (their SQL; the rules
  stay in the consumers).

The package stands below the Exchequer layer and the consumers (it imports neither), so capture
and the consumers both use it: they hand it a database connection (the Exchequer layer's, see
`StateDatabase`), and the database layer's DuplicateKeyError is this package's DuplicateRowError.
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
