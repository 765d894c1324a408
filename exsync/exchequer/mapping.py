"""Exchequer's table and column names and types: the one module that spells them.

The SQL edition below is Exchequer's real layout (adv-hack/Exchequer, `ExchSQL/SQLEmulator/Schemas`),
as far as exsync reads or writes it; each table cites the vendor file it follows, and
tests/exchequer/data/vendor_columns.json (taken from those files) checks every name and type. The
demo company is built from the same declaration (schema.py), so the replica and the real company
cannot drift apart.

Code everywhere else uses logical names (`stock.qty_in_stock`) and formats its SQL through a
`BoundNames` (a mapping bound to a dialect); a site overrides a name with `exchequer.tables` /
`exchequer.columns`, never by editing code.

Column kinds: `identity` (PositionId), `int`, `float`, `bit`, `str:<n>` (varchar(n)), `pstr:<n>`
(varbinary holding a Pascal short string of up to n characters: a length byte, the text, padding),
`bytes:<n>` (other varbinary), `read:<logical>` (the readable copy of a `pstr` column, a computed
column on the real company and a generated column in the replica; read-only) and `standin:<kind>`
(a computed column of the real company whose decoding from binary exsync does not replicate: the
replica stores the value, written next to its binary source).
"""

import dataclasses
import math
import re
import string

from exsync.exchequer.dialect import Dialect
from exsync.exchequer.errors import MappingError
from exsync.schemas.config import (
    DEFAULT_CATEGORY_FIELD,
    DEFAULT_COMPANY,
    DEFAULT_EDITION,
    DEFAULT_STATE_SCHEMA,
    DEFAULT_WEB_FLAG_FIELD,
    DEFAULT_WEB_FLAG_VALUE,
)

__all__ = [
    "ACCOUNT_CODE_LENGTH",
    "BOM_RECORD_PREFIX",
    "BOM_SUB_TYPE",
    "CUSTOMER_HISTORY_CLASS",
    "DEFAULT_CATEGORY_FIELD",
    "DEFAULT_COMPANY",
    "DEFAULT_EDITION",
    "DEFAULT_STATE_SCHEMA",
    "DEFAULT_WEB_FLAG_FIELD",
    "DEFAULT_WEB_FLAG_VALUE",
    "DOC_TYPES",
    "DOC_TYPE_NAMES",
    "EBUS_WEB_FLAG_FIELD",
    "EDITIONS",
    "FOLIO_COUNTER",
    "LINE_TYPES",
    "NOTE_RECORD_PREFIX",
    "NO_PRICE_BANDS",
    "PRICE_BANDS",
    "RUN_NO",
    "STOCK_CODE_LENGTH",
    "STOCK_TYPES",
    "VAT_ANALYSIS",
    "BoundNames",
    "Column",
    "Mapping",
    "TableSpec",
    "folio_bytes",
    "pascal_bytes",
    "pascal_text",
    "real48_bytes",
    "real48_value",
]

DEFAULT_COMMON_SCHEMA = "common"
# Exchequer's own eBusiness flag (stock_final.xml `stUseForEbus`, int): a site may use it as the web flag.
EBUS_WEB_FLAG_FIELD = "stUseForEbus"

# The ordinal of Pascal `DocTypes` (SBSLIB/WIN/EXCOMMON/Varcomnu.pas L39-41, L121-125).
DOC_TYPES = {"SIN": 0, "SRC": 1, "SCR": 2, "SRF": 5, "SQU": 7, "SOR": 8, "SDN": 9, "PIN": 15,
             "POR": 23, "PDN": 24, "AFL": 33, "ADJ": 35, "WOR": 40, "SRN": 44}
DOC_TYPE_NAMES = {number: name for name, number in DOC_TYPES.items()}
# thRunNo: -40 an unposted SOR/SDN, -42 a completed SOR (Varcomnu.pas L410-470); an SQU gets 0
# (`Set_OrdRunNo`, ENTRPRSE/DLLTK/DLLTH_UP.PAS L6207-6245); other unposted documents 0.
RUN_NO = {"SOR": -40, "SQU": 0, "SDN": -40, "SIN": 0}
COMPLETED_ORDER_RUN_NO = -42
# tlLineType per document (`StkLineType`, Varcomnu.pas L293; set at DLLTH_UP.PAS L2850).
LINE_TYPES = {"SOR": "O", "SQU": "Q", "SDN": "I", "SIN": "I"}
BOM_RECORD_PREFIX = "B"
BOM_SUB_TYPE = 77  # ASCII 'M' (evw_BillOfMaterials.sql: RecPfix = 'B' AND SubType = 77)
NOTE_RECORD_PREFIX = "N"  # audit notes are EXCHQCHK records 'N' (ENTRPRSE/R&D/AuditNotes.pas L127, L209)
# SOR, SQU, SDN take their folio from the AFL row (`SetNextDocNos`, ENTRPRSE/R&D/Sysu1.pas L401).
FOLIO_COUNTER = "AFL"
# The customer's committed order balance is HISTORY class 'U' (`CustHistCde`, DLLTK/BTS1.pas L2242).
CUSTOMER_HISTORY_CLASS = "U"
STOCK_TYPES = {"G": "group", "P": "product", "D": "description only", "M": "bill of materials",
               "X": "discontinued"}
PRICE_BANDS = "ABCDEFGH"
# acDiscountBand ' ' and '%' mean no band (ENTRPRSE/COMTK/oCust.pas L1133-1150).
NO_PRICE_BANDS = (" ", "%", "")
ACCOUNT_CODE_LENGTH = 6  # AccLen (SBSLIB/WIN/EXCOMMON/VARRPOSU.PAS L37)
STOCK_CODE_LENGTH = 16  # StkLen: tlStockCode holds the code upper case, padded to 16 (BTKeys1U.pas L1042)
# VAT code -> the DOCUMENT analysis column it adds to (document_final.xml thVATAnalysis...).
VAT_ANALYSIS = {"S": "Standard", "E": "Exempt", "Z": "Zero", **{str(n): f"Rate{n}" for n in range(1, 10)},
                **{code: f"Rate{code}" for code in "TXBCFGRWY"}}
VAT_RATE_SLOTS = 18  # EXCHQSS 'VAT' record VATRate1..18 (ExchqSS_Final.xml L202-399)


def pascal_bytes(text: str, size: int) -> bytes:
    """A Pascal short string of `size` characters as Exchequer stores it: length byte, text, NUL padding."""
    raw = text.encode("latin-1")
    if len(raw) > size:
        raise MappingError(f"{text!r} is longer than {size} characters")
    return bytes([len(raw)]) + raw + b"\x00" * (size - len(raw))


def pascal_text(raw: bytes | bytearray | memoryview | None) -> str:
    """The text of a Pascal short string (`common.GetString(col, 1)`); '' for NULL or empty."""
    if not raw:
        return ""
    raw = bytes(raw)
    return raw[1:1 + raw[0]].decode("latin-1")


def real48_bytes(value: float) -> bytes:
    """A Turbo Pascal Real48 (6 bytes: exponent biased by 129, then a 39-bit fraction and the sign bit),
    the form of EXCHQCHK's QtyUsed (split over the last byte of EXCHQCHKcode3 and QtyUsed)."""
    if value == 0:
        return bytes(6)
    mantissa, exponent = math.frexp(abs(value))
    fraction = round((2 * mantissa - 1) * (1 << 39))
    if fraction >= 1 << 39:
        fraction, exponent = 0, exponent + 1
    packed = fraction | ((1 << 39) if value < 0 else 0)
    return bytes([exponent + 128]) + packed.to_bytes(5, "little")


def real48_value(raw: bytes | bytearray | memoryview) -> float:
    """The number a Real48's six bytes hold (`common.EntDouble`)."""
    raw = bytes(raw)
    if len(raw) != 6 or raw[0] == 0:
        return 0.0
    packed = int.from_bytes(raw[1:], "little")
    sign = -1.0 if packed & (1 << 39) else 1.0
    fraction = (packed & ((1 << 39) - 1)) / (1 << 39)
    return sign * (1 + fraction) * 2.0 ** (raw[0] - 129)


def folio_bytes(folio: int, size: int) -> bytes:
    """A folio number as Exchequer keys it in a binary code column: a length byte of 4, then the int32
    little-endian (read back by `common.GetFolio(col, 1)`, bytes 2-5), NUL padding."""
    return bytes([4]) + int(folio).to_bytes(4, "little", signed=True) + bytes(size - 5)


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: its physical name and kind (see the module's docstring)."""

    name: str
    kind: str
    unique: bool = False

    @property
    def writable(self) -> bool:
        return not self.kind.startswith("read:") and self.kind != "identity"


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One table or view: physical name, columns by logical name, keys, where it lives, its source.

    `home` is `company` (the company schema), `common` (Exchequer's shared schema) or `state`
    (the integration's own tables). `view` names the replica's definition of a vendor view (schema.py);
    `nullable` tables are created by SELECT INTO or are variant records, so their columns are NULL-able.
    `source` is the vendor file the declaration follows. `aliases` map extra logical names onto
    existing columns (the configured category and web-flag fields).
    """

    name: str
    columns: dict[str, Column]
    home: str = "company"
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)
    source: str = ""
    view: bool = False
    nullable: bool = False

    def physical(self, logical: str) -> str:
        if logical in self.columns:
            return self.columns[logical].name
        if logical in self.aliases:
            return self.columns[self.aliases[logical]].name
        raise MappingError(f"table {self.name} has no column {logical!r} in the mapping")

    def kind(self, logical: str) -> str:
        return self.columns[self.aliases.get(logical, logical)].kind


def _numbered(logical: str, physical: str, count: int, kind: str, start: int = 1) -> dict[str, Column]:
    return {f"{logical}_{n}": Column(f"{physical}{n}", kind) for n in range(start, count + 1)}


_SCHEMAS = "ExchSQL/SQLEmulator/Schemas/"
_VIEWS = _SCHEMAS + "SQLScripts/015 - Views & TVFs/"


def _sql_edition() -> dict[str, TableSpec]:
    identity = {"position_id": Column("PositionId", "identity")}
    return {
        "accounts": TableSpec("CUSTSUPP", {
            **identity,
            "code": Column("acCode", "str:10"),
            "cust_supp": Column("acCustSupp", "str:1"),
            "sub_type": Column("acSubType", "str:1"),
            "company": Column("acCompany", "str:45"),
            **_numbered("address", "acAddressLine", 5, "str:30"),
            "post_code": Column("acPostCode", "str:20"),
            "email": Column("acEmailAddr", "str:100"),
            "contact": Column("acContact", "str:25"),
            "phone": Column("acPhone", "str:30"),
            "price_band": Column("acDiscountBand", "str:1"),
            "vat_code": Column("acVATCode", "str:1"),
            "currency": Column("acCurrency", "int"),
            "location": Column("acLocation", "str:3"),
            "credit_limit": Column("acCreditLimit", "float"),
            "account_status": Column("acAccStatus", "int"),
            "invoice_to": Column("acInvoiceTo", "str:10"),
            "last_used": Column("acLastUsed", "str:8"),
            "time_stamp": Column("acTimeStamp", "str:6"),
            "last_operator": Column("acLastOperator", "str:10"),
            **_numbered("user_def", "acUserDef", 10, "str:30"),
        }, unique=(("code",),), indexes=(("email",),), source=_SCHEMAS + "custsupp_final.xml"),
        "stock": TableSpec("STOCK", {
            **identity,
            "code": Column("stCode", "str:20"),
            "folio": Column("stFolioNum", "int"),
            **_numbered("desc", "stDescLine", 6, "str:35"),
            "type": Column("stType", "str:1"),
            "parent_code": Column("stParentCode", "str:20"),
            "qty_in_stock": Column("stQtyInStock", "float"),
            "qty_allocated": Column("stQtyAllocated", "float"),
            "qty_picked": Column("stQtyPicked", "float"),
            "qty_on_order": Column("stQtyOnOrder", "float"),
            "qty_alloc_wor": Column("stQtyAllocWOR", "float"),
            "qty_picked_wor": Column("stQtyPickedWOR", "float"),
            **{f"band_{band.lower()}_price": Column(f"stSalesBand{n}Price", "float")
               for n, band in enumerate(PRICE_BANDS, start=1)},
            "vat_code": Column("stVATCode", "str:1"),
            "location": Column("stLocation", "str:3"),
            "use_for_ebus": Column(EBUS_WEB_FLAG_FIELD, "int"),
            "last_used": Column("stLastUsed", "str:8"),
            "time_change": Column("stTimeChange", "str:6"),
            **_numbered("user_field", "stUserField", 2, "str:20"),
            **_numbered("user_field", "stUserField", 10, "str:30", start=3),
        }, unique=(("code",), ("folio",)), source=_SCHEMAS + "stock_final.xml"),
        # Split out of MLOCSTK by SELECT ... INTO (Upgrade Scripts/6.3/StockLocationCreator.sql): columns
        # NULL-able, and (stock, location) unique only with PositionId.
        "stock_locations": TableSpec("StockLocation", {
            **identity,
            "stock_code": Column("LsStkCode", "str:20"),
            "stock_folio": Column("LsStkFolio", "int"),
            "location": Column("LsLocCode", "str:10"),
            "qty_in_stock": Column("LsQtyInStock", "float"),
            "qty_allocated": Column("LsQtyAlloc", "float"),
            "qty_picked": Column("LsQtyPicked", "float"),
            "qty_on_order": Column("LsQtyOnOrder", "float"),
            "qty_alloc_wor": Column("LsQtyAllocWOR", "float"),
            "qty_picked_wor": Column("LsQtyPickWOR", "float"),
            "cost_price": Column("LsCostPrice", "float"),
            "last_used": Column("LsLastUsed", "str:8"),
            "last_time": Column("LsLastTime", "str:6"),
        }, indexes=(("stock_code", "location"), ("location", "stock_code")), nullable=True,
            source=_SCHEMAS + "StockLocation.xml"),
        "locations": TableSpec("Location", {
            **identity,
            "code": Column("LoCode", "str:3"),
            "name": Column("LoName", "str:45"),
        }, unique=(("code",),), nullable=True, source=_SCHEMAS + "Location.xml"),
        # Variant records: 'B'/77 bills of materials (BillMatType), 'N' notes (NotesTypeNA).
        "bom": TableSpec("EXCHQCHK", {
            **identity,
            "record_prefix": Column("RecPfix", "str:1"),
            "sub_type": Column("SubType", "int"),
            "code_1": Column("EXCHQCHKcode1", "bytes:13"),
            "code_3": Column("EXCHQCHKcode3", "bytes:12"),
            "qty_used_raw": Column("QtyUsed", "bytes:5"),
            "qty_cost": Column("QtyCost", "float"),
            "component_code": Column("FullStkCode", "str:20"),
            "parent_folio": Column("Exchqchkcode1Trans5", "standin:int"),
            "component_folio": Column("Exchqchkcode3Trans2", "standin:int"),
            "qty_used": Column("QtyUsedTrans", "standin:float"),
            "note_folio": Column("NoteFolio", "bytes:10"),
            "note_type": Column("NType", "str:1"),
            "note_line_no": Column("LineNumber", "int"),
            "note_line": Column("NoteLine", "str:100"),
            "note_user": Column("NoteUser", "str:10"),
        }, indexes=(("record_prefix", "sub_type", "parent_folio"),), nullable=True,
            source=_SCHEMAS + "exchqchk_final.xml"),
        "bom_view": TableSpec("evw_BillOfMaterials", {
            "position_id": Column("BOMPositionId", "int"),
            "component_folio": Column("StockFolioNumber", "int"),
            "component_code": Column("FullStockCode", "str:20"),
            "qty_used": Column("QuantityUsed", "float"),
            "parent_folio": Column("ParentBOMFolioNumber", "int"),
        }, view=True, source=_VIEWS + "255 - evw_BillOfMaterials.sql"),
        "documents": TableSpec("DOCUMENT", {
            **identity,
            "our_ref": Column("thOurRef", "str:10"),
            "folio": Column("thFolioNum", "int"),
            "doc_type": Column("thDocType", "int"),
            "account_code": Column("thAcCode", "str:10"),
            "cust_supp": Column("thCustSupp", "str:1"),
            "run_no": Column("thRunNo", "int"),
            "trans_date": Column("thTransDate", "str:8"),
            "due_date": Column("thDueDate", "str:8"),
            "year": Column("thYear", "int"),
            "period": Column("thPeriod", "int"),
            "currency": Column("thCurrency", "int"),
            "your_ref": Column("thYourRef", "str:20"),
            "long_your_ref": Column("thLongYourRef", "pstr:20"),
            "long_your_ref_text": Column("thLongYourRefTrans", "read:long_your_ref"),
            "net_value": Column("thNetValue", "float"),
            "total_vat": Column("thTotalVAT", "float"),
            "total_order_os": Column("thTotalOrderOS", "float"),
            "hold_flag": Column("thHoldFlag", "int"),
            "next_line_no": Column("thNextLineNumber", "int"),
            "remit_no": Column("thRemitNo", "str:10"),
            "ord_match": Column("thOrdMatch", "bit"),
            "delivery_note_ref": Column("thDeliveryNoteRef", "str:10"),
            **_numbered("delivery_address", "thDeliveryAddr", 5, "str:30"),
            "delivery_post_code": Column("thDeliveryPostCode", "str:20"),
            "time_created": Column("thTimeCreated", "str:6"),
            "time_changed": Column("thTimeChanged", "str:6"),
            "creation_date": Column("thCreationDate", "str:8"),
            "creation_time": Column("thCreationTime", "str:6"),
            "originator": Column("thOriginator", "str:36"),
            "operator": Column("thOperator", "str:10"),
            **{f"vat_analysis_{code}": Column(f"thVATAnalysis{column}", "float")
               for code, column in VAT_ANALYSIS.items()},
            **_numbered("user_field", "thUserField", 12, "str:30"),
        }, unique=(("our_ref",), ("folio",)), indexes=(("account_code",),), source=_SCHEMAS + "document_final.xml"),
        "lines": TableSpec("DETAILS", {
            **identity,
            "folio": Column("tlFolioNum", "int"),
            "our_ref": Column("tlOurRef", "str:10"),
            "line_no": Column("tlLineNo", "int"),
            "abs_line_no": Column("tlABSLineNo", "int"),
            "doc_type": Column("tlDocType", "int"),
            "run_no": Column("tlRunNo", "int"),
            "year": Column("tlYear", "int"),
            "period": Column("tlPeriod", "int"),
            "currency": Column("tlCurrency", "int"),
            "line_type": Column("tlLineType", "str:1"),
            "stock_code": Column("tlStockCode", "pstr:20"),
            "stock_code_text": Column("tlStockCodeTrans1", "read:stock_code"),
            "qty": Column("tlQty", "float"),
            "qty_mul": Column("tlQtyMul", "float"),
            "qty_delivered": Column("tlQtyDel", "float"),
            "qty_written_off": Column("tlQtyWOFF", "float"),
            "qty_picked": Column("tlQtyPicked", "float"),
            "stock_deduct_qty": Column("tlStockDeductQty", "float"),
            "location": Column("tlLocation", "str:3"),
            "net_value": Column("tlNetValue", "float"),
            "discount": Column("tlDiscount", "float"),
            "disc_flag": Column("tlDiscFlag", "str:1"),
            "vat_code": Column("tlVATCode", "str:1"),
            "vat_amount": Column("tlVATAmount", "float"),
            "description": Column("tlDescription", "str:60"),
            "account_code": Column("tlAcCode", "str:10"),
            "line_date": Column("tlLineDate", "str:8"),
            "sop_folio": Column("tlSOPFolioNum", "int"),
            "sop_abs_line_no": Column("tlSOPABSLineNo", "int"),
            "bom_kit_link": Column("tlBOMKitLink", "int"),
            **_numbered("user_field", "tlUserField", 10, "str:30"),
        }, indexes=(("folio", "abs_line_no"), ("sop_folio",)), source=_SCHEMAS + "details_final.xml"),
        "counters": TableSpec("EXCHQNUM", {
            **identity,
            "counter_type": Column("ssCountType", "str:4"),
            "next_number": Column("ssNextCount", "int"),
        }, unique=(("counter_type",),), source=_SCHEMAS + "exchqnum_final.xml"),
        # The system setup records ('SYS', 'VAT' ...) behind evw_SystemSettings and evw_VATRate.
        "system_setup": TableSpec("EXCHQSS", {
            **identity,
            "id_code": Column("IDCode", "pstr:3"),
            "free_ex_all": Column("FreeExAll", "bit"),
            "use_pick4all": Column("UsePick4All", "bit"),
            "use_wiss4all": Column("UseWIss4All", "bit"),
            "dead_bom": Column("DeadBOM", "bit"),
            "del_pick_only": Column("DelPickOnly", "bit"),
            "use_mloc": Column("UseMLoc", "bit"),
            "audit_yr": Column("AuditYr", "int"),
            "current_year": Column("CYr", "int"),
            "current_period": Column("CPr", "int"),
            "qu_alloc_flg": Column("QUAllocFlg", "bit"),
            "use_credit_chk": Column("UseCreditChk", "bit"),
            **{f"vat_{n}_{field}": Column(f"VATRate{n}{physical}", kind)
               for n in range(1, VAT_RATE_SLOTS + 1)
               for field, physical, kind in (("code", "Code", "str:1"), ("desc", "Desc", "str:10"),
                                             ("rate", "Rate", "float"), ("include", "Include", "bit"))},
        }, nullable=True, source=_SCHEMAS + "ExchqSS_Final.xml"),
        "settings": TableSpec("evw_SystemSettings", {
            "free_stock_excludes_sales_orders": Column("FreeStockExcludesSalesOrders", "bit"),
            "orders_allocate_when_picked": Column("OrdersToAllocateStockWhenPicked", "bit"),
            "works_orders_allocate_when_picked": Column("AllocateStockWhenPicked", "bit"),
            "deduct_bom_components": Column("DeductBOMComponents", "bit"),
            "use_multi_locations": Column("UseMultiLocations", "bit"),
            "audit_year": Column("AuditExchequerYear", "int"),
            "current_year": Column("CurrentExchequerYear", "int"),
            "current_period": Column("CurrentPeriod", "int"),
        }, view=True, source=_VIEWS + "005 - evw_SystemSettings.sql"),
        "vat_rates": TableSpec("evw_VATRate", {
            "id": Column("VATRateId", "int"),
            "code": Column("VATRateCode", "str:1"),
            "description": Column("VATRateDescription", "str:10"),
            "include": Column("VATInclude", "bit"),
            "rate": Column("VATRate", "float"),
        }, view=True, source=_VIEWS + "100 - evw_VATRate.sql"),
        "history": TableSpec("HISTORY", {
            **identity,
            "code": Column("hiCode", "pstr:20"),
            "ex_class": Column("hiExCLass", "int"),
            "currency": Column("hiCurrency", "int"),
            "year": Column("hiYear", "int"),
            "period": Column("hiPeriod", "int"),
            "sales": Column("hiSales", "float"),
            "purchases": Column("hiPurchases", "float"),
            "cleared": Column("hiCleared", "float"),
        }, indexes=(("ex_class", "code", "currency", "year", "period"),), source=_SCHEMAS + "history_final.xml"),
        # The integration's own: one row per external key written (order id, customer id...).
        "external_keys": TableSpec("external_keys", {
            "kind": Column("kind", "str:16"),
            "external_key": Column("external_key", "str:100"),
            "reference": Column("reference", "str:16"),
        }, home="state", unique=(("kind", "external_key"),)),
    }


EDITIONS = {"sql": _sql_edition}
USER_FIELD_PATTERN = re.compile(r"^stUserField([1-9]|10)$")
WEB_FLAG_PATTERN = re.compile(rf"^(stUserField([1-9]|10)|{EBUS_WEB_FLAG_FIELD})$")


class Mapping:
    """Where a company's tables are and what their columns are called, for one edition.

    `company` is the schema on databases with schemas (SQL Server, PostgreSQL); `table_prefix`
    replaces schemas where there are none (SQLite): `None` there means no prefix. The
    integration's own tables go in `state_schema`, or get `state_schema + "_"` as a prefix.
    """

    def __init__(self, *, edition: str = DEFAULT_EDITION, company: str = DEFAULT_COMPANY,
                 table_prefix: str | None = None, common_schema: str = DEFAULT_COMMON_SCHEMA,
                 state_schema: str = DEFAULT_STATE_SCHEMA, category_field: str = DEFAULT_CATEGORY_FIELD,
                 web_flag_field: str = DEFAULT_WEB_FLAG_FIELD, web_flag_value: str = DEFAULT_WEB_FLAG_VALUE,
                 tables: dict[str, str] | None = None, columns: dict[str, str] | None = None) -> None:
        if edition not in EDITIONS:
            raise MappingError(f"unknown Exchequer edition {edition!r}; known: {', '.join(EDITIONS)}")
        if not USER_FIELD_PATTERN.match(category_field):
            raise MappingError(f"{category_field!r} is not a stock user field (stUserField1..stUserField10)")
        if not WEB_FLAG_PATTERN.match(web_flag_field):
            raise MappingError(f"{web_flag_field!r} is neither a stock user field (stUserField1..stUserField10) "
                               f"nor {EBUS_WEB_FLAG_FIELD}")
        if category_field == web_flag_field:
            raise MappingError("the category and the web flag need different user fields")
        self.edition = edition
        self.company = company
        self.table_prefix = table_prefix
        self.common_schema = common_schema
        self.state_schema = state_schema
        # Exchequer's eBusiness flag is an int: 1 is on.
        if web_flag_field == EBUS_WEB_FLAG_FIELD and web_flag_value == DEFAULT_WEB_FLAG_VALUE:
            web_flag_value = "1"
        self.web_flag_value = web_flag_value
        specs = EDITIONS[edition]()
        for logical, physical in (tables or {}).items():
            if logical not in specs:
                raise MappingError(f"exchequer.tables names unknown table {logical!r}")
            specs[logical] = dataclasses.replace(specs[logical], name=physical)
        for dotted, physical in (columns or {}).items():
            table, _, column = dotted.partition(".")
            if table not in specs or column not in specs[table].columns:
                raise MappingError(f"exchequer.columns names unknown column {dotted!r}")
            spec = specs[table]
            spec.columns[column] = dataclasses.replace(spec.columns[column], name=physical)
        stock = specs["stock"]
        by_physical = {column.name: logical for logical, column in stock.columns.items()}
        specs["stock"] = dataclasses.replace(stock, aliases={
            "category": by_physical[category_field], "web_flag": by_physical[web_flag_field]})
        self.tables = specs

    def bind(self, dialect: Dialect) -> "BoundNames":
        return BoundNames(mapping=self, dialect=dialect)

    def __repr__(self) -> str:
        return f"Mapping(edition={self.edition!r}, company={self.company!r}, table_prefix={self.table_prefix!r})"


class _TableRef:
    """Formats as the qualified table name; attributes are its quoted column names."""

    def __init__(self, names: "BoundNames", logical: str) -> None:
        self._names = names
        self._spec = names.mapping.tables[logical]

    def __format__(self, spec: str) -> str:
        return self._names.qualified(self._spec)

    def __getattr__(self, logical: str) -> str:
        return self._names.dialect.quote(self._spec.physical(logical))


class BoundNames:
    """A mapping bound to a dialect: formats SQL templates such as
    `SELECT {stock.code} FROM {stock} WHERE {stock.type} = ?` into the site's names."""

    def __init__(self, *, mapping: Mapping, dialect: Dialect) -> None:
        self.mapping = mapping
        self.dialect = dialect
        self._refs = {logical: _TableRef(self, logical) for logical in mapping.tables}
        self._cache: dict[str, str] = {}

    def sql(self, template: str) -> str:
        text = self._cache.get(template)
        if text is None:
            try:
                text = string.Formatter().vformat(template, (), self._refs)
            except (KeyError, AttributeError) as error:
                raise MappingError(f"SQL template names something not in the mapping: {error}") from error
            self._cache[template] = text
        return text

    def schema_of(self, spec: TableSpec) -> str | None:
        """The schema a table lives in, or None on databases without schemas."""
        if not self.dialect.supports_schemas:
            return None
        return {"company": self.mapping.company, "common": self.mapping.common_schema,
                "state": self.mapping.state_schema}[spec.home]

    def qualified(self, spec: TableSpec) -> str:
        schema = self.schema_of(spec)
        if schema is not None:
            return f"{self.dialect.quote(schema)}.{self.dialect.quote(spec.name)}"
        if spec.home == "state":
            prefix = f"{self.mapping.state_schema}_"
        else:
            prefix = self.mapping.table_prefix or ""
        return self.dialect.quote(prefix + spec.name)

    def table(self, logical: str) -> str:
        return self.qualified(self.mapping.tables[logical])

    def state_table(self, name: str) -> str:
        """Where one of the integration's own tables called `name` lives: `"exsync"."name"`, or
        `"exsync_name"` on databases without schemas (for the other packages' state tables)."""
        return self.qualified(TableSpec(name, {}, home="state"))

    def column(self, logical_table: str, logical_column: str) -> str:
        return self.dialect.quote(self.mapping.tables[logical_table].physical(logical_column))
