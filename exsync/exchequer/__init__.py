"""Everything that knows Advanced Exchequer: the mapping, connections, reads, stock rules, writes.

    database = connect(settings.exchequer_dsn, mapping=mapping_for(settings.config))
    reader = ExchequerReader(database=database)
    for level in reader.stock_levels(options.locations): ...
    backend = SqlWriteBackend(database=database, vat_codes=options.vat_codes, ...)
    backend.create_sales_document(SalesDocument(...))
"""

from exsync.exchequer.account_capture import (
    AccountCapture,
    RecordedAccount,
    account_changed_at,
    account_fingerprint,
    ensure_account_state,
    recorded_account,
)
from exsync.exchequer.accounts import AccountCodePattern, generate_account_code
from exsync.exchequer.actions import (
    adjust_stock,
    change_price,
    dispatch_order,
    edit_account,
    invoice_order,
    pick_order,
    set_free_stock_settings,
)
from exsync.exchequer.db import Cursor, Database, connect, ping
from exsync.exchequer.dialect import Dialect
from exsync.exchequer.errors import (
    AccountCodeExhaustedError,
    BomCycleError,
    ConnectError,
    DatabaseError,
    DriverNotInstalledError,
    DuplicateKeyError,
    ExchequerError,
    InvalidDocumentError,
    MappingError,
    NotFoundError,
    RetryableError,
    SeedError,
    UnknownAccountError,
    UnknownDocumentError,
    UnknownStockItemError,
)
from exsync.exchequer.mapping import Mapping
from exsync.exchequer.models import (
    Account,
    AccountDetails,
    BomComponent,
    Document,
    DocumentHeader,
    DocumentLine,
    FreeStockSettings,
    LineProgress,
    LocationStock,
    OrderProgress,
    SalesDocument,
    StockItem,
    StockLevel,
    StoredLine,
    WriteResult,
)
from exsync.exchequer.options import ExchequerOptions, mapping_for, options_for
from exsync.exchequer.reader import ExchequerReader
from exsync.exchequer.rules import (
    ALL_LOCATIONS,
    StockRules,
    could_build,
    could_build_all,
    free_stock,
    item_free_stock,
)
from exsync.exchequer.schema import init_schema
from exsync.exchequer.seed import SeedSummary, seed
from exsync.exchequer.state import StateValues
from exsync.exchequer.writer import SqlWriteBackend, WriteBackend

__all__ = [
    "ALL_LOCATIONS",
    "Account",
    "AccountCapture",
    "AccountCodeExhaustedError",
    "AccountCodePattern",
    "AccountDetails",
    "BomComponent",
    "BomCycleError",
    "ConnectError",
    "Cursor",
    "Database",
    "DatabaseError",
    "Dialect",
    "Document",
    "DocumentHeader",
    "DocumentLine",
    "DriverNotInstalledError",
    "DuplicateKeyError",
    "ExchequerError",
    "ExchequerOptions",
    "ExchequerReader",
    "FreeStockSettings",
    "InvalidDocumentError",
    "LineProgress",
    "LocationStock",
    "Mapping",
    "MappingError",
    "NotFoundError",
    "OrderProgress",
    "RecordedAccount",
    "RetryableError",
    "SalesDocument",
    "SeedError",
    "SeedSummary",
    "StateValues",
    "SqlWriteBackend",
    "StockItem",
    "StockLevel",
    "StockRules",
    "StoredLine",
    "UnknownAccountError",
    "UnknownDocumentError",
    "UnknownStockItemError",
    "WriteBackend",
    "WriteResult",
    "account_changed_at",
    "account_fingerprint",
    "adjust_stock",
    "change_price",
    "connect",
    "ping",
    "could_build",
    "could_build_all",
    "dispatch_order",
    "edit_account",
    "ensure_account_state",
    "free_stock",
    "generate_account_code",
    "init_schema",
    "invoice_order",
    "item_free_stock",
    "mapping_for",
    "options_for",
    "pick_order",
    "recorded_account",
    "seed",
    "set_free_stock_settings",
]
