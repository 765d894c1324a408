"""Everything that knows Advanced Exchequer: the mapping, connections, reads, stock rules, writes.

    database = connect(settings.exchequer_dsn, mapping=mapping_for(settings.config))
    reader = ExchequerReader(database=database)
    for level in reader.stock_levels(options.locations): ...
    backend = SqlWriteBackend(database=database, vat_codes=options.vat_codes, ...)
    backend.create_sales_document(SalesDocument(...))
"""

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
from exsync.exchequer.db import Cursor, Database, connect
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
from exsync.exchequer.rules import ALL_LOCATIONS, StockRules, could_build, could_build_all, free_stock, item_free_stock
from exsync.exchequer.schema import init_schema
from exsync.exchequer.seed import SeedSummary, seed
from exsync.exchequer.writer import SqlWriteBackend, WriteBackend

__all__ = [
    # connections and names
    "connect", "Database", "Cursor", "Dialect", "Mapping", "mapping_for", "ExchequerOptions", "options_for",
    # demo company
    "init_schema", "seed", "SeedSummary",
    # reads and rules
    "ExchequerReader", "StockRules", "ALL_LOCATIONS", "free_stock", "item_free_stock", "could_build",
    "could_build_all",
    # writes
    "WriteBackend", "SqlWriteBackend", "AccountCodePattern", "generate_account_code",
    # Exchequer users' actions
    "adjust_stock", "pick_order", "dispatch_order", "invoice_order", "edit_account", "change_price",
    "set_free_stock_settings",
    # records
    "Account", "AccountDetails", "BomComponent", "Document", "DocumentHeader", "DocumentLine", "FreeStockSettings",
    "LineProgress", "LocationStock", "OrderProgress", "SalesDocument", "StockItem", "StockLevel", "StoredLine",
    "WriteResult",
    # errors
    "ExchequerError", "MappingError", "ConnectError", "DriverNotInstalledError", "DatabaseError",
    "DuplicateKeyError", "RetryableError", "NotFoundError", "UnknownAccountError", "UnknownStockItemError",
    "UnknownDocumentError", "InvalidDocumentError", "BomCycleError", "AccountCodeExhaustedError", "SeedError",
]
