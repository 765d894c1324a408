"""One lease: a row of a state table held by one holder until an expiry, so one process at a time
does a piece of work (syncs a customer, captures a company, writes the shop's products).

A `Lease` works on any state table with a holder column and an expiry column (epoch seconds),
the row named by the table's key. `claim` takes the row when it is free (never held, released, or
its expiry passed) or extends the claimant's own hold; `renew` extends the holder's own hold only,
even one run out that nobody took, and says False once another holder claimed the row (they may
have written meanwhile); `release` ends the holder's hold (the row stays, with its other columns).
Each runs one short transaction of its own, one atomic statement deciding.

Every process names itself with `holder_id()`: host, process id and a random part, so two
processes, even on hosts that share a name, never hold one row at once.
"""

import dataclasses
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from exsync.state.errors import DuplicateRowError, StateError
from exsync.state.tables import StateDatabase, StateTable

__all__ = ["HeldLease", "Lease", "holder_id", "updated_rows"]


def holder_id() -> str:
    """This process's name as a lease holder (unique: host, process id, a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def updated_rows(cursor: Any) -> int:
    """Rows an UPDATE matched; a lease or a version check is meaningless without it."""
    if cursor.rowcount < 0:
        raise StateError("the state database's driver does not report updated rows")
    return int(cursor.rowcount)


class Lease:
    """Leases over the rows of `table`, held in its `holder_column` until its `expires_column`."""

    def __init__(self, *, database: StateDatabase, table: StateTable, holder_column: str = "holder",
                 expires_column: str = "lease_expires") -> None:
        self.database = database
        quote = database.dialect.quote
        self.table_sql = table.sql_name(database)
        self.key_sql = [quote(table.columns[name].name) for name in table.key]
        self.holder_sql = quote(table.columns[holder_column].name)
        self.expires_sql = quote(table.columns[expires_column].name)
        self._where_key = " AND ".join(f"{column} = ?" for column in self.key_sql)

    def claim(self, key: Sequence[object], *, holder: str, now: float, seconds: float) -> bool:
        """Takes the row of `key` for `seconds` from `now`, or extends `holder`'s own hold; False
        while another holder's hold runs. A key without a row gets one holding only the lease."""
        key = tuple(key)
        dialect = self.database.dialect
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table_sql} SET {self.holder_sql} = ?, {self.expires_sql} = ? "
                           f"WHERE {self._where_key} AND ({self.expires_sql} <= ? OR {self.holder_sql} = ?)",
                           (holder, now + seconds, *key, now, holder))
            if updated_rows(cursor):
                return True
            try:
                cursor.execute(dialect.insert_if_absent(self.table_sql, [*self.key_sql, self.holder_sql,
                                                                         self.expires_sql], self.key_sql),
                               dialect.insert_if_absent_params((*key, holder, now + seconds), key))
            except DuplicateRowError:
                return False  # another process inserted the row between the two statements
            return updated_rows(cursor) == 1

    def renew(self, key: Sequence[object], *, holder: str, now: float, seconds: float) -> bool:
        """Extends `holder`'s own hold, even one run out that nobody took; False once another
        holder claimed the row, even if they have released it since (they may have written)."""
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table_sql} SET {self.expires_sql} = ? "
                           f"WHERE {self._where_key} AND {self.holder_sql} = ?", (now + seconds, *tuple(key), holder))
            return bool(updated_rows(cursor))

    def release(self, key: Sequence[object], *, holder: str) -> None:
        """Ends `holder`'s hold (nothing when another holder has the row)."""
        with self.database.transaction() as cursor:
            cursor.execute(f"UPDATE {self.table_sql} SET {self.expires_sql} = 0 "
                           f"WHERE {self._where_key} AND {self.holder_sql} = ?", (*tuple(key), holder))

    def held(self, key: Sequence[object], *, holder: str, seconds: float,
             clock: Callable[[], float] = time.time) -> "HeldLease":
        """One row's lease for one holder (a process's work on one named thing)."""
        return HeldLease(lease=self, key=tuple(key), holder=holder, seconds=seconds, clock=clock)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeldLease:
    """One row's lease as one holder uses it: `claim()`, `renew()`, `release()` (see Lease)."""

    lease: Lease
    key: tuple[object, ...]
    holder: str
    seconds: float
    clock: Callable[[], float] = time.time

    def claim(self) -> bool:
        return self.lease.claim(self.key, holder=self.holder, now=self.clock(), seconds=self.seconds)

    def renew(self) -> bool:
        return self.lease.renew(self.key, holder=self.holder, now=self.clock(), seconds=self.seconds)

    def release(self) -> None:
        self.lease.release(self.key, holder=self.holder)
