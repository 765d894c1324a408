"""What Exchequer's Toolkit does to the tables when it saves, for the replica (the Toolkit emulator,
the demo's actions and the seed): counters, headers and lines with the fields the Toolkit sets,
allocation on STOCK and StockLocation, the customer's order balance in HISTORY, audit notes.

Each rule cites the vendor routine it follows (adv-hack/Exchequer; see ../shared/exchequer-sql-edition.md
§3). Everything runs through a Cursor inside the caller's transaction. Stock rows are touched in
(code, location) order so concurrent transactions take their row locks in the same order.
"""

import dataclasses
import datetime
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from exsync.exchequer.db import Cursor
from exsync.exchequer.errors import (
    InvalidDocumentError,
    MappingError,
    UnknownAccountError,
    UnknownStockItemError,
)
from exsync.exchequer.mapping import (
    CUSTOMER_HISTORY_CLASS,
    DOC_TYPES,
    LINE_TYPES,
    NO_PRICE_BANDS,
    NOTE_RECORD_PREFIX,
    PRICE_BANDS,
    RUN_NO,
    STOCK_CODE_LENGTH,
    VAT_ANALYSIS,
    BoundNames,
    pascal_bytes,
    pascal_text,
)

__all__ = [
    "ACCOUNT_FIELDS",
    "HOLD_CREDIT",
    "MAX_REFERENCE_NUMBER",
    "TOOLKIT_OPERATOR",
    "YTD_PERIOD",
    "CompanySettings",
    "account_columns",
    "add_audit_note",
    "check_document",
    "check_fits",
    "committed_balance",
    "company_settings",
    "format_reference",
    "full_stock_code",
    "insert_document",
    "move_stock",
    "next_number",
    "post_order_balance",
    "require_account",
    "stock_records",
    "stock_types",
    "take_folio",
    "take_reference",
    "trans_date",
    "update_account_row",
    "vat_rates",
]

MAX_REFERENCE_NUMBER = 999_999
ACCOUNT_FIELDS = ("company", "contact", "address", "post_code", "email", "phone", "price_band", "user_defs")
HOLD_CREDIT = 6  # thHoldFlag 6: credit hold (evw_HoldStatus.sql)
YTD_PERIOD = 255  # HISTORY's year-to-date row (`Post_To_CYTDHist`)
TOOLKIT_OPERATOR = "exsync"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompanySettings:
    """The system settings the Toolkit's save consults (evw_SystemSettings and EXCHQSS 'SYS')."""

    use_multi_locations: bool = True
    deduct_bom_components: bool = False
    audit_year: int = 0
    quotes_allocate: bool = False
    credit_check: bool = False


def company_settings(cursor: Cursor) -> CompanySettings:
    row = cursor.run("SELECT {settings.use_multi_locations}, {settings.deduct_bom_components}, "
                     "{settings.audit_year} FROM {settings}").fetchone()
    # QUAllocFlg and UseCreditChk are not in the view: the 'SYS' record of EXCHQSS, found by
    # decoding IDCode (a Pascal string) here rather than trusting a computed column to exist.
    quotes = credit = False
    for id_code, qu_alloc, credit_check in cursor.run(
            "SELECT {system_setup.id_code}, {system_setup.qu_alloc_flg}, {system_setup.use_credit_chk} "
            "FROM {system_setup}").fetchall():
        if pascal_text(id_code) == "SYS":
            quotes, credit = bool(qu_alloc), bool(credit_check)
    if row is None:
        return CompanySettings(quotes_allocate=quotes, credit_check=credit)
    return CompanySettings(use_multi_locations=bool(row[0]), deduct_bom_components=bool(row[1]),
                           audit_year=int(row[2] or 0), quotes_allocate=quotes, credit_check=credit)


def vat_rates(cursor: Cursor) -> dict[str, float]:
    """{VAT code: rate %} from the company's evw_VATRate."""
    return {code: float(rate or 0.0) for code, rate in cursor.run(
        "SELECT {vat_rates.code}, {vat_rates.rate} FROM {vat_rates}").fetchall() if code and code.strip()}


_INCREMENT = ("UPDATE {counters} SET {counters.next_number} = {counters.next_number} + 1 "
              "WHERE {counters.counter_type} = ?")


def next_number(cursor: Cursor, counter_type: str) -> int:
    """Takes the next number of an EXCHQNUM counter (`GetNextCount`, ENTRPRSE/R&D/Sysu1.pas L230-280),
    holding its row lock until commit."""
    dialect = cursor.names.dialect
    if dialect.update_returning:
        # The same row lock and the same number in one statement: every transaction that writes a
        # document waits on this row, so each round trip taken while holding it counts.
        row = cursor.run(_INCREMENT + " RETURNING {counters.next_number} - 1", (counter_type,)).fetchone()
    else:
        select = dialect.for_update("SELECT {counters.next_number} FROM " + dialect.locked("{counters}")
                                    + " WHERE {counters.counter_type} = ?")
        row = cursor.run(select, (counter_type,)).fetchone()
        if row is not None:
            cursor.run(_INCREMENT, (counter_type,))
    if row is None:
        raise MappingError(f"the counters table has no {counter_type!r} row (run `exsync exchequer init`)")
    return int(row[0])


_Value = TypeVar("_Value", str, int)


def _take_unused(cursor: Cursor, counter_type: str, column: str, value_of: Callable[[int], _Value], value_sql: str,
                 value_params: Sequence[object] = ()) -> _Value:
    """The value (`value_of(number)`) of the next number of a counter that no document has in
    `column` (`SetNextDocNos` loops until `CheckExsists` finds none). Where the dialect returns
    from an UPDATE, each try is one statement: the number taken and the value looked up together
    (`value_sql`: the value in SQL, from the row's new next number), since the counter row stays
    locked for every statement that follows until commit."""
    count = "SELECT COUNT(*) FROM {documents} WHERE " + column + " = "
    while True:
        if cursor.names.dialect.update_returning:
            row = cursor.run(f"{_INCREMENT} RETURNING {{counters.next_number}} - 1, ({count}{value_sql})",
                             (counter_type, *value_params)).fetchone()
            if row is None:
                raise MappingError(f"the counters table has no {counter_type!r} row (run `exsync exchequer init`)")
            value, taken = value_of(int(row[0])), row[1]
        else:
            value = value_of(next_number(cursor, counter_type))
            taken = cursor.scalar(count + "?", (value,))
        if not taken:
            return value


def take_reference(cursor: Cursor, doc_type: str) -> str:
    """The next unused reference of a type (`SetNextDocNos` loops until `CheckExsists` finds none,
    ENTRPRSE/R&D/Sysu1.pas L372-420)."""
    return _take_unused(cursor, doc_type, "{documents.our_ref}", lambda number: format_reference(doc_type, number),
                        "? || LPAD(CAST({counters.next_number} - 1 AS VARCHAR), 6, '0')", (doc_type,))


def take_folio(cursor: Cursor, counter: str) -> int:
    """The next unused folio from the AFL or FOL row (the same loop: the two rows share one key space)."""
    return _take_unused(cursor, counter, "{documents.folio}", int, "{counters.next_number} - 1")


def format_reference(doc_type: str, number: int) -> str:
    """SOR000123: the type and a six-digit counter."""
    if number > MAX_REFERENCE_NUMBER:
        raise InvalidDocumentError(f"{doc_type} counter passed {MAX_REFERENCE_NUMBER}: Exchequer's "
                                   "lettered references are not modeled")
    return f"{doc_type}{number:06d}"


def trans_date(value: datetime.date | str) -> str:
    """Exchequer's YYYYMMDD text for a date (a date, or already such text)."""
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    text = str(value)
    if len(text) != 8 or not text.isdigit():
        raise InvalidDocumentError(f"{value!r} is not a date (a datetime.date or YYYYMMDD)")
    return text


def full_stock_code(code: str) -> str:
    """`FullStockCode`: upper case, padded to StkLen (ENTRPRSE/R&D/BTKeys1U.pas L1042-1045)."""
    return code.upper().ljust(STOCK_CODE_LENGTH) if code else ""


def check_fits(names: BoundNames, table: str, column: str, value: str) -> str:
    """Raises InvalidDocumentError when a text is longer than the mapped column allows."""
    kind = names.mapping.tables[table].kind(column)
    if kind.startswith(("str:", "pstr:")) and len(value) > int(kind.partition(":")[2]):
        raise InvalidDocumentError(f"{table}.{column} holds at most {kind.partition(':')[2]} characters, "
                                   f"not {value!r}")
    return value


# Codes bound in one IN (...) list: well under every driver's parameter limit (SQL Server's 2,100).
_CODES_PER_QUERY = 200


def stock_records(cursor: Cursor, codes: Iterable[str]) -> dict[str, tuple[str, int]]:
    """{code: (stType, stFolioNum)}; UnknownStockItemError names the first code missing."""
    wanted = sorted(set(codes))
    found: dict[str, tuple[str, int]] = {}
    # One query per chunk of codes, not per code: an order's lines are read in one round trip.
    for start in range(0, len(wanted), _CODES_PER_QUERY):
        chunk = wanted[start:start + _CODES_PER_QUERY]
        for code, stock_type, folio in cursor.run(
                "SELECT {stock.code}, {stock.type}, {stock.folio} FROM {stock} "
                f"WHERE {{stock.code}} IN ({', '.join('?' * len(chunk))})", chunk).fetchall():
            # Keyed as the server compared: a case-insensitive collation (SQL Server's) matches 'abc' to 'ABC'.
            found[str(code).rstrip().upper()] = (stock_type, int(folio))
    for code in wanted:
        if code.rstrip().upper() not in found:
            raise UnknownStockItemError(f"no stock item {code!r}")
    return {code: found[code.rstrip().upper()] for code in wanted}


def stock_types(cursor: Cursor, codes: Iterable[str]) -> dict[str, str]:
    """The stType of each code; UnknownStockItemError names the first code missing."""
    return {code: record[0] for code, record in stock_records(cursor, codes).items()}


def require_account(cursor: Cursor, code: str) -> str:
    row = cursor.run("SELECT {accounts.code} FROM {accounts} WHERE {accounts.code} = ?", (code.upper(),)).fetchone()
    if row is None:
        raise UnknownAccountError(f"no account {code!r}")
    return row[0]


def _stamp(now: time.struct_time | None = None) -> tuple[str, str]:
    now = now or time.localtime()
    return time.strftime("%Y%m%d", now), time.strftime("%H%M%S", now)


def _year_period(date: str) -> tuple[int, int]:
    """Exchequer's year (year - 1900) and period of a date; the demo company's periods are months."""
    day = datetime.date(int(date[:4]), int(date[4:6]), int(date[6:]))
    return day.year - 1900, day.month


def check_document(names: BoundNames, *, lines: Sequence[Mapping[str, Any]], vat_rates: Mapping[str, float],
                   your_ref: str = "", long_your_ref: str = "", user_fields: Mapping[int, str] | None = None,
                   delivery_address: Iterable[str] = (), delivery_post_code: str = "") -> None:
    """Refuses (InvalidDocumentError) a document `insert_document` could not write: an unknown VAT
    code, a text longer than its column, a user field outside 1..12. Called before the document's
    numbers are taken, so that a refused document takes none."""
    for line_no, line in enumerate(lines, start=1):
        if line["vat_code"] not in vat_rates:
            raise InvalidDocumentError(f"line {line_no}: VAT code {line['vat_code']!r} is not one of the company's "
                                       f"(evw_VATRate: {', '.join(sorted(vat_rates))})")
        check_fits(names, "lines", "stock_code", full_stock_code(line["stock_code"]))
        check_fits(names, "lines", "location", line["location"])
        check_fits(names, "lines", "description", line["description"])
    for number, value in (user_fields or {}).items():
        if not 1 <= int(number) <= 12:
            raise InvalidDocumentError(f"transaction user fields are numbered 1..12, not {number!r}")
        check_fits(names, "documents", f"user_field_{int(number)}", value)
    check_fits(names, "documents", "your_ref", your_ref)
    check_fits(names, "documents", "long_your_ref", long_your_ref)
    check_fits(names, "documents", "delivery_post_code", delivery_post_code)
    for n, text in enumerate(tuple(delivery_address)[:5], start=1):
        check_fits(names, "documents", f"delivery_address_{n}", text)


def insert_document(cursor: Cursor, *, doc_type: str, our_ref: str, folio: int, account_code: str,
                    date: datetime.date | str, your_ref: str = "", long_your_ref: str = "",
                    user_fields: Mapping[int, str] | None = None, lines: Sequence[Mapping[str, Any]],
                    vat_rates: Mapping[str, float], delivery_address: Iterable[str] = (),
                    delivery_post_code: str = "", hold_flag: int = 0, remit_no: str = "",
                    delivery_note_ref: str = "") -> tuple[float, float, float]:
    """Writes a DOCUMENT header and its DETAILS lines with what the Toolkit sets on save.

    `lines` are dicts with stock_code, description, qty, net_value (per unit), vat_code, location, and
    optionally qty_delivered, qty_picked, stock_deduct_qty, sop_folio, sop_abs_line_no, bom_kit_link.
    Lines are numbered 1.. and their tlABSLineNo is their number (`tlABSLineNo := LineNo`,
    DLLTH_UP.PAS Validate_Lines); thNextLineNumber is one past the last. Returns (net, vat, total
    order outstanding).
    """
    names = cursor.names
    delivery_address = tuple(delivery_address)
    check_document(names, lines=lines, vat_rates=vat_rates, your_ref=your_ref, long_your_ref=long_your_ref,
                   user_fields=user_fields, delivery_address=delivery_address, delivery_post_code=delivery_post_code)
    date_text = trans_date(date)
    year, period = _year_period(date_text)
    total_net = total_vat = order_os = 0.0
    analysis: dict[str, float] = {}
    rows: list[tuple[Any, ...]] = []
    for line_no, line in enumerate(lines, start=1):
        vat_code = line["vat_code"]
        net = round(line["qty"] * line["net_value"], 2)
        vat = round(net * vat_rates[vat_code] / 100.0, 2)
        total_net += net
        total_vat += vat
        analysis[vat_code] = analysis.get(vat_code, 0.0) + vat
        delivered = float(line.get("qty_delivered", 0.0))
        # thTotalOrderOS: Σ outstanding line value (`InvLOOS`, DLLTH_UP.PAS L4874, L5887).
        order_os += round((line["qty"] - delivered) * line["net_value"], 2)
        code = full_stock_code(line["stock_code"])
        rows.append((
            folio, our_ref, line_no, line_no, DOC_TYPES[doc_type], RUN_NO.get(doc_type, 0), year, period, 0,
            LINE_TYPES.get(doc_type, ""), pascal_bytes(code, 20), float(line["qty"]), 1.0, delivered, 0.0,
            float(line.get("qty_picked", 0.0)), float(line.get("stock_deduct_qty", 0.0)),
            line["location"], float(line["net_value"]), 0.0, "",
            vat_code, vat, line["description"], account_code,
            date_text, int(line.get("sop_folio", 0)), int(line.get("sop_abs_line_no", 0)),
            int(line.get("bom_kit_link", 0))))
    user_fields = user_fields or {}
    created_date, created_time = _stamp()
    header = {
        "our_ref": our_ref, "folio": folio, "doc_type": DOC_TYPES[doc_type], "account_code": account_code,
        # thCustSupp: 'C' for sales, the next letter 'D' for SOR/SDN (DLLTH_UP.PAS L6290); an SQU is 'C'.
        "cust_supp": "D" if doc_type in ("SOR", "SDN") else "C",
        "run_no": RUN_NO.get(doc_type, 0), "trans_date": date_text, "due_date": date_text,
        "year": year, "period": period, "currency": 0,
        "your_ref": your_ref, "long_your_ref": pascal_bytes(long_your_ref, 20),
        "net_value": round(total_net, 2), "total_vat": round(total_vat, 2), "total_order_os": round(order_os, 2),
        "hold_flag": hold_flag, "next_line_no": len(lines) + 1, "remit_no": remit_no,
        "ord_match": 1 if remit_no else 0, "delivery_note_ref": delivery_note_ref,
        # thTimeCreated, thCreationDate/Time, thOriginator (`Store_ExDoc`, DLLTH_UP.PAS L2425-2433, L6169-6196).
        "time_created": created_time, "time_changed": created_time, "creation_date": created_date,
        "creation_time": created_time, "originator": TOOLKIT_OPERATOR, "operator": TOOLKIT_OPERATOR,
        "delivery_post_code": delivery_post_code,
        **{f"delivery_address_{n}": text for n, text in enumerate(delivery_address[:5], start=1)},
        **{f"vat_analysis_{code}": round(value, 2) for code, value in analysis.items() if code in VAT_ANALYSIS},
        **{f"user_field_{int(number)}": value for number, value in user_fields.items()},
    }
    columns = ", ".join(f"{{documents.{column}}}" for column in header)
    cursor.run(f"INSERT INTO {{documents}} ({columns}) VALUES ({', '.join('?' * len(header))})",
               tuple(header.values()))
    cursor.executemany(names.sql(
        "INSERT INTO {lines} ({lines.folio}, {lines.our_ref}, {lines.line_no}, {lines.abs_line_no}, "
        "{lines.doc_type}, {lines.run_no}, {lines.year}, {lines.period}, {lines.currency}, {lines.line_type}, "
        "{lines.stock_code}, {lines.qty}, {lines.qty_mul}, {lines.qty_delivered}, {lines.qty_written_off}, "
        "{lines.qty_picked}, {lines.stock_deduct_qty}, {lines.location}, {lines.net_value}, {lines.discount}, "
        "{lines.disc_flag}, {lines.vat_code}, {lines.vat_amount}, {lines.description}, {lines.account_code}, "
        "{lines.line_date}, {lines.sop_folio}, {lines.sop_abs_line_no}, {lines.bom_kit_link}) "
        "VALUES (" + ", ".join("?" * 29) + ")"), rows)
    return round(total_net, 2), round(total_vat, 2), round(order_os, 2)


def move_stock(cursor: Cursor, changes: Mapping[tuple[str, str], tuple[float, float, float]], *,
               use_multi_locations: bool = True) -> None:
    """Adds to an item's figures and, with multi-location on, to its location's (`Stock_Deduct` and
    `Stock_MLocDeduct`, ENTRPRSE/DLLTK/BTS1.pas L1380-1440, L1648-1740): `changes` maps (code,
    location) to (in_stock, allocated, picked) deltas. A missing location record is created with the
    item's folio and cost, as the Toolkit does. Stamps stLastUsed/stTimeChange.

    The Toolkit writes absolute figures it computed in memory; inside one database transaction with
    the rows locked an increment is the same value and cannot lose a concurrent one.
    """
    day, now = _stamp()
    for (code, location), (in_stock, allocated, picked) in sorted(changes.items()):
        if not (in_stock or allocated or picked):
            continue
        cursor.run("UPDATE {stock} SET {stock.qty_in_stock} = {stock.qty_in_stock} + ?, "
                   "{stock.qty_allocated} = {stock.qty_allocated} + ?, {stock.qty_picked} = {stock.qty_picked} + ?, "
                   "{stock.last_used} = ?, {stock.time_change} = ? WHERE {stock.code} = ?",
                   (in_stock, allocated, picked, day, now, code))
        if not location or not use_multi_locations:
            continue
        # The location's first record (by position) found and changed in one statement.
        update = ("UPDATE {stock_locations} SET "
                  "{stock_locations.qty_in_stock} = COALESCE({stock_locations.qty_in_stock}, 0) + ?, "
                  "{stock_locations.qty_allocated} = COALESCE({stock_locations.qty_allocated}, 0) + ?, "
                  "{stock_locations.qty_picked} = COALESCE({stock_locations.qty_picked}, 0) + ?, "
                  "{stock_locations.last_used} = ?, {stock_locations.last_time} = ? "
                  "WHERE {stock_locations.position_id} = (SELECT MIN({stock_locations.position_id}) "
                  "FROM {stock_locations} WHERE {stock_locations.stock_code} = ? AND {stock_locations.location} = ?)")
        params = (in_stock, allocated, picked, day, now, code, location)
        if not cursor.run(update, params).rowcount:
            cursor.run("INSERT INTO {stock_locations} ({stock_locations.stock_code}, {stock_locations.stock_folio}, "
                       "{stock_locations.location}, {stock_locations.qty_in_stock}, {stock_locations.qty_allocated}, "
                       "{stock_locations.qty_picked}, {stock_locations.qty_on_order}, {stock_locations.qty_alloc_wor}, "
                       "{stock_locations.qty_picked_wor}, {stock_locations.cost_price}, {stock_locations.last_used}, "
                       "{stock_locations.last_time}) SELECT {stock.code}, {stock.folio}, ?, 0, 0, 0, 0, 0, 0, 0, ?, ? "
                       "FROM {stock} WHERE {stock.code} = ?", (location, day, now, code))
            cursor.run(update, params)


def post_order_balance(cursor: Cursor, *, account_code: str, year: int, period: int, amount: float) -> None:
    """Adds `amount` to the customer's committed order balance in HISTORY, class 'U', for the period and
    the year to date (`UpdateOrdBal` -> `Post_To_Hist`/`Post_To_CYTDHist` with the value as `PCleared`,
    ENTRPRSE/DLLTK/BTS1.pas L2191-2340, ENTRPRSE/R&D/Sysu1.pas L1649)."""
    code = pascal_bytes(account_code.upper().ljust(20), 20)
    ex_class = ord(CUSTOMER_HISTORY_CLASS)
    # Both rows in one statement when both exist (every order after an account's first in a period):
    # these rows are shared by the account's orders, and each round trip holding them counts.
    updated = cursor.run("UPDATE {history} SET {history.cleared} = {history.cleared} + ? "
                         "WHERE {history.ex_class} = ? AND {history.code} = ? AND {history.currency} = 0 "
                         "AND {history.year} = ? AND {history.period} IN (?, ?)",
                         (round(amount, 2), ex_class, code, year, period, YTD_PERIOD)).rowcount
    if updated == 2:
        return
    for row_period in (period, YTD_PERIOD):
        exists = cursor.scalar("SELECT COUNT(*) FROM {history} WHERE {history.ex_class} = ? AND {history.code} = ? "
                               "AND {history.currency} = 0 AND {history.year} = ? AND {history.period} = ?",
                               (ex_class, code, year, row_period))
        if not exists:
            cursor.run("INSERT INTO {history} ({history.code}, {history.ex_class}, {history.currency}, {history.year}, "
                       "{history.period}, {history.sales}, {history.purchases}, {history.cleared}) "
                       "VALUES (?, ?, 0, ?, ?, 0, 0, ?)", (code, ex_class, year, row_period, round(amount, 2)))


def committed_balance(cursor: Cursor, account_code: str) -> float:
    """The account's committed order balance: Σ class 'U' year-to-date rows (`WithinCreditLimit`)."""
    code = pascal_bytes(account_code.upper().ljust(20), 20)
    value = cursor.scalar("SELECT SUM({history.cleared}) FROM {history} WHERE {history.ex_class} = ? "
                          "AND {history.code} = ? AND {history.period} = ?",
                          (ord(CUSTOMER_HISTORY_CLASS), code, YTD_PERIOD))
    return float(value or 0.0)


def add_audit_note(cursor: Cursor, *, folio: int, text: str) -> None:
    """An audit note: an EXCHQCHK 'N' record keyed by the folio (`AuditNote.AddNote`,
    ENTRPRSE/R&D/AuditNotes.pas L127, L209)."""
    key = pascal_bytes(str(folio), 10)
    # The line number counted in the INSERT itself: one round trip inside the document's transaction,
    # found through the (prefix, subtype, folio) index rather than by reading every note.
    cursor.run("INSERT INTO {bom} ({bom.record_prefix}, {bom.sub_type}, {bom.note_folio}, {bom.note_type}, "
               "{bom.note_line_no}, {bom.note_line}, {bom.note_user}) "
               "SELECT ?, ?, ?, ?, COUNT(*) + 1, ?, ? FROM {bom} "
               "WHERE {bom.record_prefix} = ? AND {bom.sub_type} = ? AND {bom.note_folio} = ?",
               (NOTE_RECORD_PREFIX, ord("A"), key, "A", text[:100], TOOLKIT_OPERATOR, NOTE_RECORD_PREFIX, ord("A"),
                key))


def account_columns(names: BoundNames, details_fields: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(logical column, value) pairs for the AccountDetails fields given, length-checked."""
    pairs: list[tuple[str, Any]] = []
    for field, value in details_fields.items():
        if field not in ACCOUNT_FIELDS:
            raise InvalidDocumentError(f"accounts have no field {field!r} (fields: {', '.join(ACCOUNT_FIELDS)})")
        if field == "address":
            values = tuple(value)[:5]
            pairs.extend((f"address_{n}", text) for n, text in enumerate(values + ("",) * (5 - len(values)), 1))
        elif field == "user_defs":
            pairs.extend((f"user_def_{n}", text) for n, text in enumerate(tuple(value)[:10], 1))
        elif field == "price_band":
            # acDiscountBand: A..H, or ' '/'%' for none (ENTRPRSE/COMTK/oCust.pas L1133-1150).
            if len(value) != 1 or (value not in PRICE_BANDS and value not in NO_PRICE_BANDS):
                raise InvalidDocumentError(f"price band {value!r} is not one of {PRICE_BANDS} (or ' ' for none)")
            pairs.append((field, value))
        else:
            pairs.append((field, value))
    return [(column, check_fits(names, "accounts", column, value)) for column, value in pairs]


def update_account_row(cursor: Cursor, code: str, changes: Mapping[str, Any]) -> str:
    """Applies field changes to an account and stamps acLastUsed/acTimeStamp (`EX_STOREACCOUNT`,
    ENTRPRSE/DLLTK/DLL01U.pas L625, L702); UnknownAccountError when there is none."""
    names = cursor.names
    dialect = names.dialect
    select = dialect.for_update(
        "SELECT {accounts.code} FROM " + dialect.locked("{accounts}") + " WHERE {accounts.code} = ?")
    row = cursor.run(select, (code.upper(),)).fetchone()
    if row is None:
        raise UnknownAccountError(f"no account {code!r}")
    pairs = account_columns(names, changes)
    if pairs:
        day, now = _stamp()
        pairs += [("last_used", day), ("time_stamp", now)]
        assignments = ", ".join(f"{{accounts.{column}}} = ?" for column, _ in pairs)
        cursor.run(f"UPDATE {{accounts}} SET {assignments} WHERE {{accounts.code}} = ?",
                   (*(value for _, value in pairs), row[0]))
    return row[0]
