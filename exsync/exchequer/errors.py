"""The Exchequer layer's errors: everything it raises on purpose hangs off ExchequerError.

pyodbc and sqlite3 exceptions are translated where they enter (exsync.exchequer.db), so callers
never see a driver's own exception types.
"""

from exsync.errors import ExsyncError
from exsync.state.errors import DuplicateRowError

__all__ = [
    "AgentTimeoutError",
    "CreditLimitError",
    "NotADemoCompanyError",
    "ToolkitError",
    "AccountCodeExhaustedError",
    "BomCycleError",
    "ConnectError",
    "DatabaseError",
    "DriverNotInstalledError",
    "DuplicateKeyError",
    "ExchequerError",
    "InvalidDocumentError",
    "MappingError",
    "NotFoundError",
    "RetryableError",
    "SeedError",
    "UnknownAccountError",
    "UnknownDocumentError",
    "UnknownStockItemError",
]


class ExchequerError(ExsyncError):
    """Anything the Exchequer layer raises on purpose."""


class MappingError(ExchequerError):
    """The table/column mapping or the `exchequer:` configuration names something impossible."""


class ConnectError(ExchequerError):
    """The database could not be reached or the DSN is malformed."""


class DriverNotInstalledError(ConnectError):
    """The DSN names an ODBC driver that unixODBC does not know."""

    def __init__(self, *, driver, package, installed):
        self.driver = driver
        self.package = package
        self.installed = tuple(installed)
        hint = f"install the Debian package {package}" if package else "install the vendor's ODBC driver"
        known = ", ".join(self.installed) or "none"
        super().__init__(f"ODBC driver {driver!r} is not installed ({hint}); installed drivers: {known}")


class DatabaseError(ExchequerError):
    """A statement failed; `sqlstate` holds the driver's SQLSTATE where it gave one."""

    def __init__(self, message, *, sqlstate=None):
        self.sqlstate = sqlstate
        super().__init__(message)


class DuplicateKeyError(DatabaseError, DuplicateRowError):
    """A unique key refused a row (the basis of idempotent writes and account-code retries); a
    DuplicateRowError, so exsync's state tables, below this layer, catch it too."""


class RetryableError(DatabaseError):
    """A deadlock, serialization failure or busy database: the whole transaction may be retried."""


class NotFoundError(ExchequerError):
    """A record the caller named does not exist."""


class UnknownAccountError(NotFoundError):
    """No account has the given code."""


class UnknownStockItemError(NotFoundError):
    """No stock item has the given code."""


class UnknownDocumentError(NotFoundError):
    """No transaction has the given reference."""


class InvalidDocumentError(ExchequerError):
    """A sales document or account to be written is not acceptable (type, lines, VAT code...)."""


class BomCycleError(ExchequerError):
    """Bills of materials contain each other; `items` lists the cycle in order."""

    def __init__(self, items):
        self.items = tuple(items)
        super().__init__("bill of materials cycle: " + " -> ".join(self.items))


class AccountCodeExhaustedError(ExchequerError):
    """Every code the pattern can make for a name is taken."""


class SeedError(ExchequerError):
    """The demo company cannot be seeded (e.g. it already holds data)."""


class NotADemoCompanyError(ExchequerError):
    """A direct write, init or seed aimed at a company exsync did not create as its demo company."""


class ToolkitError(ExchequerError):
    """Exchequer's Toolkit (or its emulator) refused a save; `code` is the Toolkit's error number."""

    def __init__(self, message, *, code=None):
        super().__init__(message)
        self.code = code


class CreditLimitError(ToolkitError):
    """The order would take the account over its credit limit and the company stops such orders."""


class AgentTimeoutError(ConnectError):
    """The Exchequer agent did not answer a write command in time (or its queue was unreachable); the
    command may still be performed later, and a retry of the write is idempotent."""
