"""Exchequer's record layout in Python terms: the constants its documents and records use, how its
binary fields (Pascal short strings, Real48, folios) are encoded, and the `Column`/`TableSpec` an
edition's tables are declared with (the declarations themselves: `sql_edition`; names bound to a
company: `mapping`)."""

import dataclasses
import math

from exsync.exchequer.errors import MappingError

__all__ = [
    "DEFAULT_COMMON_SCHEMA",
    "EBUS_WEB_FLAG_FIELD",
    "DOC_TYPES",
    "DOC_TYPE_NAMES",
    "RUN_NO",
    "COMPLETED_ORDER_RUN_NO",
    "LINE_TYPES",
    "BOM_RECORD_PREFIX",
    "BOM_SUB_TYPE",
    "NOTE_RECORD_PREFIX",
    "FOLIO_COUNTER",
    "CUSTOMER_HISTORY_CLASS",
    "STOCK_TYPES",
    "PRICE_BANDS",
    "NO_PRICE_BANDS",
    "ACCOUNT_CODE_LENGTH",
    "STOCK_CODE_LENGTH",
    "VAT_ANALYSIS",
    "VAT_RATE_SLOTS",
    "pascal_bytes",
    "pascal_text",
    "real48_bytes",
    "real48_value",
    "folio_bytes",
    "Column",
    "TableSpec",
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
