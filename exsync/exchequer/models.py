"""The records the Exchequer layer reads and writes, as plain frozen dataclasses."""

import dataclasses
import datetime

__all__ = [
    "Account",
    "AccountDetails",
    "BomComponent",
    "Document",
    "DocumentHeader",
    "DocumentLine",
    "FreeStockSettings",
    "LineProgress",
    "LocationStock",
    "OrderProgress",
    "SalesDocument",
    "StockItem",
    "StockLevel",
    "StoredLine",
    "WriteResult",
]


@dataclasses.dataclass(frozen=True, slots=True)
class LocationStock:
    """One item's figures at one location (StockLocation)."""

    location: str
    in_stock: float
    allocated: float
    picked: float
    on_order: float
    alloc_wor: float = 0.0
    picked_wor: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class StockItem:
    """A STOCK record with its per-location figures; prices by band letter."""

    code: str
    folio: int
    description: str
    type: str
    parent_code: str
    in_stock: float
    allocated: float
    picked: float
    on_order: float
    band_a_price: float
    band_b_price: float
    category: str
    web_enabled: bool
    locations: tuple = ()
    alloc_wor: float = 0.0
    picked_wor: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class BomComponent:
    """One component of a bill of materials: `qty_used` of `component_code` per unit built."""

    parent_code: str
    component_code: str
    qty_used: float
    component_type: str = "P"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AccountDetails:
    """What a customer account says, without its code (for creating and comparing)."""

    company: str = ""
    contact: str = ""
    address: tuple = ("", "", "", "", "")
    post_code: str = ""
    email: str = ""
    phone: str = ""
    price_band: str = "A"
    user_defs: tuple = ()

    def __post_init__(self) -> None:
        address = tuple(self.address)[:5]
        object.__setattr__(self, "address", address + ("",) * (5 - len(address)))
        object.__setattr__(self, "user_defs", tuple(self.user_defs)[:10])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Account(AccountDetails):
    """A CUSTSUPP record."""

    code: str
    cust_supp: str = "C"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentLine:
    """One line to write: `stock_code` '' for a non-stock line (carriage, discount, rounding)."""

    stock_code: str
    description: str
    qty: float
    unit_net_price: float
    vat_code: str
    location: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SalesDocument:
    """A sales order (SOR) or quotation (SQU) to write, idempotent by `external_key`."""

    external_key: str
    doc_type: str
    account_code: str
    date: datetime.date
    lines: tuple[DocumentLine, ...]
    your_ref: str = ""
    long_your_ref: str = ""
    user_fields: dict[int, str] = dataclasses.field(default_factory=dict)  # {1..12: text} -> thUserFieldN


@dataclasses.dataclass(frozen=True, kw_only=True)
class WriteResult:
    """What a write produced: the reference (document or account code) and whether it is new."""

    reference: str
    created: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentHeader:
    """A DOCUMENT record's fields exsync uses."""

    our_ref: str
    folio: int
    doc_type: str
    account_code: str
    run_no: int
    trans_date: str
    your_ref: str
    long_your_ref: str
    net_value: float
    total_vat: float
    total_order_os: float = 0.0
    hold_flag: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoredLine:
    """A DETAILS record: `line_no` is its display position (tlLineNo), `abs_line_no` its identity within
    the document (tlABSLineNo), which delivery and invoice lines point at (`sop_abs_line_no`)."""

    line_no: int
    abs_line_no: int
    stock_code: str
    description: str
    qty: float
    qty_delivered: float
    qty_picked: float
    location: str
    net_value: float
    vat_code: str
    vat_amount: float
    sop_folio: int
    sop_abs_line_no: int
    stock_deduct_qty: float = 0.0
    doc_type: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Document:
    """A transaction header with its lines."""

    header: DocumentHeader
    lines: tuple[StoredLine, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LineProgress:
    """How far one SOR line has got: ordered, delivered (tlQtyDel) and invoiced quantities; keyed by
    the line's tlABSLineNo, which stays when lines are inserted or removed in Exchequer."""

    abs_line_no: int
    line_no: int
    stock_code: str
    qty: float
    qty_delivered: float
    qty_invoiced: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderProgress:
    """A sales order's progress: its lines, and the delivery notes and invoices raised from it."""

    reference: str
    lines: tuple[LineProgress, ...]
    deliveries: tuple[str, ...]
    invoices: tuple[str, ...]

    @property
    def fully_delivered(self) -> bool:
        return all(line.qty_delivered >= line.qty for line in self.lines)

    @property
    def fully_invoiced(self) -> bool:
        return all(line.qty_invoiced >= line.qty for line in self.lines)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FreeStockSettings:
    """The system settings (evw_SystemSettings) that choose the free-stock rule: sales orders count
    (FreeStockExcludesSalesOrders), by picked or allocated (OrdersToAllocateStockWhenPicked), and
    works orders by picked or allocated (AllocateStockWhenPicked)."""

    excludes_sales_orders: bool = False
    allocate_when_picked: bool = False
    works_orders_allocate_when_picked: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class StockLevel:
    """An item's computed availability: free stock, and could-build for a bill of materials."""

    code: str
    free: float
    could_build: int | None
