"""Connections: an ODBC connection string (pyodbc) or `sqlite:///path` (Python's sqlite3).

`connect()` returns a `Database`: one DB-API connection, its dialect, and the mapping bound to
it. Work happens inside `Database.transaction()`, whose `Cursor` translates every pyodbc and
sqlite3 exception into exsync.exchequer.errors where it enters. A Database is used by one
thread at a time; concurrent writers each connect on their own.
"""

import contextlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from exsync.exchequer.dialect import SQLITE, Dialect, dialect_for_dbms
from exsync.exchequer.errors import (
    ConnectError,
    DatabaseError,
    DriverNotInstalledError,
    DuplicateKeyError,
    RetryableError,
)
from exsync.exchequer.mapping import BoundNames, Mapping
from exsync.redact import redact, redact_odbc, secrets_in

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_SECONDS",
    "DEFAULT_FETCH_ROWS",
    "DEFAULT_LOGIN_TIMEOUT_SECONDS",
    "DRIVER_PACKAGES",
    "SQLITE_SCHEME",
    "Cursor",
    "Database",
    "connect",
    "ping",
]

SQLITE_SCHEME = "sqlite:///"
DEFAULT_FETCH_ROWS = 1000
DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
DEFAULT_LOGIN_TIMEOUT_SECONDS = 15
# The widest text parameter psqlODBC describes (and fast_executemany then sizes its buffers to).
_FAST_TEXT_CHARS = 255
# ODBC driver names (lower case) and the Debian package that provides each; None: vendor-only.
DRIVER_PACKAGES = {
    "postgresql unicode": "odbc-postgresql",
    "postgresql ansi": "odbc-postgresql",
    "odbc driver 18 for sql server": "msodbcsql18",
    "odbc driver 17 for sql server": "msodbcsql17",
    "freetds": "tdsodbc",
    "pervasive odbc interface": None,
    "pervasive odbc client interface": None,
    "pervasive odbc unicode interface": None,
    "zen odbc unicode interface": None,
}
# A row as the driver gives it: a tuple (sqlite3) or a pyodbc.Row, read by index.
Row = Any
# Statement parameters, `?` placeholders in order.
Params = Sequence[Any]
_DRIVER_PATTERN = re.compile(r"(?:^|;)\s*driver\s*=\s*(\{[^}]*\}|[^;]*)", re.IGNORECASE)


def _sqlstate(error: BaseException) -> str | None:
    args = getattr(error, "args", ())
    if args and isinstance(args[0], str) and len(args[0]) == 5:
        return args[0]
    return None


class Cursor:
    """A DB-API cursor whose driver exceptions come out as exsync.exchequer.errors."""

    def __init__(self, *, raw: Any, database: "Database") -> None:
        self._raw = raw
        self._database = database
        self.names = database.names

    def execute(self, sql: str, params: Params = ()) -> "Cursor":
        try:
            self._raw.execute(sql, params)
        except self._database.driver_errors as error:
            raise self._database.translate(error, sql) from error
        return self

    def executemany(self, sql: str, rows: Iterable[Params]) -> "Cursor":
        rows = list(rows)
        if not rows:
            return self
        # pyodbc's fast_executemany binds a varbinary whose first byte is NUL as a zero-length buffer
        # (HY090 from psqlODBC); Exchequer's Pascal strings and binary keys start with such bytes.
        # psqlODBC also describes every text parameter as 255 characters wide, so a longer string
        # (a customer decision's value, a refusal's text) is refused as truncated: the slow path binds each.
        fast = getattr(self._raw, "fast_executemany", False)
        if fast and (any(isinstance(value, (bytes, bytearray)) for value in rows[0])
                     or any(isinstance(value, str) and len(value) > _FAST_TEXT_CHARS for row in rows for value in row)):
            self._raw.fast_executemany = False
        try:
            self._raw.executemany(sql, rows)
        except self._database.driver_errors as error:
            raise self._database.translate(error, sql) from error
        finally:
            if fast:
                self._raw.fast_executemany = True
        return self

    def run(self, template: str, params: Params = ()) -> "Cursor":
        """Executes a mapping template (`{stock.code}` style names) with `?` parameters."""
        return self.execute(self.names.sql(template), params)

    def _fetch(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except self._database.driver_errors as error:
            raise self._database.translate(error, "fetch") from error

    def fetchone(self) -> Row | None:
        return self._fetch(self._raw.fetchone)

    def fetchall(self) -> list[Row]:
        return self._fetch(self._raw.fetchall)

    def fetchmany(self, rows: int = DEFAULT_FETCH_ROWS) -> list[Row]:
        return self._fetch(self._raw.fetchmany, rows)

    def iterate(self, rows: int = DEFAULT_FETCH_ROWS) -> Iterator[Row]:
        """Yields the result's rows, holding at most `rows` of them at a time."""
        while batch := self.fetchmany(rows):
            yield from batch

    def scalar(self, template: str, params: Params = ()) -> Any:
        row = self.run(template, params).fetchone()
        return None if row is None else row[0]

    @property
    def rowcount(self) -> int:
        return self._raw.rowcount

    @property
    def column_names(self) -> list[str]:
        """The names of the last SELECT's columns (DB-API `description`)."""
        return [column[0] for column in self._raw.description or ()]


class Database:
    """One connection to an Exchequer company (and, by default, the integration's state)."""

    def __init__(self, *, raw: Any, dialect: Dialect, mapping: Mapping,
                 driver_errors: tuple[type[BaseException], ...], dsn_label: str,
                 reopen: Callable[[], "Database"] | None = None) -> None:
        self.raw = raw
        self._reopen = reopen
        self._side: Database | None = None
        self.dialect = dialect
        self.mapping = mapping
        self.names: BoundNames = mapping.bind(dialect)
        self.driver_errors = driver_errors
        self.dsn_label = dsn_label
        self._in_transaction = False

    def translate(self, error: BaseException, sql: str) -> DatabaseError:
        """The exsync error for a driver exception raised by `sql`."""
        dialect = self.dialect
        message = f"{error} [in: {' '.join(sql.split())[:300]}]"
        if isinstance(error, sqlite3.IntegrityError):
            if "UNIQUE" in str(error) or "PRIMARY KEY" in str(error):
                return DuplicateKeyError(message)
            return DatabaseError(message)
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            return RetryableError(message)
        sqlstate = _sqlstate(error)
        if dialect.is_unique_violation(sqlstate):
            return DuplicateKeyError(message, sqlstate=sqlstate)
        if dialect.is_retryable(sqlstate):
            return RetryableError(message, sqlstate=sqlstate)
        return DatabaseError(message, sqlstate=sqlstate)

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Cursor]:
        """One database transaction: commits when the block ends, rolls back if it raises.

        `write` takes SQLite's write lock at the start (BEGIN IMMEDIATE) so two writers queue
        instead of failing half-way; servers lock rows as statements reach them.
        """
        if self._in_transaction:
            raise DatabaseError("transactions do not nest on one Database")
        self._in_transaction = True
        raw_cursor = None
        try:
            raw_cursor = self._begin(write)
            cursor = Cursor(raw=raw_cursor, database=self)
            try:
                yield cursor
            except BaseException:
                self._end(commit=False)
                raise
            self._end(commit=True)
        finally:
            if raw_cursor is not None:
                with contextlib.suppress(*self.driver_errors):
                    raw_cursor.close()
            self._in_transaction = False

    @contextlib.contextmanager
    def side_transaction(self) -> Iterator[Cursor]:
        """A transaction on a second connection to the same database (opened on first use), which
        commits on its own while one on this connection stays open: for what other writers must
        not wait on until this one's commit (a document counter)."""
        if self._side is None:
            if self._reopen is None:
                raise DatabaseError(f"{self.dsn_label}: this connection cannot open a second one")
            self._side = self._reopen()
        with self._side.transaction() as cursor:
            yield cursor

    def _begin(self, write: bool) -> Any:
        try:
            raw_cursor = self.raw.cursor()
            if self.dialect is SQLITE:
                raw_cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            elif self.dialect.fast_executemany:
                raw_cursor.fast_executemany = True
            return raw_cursor
        except self.driver_errors as error:
            raise self.translate(error, "BEGIN") from error

    def _end(self, *, commit: bool) -> None:
        try:
            if commit:
                self.raw.commit()
            else:
                self.raw.rollback()
        except self.driver_errors as error:
            if not commit:
                return
            with contextlib.suppress(*self.driver_errors):
                self.raw.rollback()
            raise self.translate(error, "COMMIT") from error

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None
        with contextlib.suppress(*self.driver_errors):
            self.raw.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({self.dialect.name}, {self.dsn_label}, {self.mapping!r})"


def _connect_sqlite(dsn: str, mapping: Mapping, busy_timeout_seconds: float) -> Database:
    path = dsn[len(SQLITE_SCHEME):]
    if not path:
        raise ConnectError(f"{dsn!r} names no file (sqlite:///relative/path or sqlite:////absolute/path)")
    if path != ":memory:":
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
    try:
        raw = sqlite3.connect(path, timeout=busy_timeout_seconds, isolation_level=None,
                              check_same_thread=False)
        if path != ":memory:":
            # WAL lets readers carry on while a writer holds the lock.
            raw.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as error:
        raise ConnectError(f"cannot open SQLite database {path!r}: {error}") from error
    return Database(raw=raw, dialect=SQLITE, mapping=mapping, driver_errors=(sqlite3.Error,),
                    dsn_label=dsn, reopen=lambda: _connect_sqlite(dsn, mapping, busy_timeout_seconds))


def _named_driver(dsn: str) -> str | None:
    match = _DRIVER_PATTERN.search(dsn)
    if not match:
        return None
    return match.group(1).strip().strip("{}").strip() or None


def _odbc_label(dsn: str) -> str:
    """The connection string without secrets, for messages and logs."""
    return redact_odbc(dsn)


def _connect_odbc(dsn: str, mapping: Mapping, login_timeout_seconds: float) -> Database:
    try:
        import pyodbc
    except ImportError as error:
        raise ConnectError(f"pyodbc cannot load the ODBC driver manager ({error}); "
                           "install the Debian package unixodbc") from error
    driver = _named_driver(dsn)
    if driver is not None:
        installed = pyodbc.drivers()
        if driver not in installed:
            raise DriverNotInstalledError(driver=driver, package=DRIVER_PACKAGES.get(driver.lower()),
                                          installed=installed)
    label = _odbc_label(dsn)
    try:
        raw = pyodbc.connect(dsn, autocommit=False, timeout=login_timeout_seconds)
        dbms = raw.getinfo(pyodbc.SQL_DBMS_NAME)
    except pyodbc.Error as error:
        # Some drivers quote the connection string back in their message.
        raise ConnectError(f"cannot connect to {label}: {redact(error, secrets=secrets_in(dsn))}") from error
    dialect = dialect_for_dbms(dbms)
    if dialect is None:
        raw.close()
        raise ConnectError(f"{label} is a {dbms!r} database, which exsync has no dialect for")
    return Database(raw=raw, dialect=dialect, mapping=mapping, driver_errors=(pyodbc.Error,),
                    dsn_label=label, reopen=lambda: _connect_odbc(dsn, mapping, login_timeout_seconds))


def connect(dsn: str, *, mapping: Mapping | None = None, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
            login_timeout_seconds: float = DEFAULT_LOGIN_TIMEOUT_SECONDS) -> Database:
    """Opens `dsn` (an ODBC connection string, or sqlite:///path) with `mapping` (default: SQL edition)."""
    mapping = mapping or Mapping()
    if dsn.startswith(SQLITE_SCHEME):
        return _connect_sqlite(dsn, mapping, busy_timeout_seconds)
    if dsn.startswith("sqlite:"):
        raise ConnectError(f"{dsn!r}: SQLite DSNs are sqlite:///path")
    return _connect_odbc(dsn, mapping, login_timeout_seconds)


def ping(database: Database) -> None:
    """Raises a DatabaseError unless `database` answers a trivial query (a readiness probe)."""
    with database.transaction(write=False) as cursor:
        cursor.execute("SELECT 1").fetchone()
