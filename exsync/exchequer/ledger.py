"""The effects Exchequer's client code applies, shared by the SQL write backend and the actions.

Counters, document headers and lines, stock figures and account rows, each applied through a
Cursor inside the caller's transaction. Stock rows are always touched in (code, location) order
so that concurrent transactions take their row locks in the same order and cannot deadlock.
"""

import datetime

from exsync.exchequer.errors import (
    InvalidDocumentError,
    MappingError,
    UnknownAccountError,
    UnknownStockItemError,
)
from exsync.exchequer.mapping import DOC_TYPES, PRICE_BANDS, RUN_NO

__all__ = [
    "ACCOUNT_FIELDS",
    "MAX_REFERENCE_NUMBER",
    "account_columns",
    "check_fits",
    "format_reference",
    "insert_document",
    "move_stock",
    "next_number",
    "require_account",
    "stock_types",
    "trans_date",
    "update_account_row",
]

MAX_REFERENCE_NUMBER = 999_999
ACCOUNT_FIELDS = ("company", "contact", "address", "post_code", "email", "phone", "price_band", "user_defs")


def next_number(cursor, counter_type):
    """Takes the next number of an EXCHQNUM counter, holding its row lock until commit."""
    dialect = cursor.names.dialect
    select = dialect.for_update(
        "SELECT {counters.next_number} FROM " + dialect.locked("{counters}") + " WHERE {counters.counter_type} = ?")
    row = cursor.run(select, (counter_type,)).fetchone()
    if row is None:
        raise MappingError(f"the counters table has no {counter_type!r} row (run `exsync exchequer init`)")
    cursor.run("UPDATE {counters} SET {counters.next_number} = {counters.next_number} + 1 "
               "WHERE {counters.counter_type} = ?", (counter_type,))
    return int(row[0])


def format_reference(doc_type, number):
    """SOR000123: the type and a six-digit counter."""
    if number > MAX_REFERENCE_NUMBER:
        raise InvalidDocumentError(f"{doc_type} counter passed {MAX_REFERENCE_NUMBER}: Exchequer's "
                                   "lettered references are not modeled")
    return f"{doc_type}{number:06d}"


def trans_date(value):
    """Exchequer's YYYYMMDD text for a date (a date, or already such text)."""
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    text = str(value)
    if len(text) != 8 or not text.isdigit():
        raise InvalidDocumentError(f"{value!r} is not a date (a datetime.date or YYYYMMDD)")
    return text


def check_fits(names, table, column, value):
    """Raises InvalidDocumentError when a text is longer than the mapped column allows."""
    kind = names.mapping.tables[table].columns[column].kind
    if kind.startswith("str:") and len(value) > int(kind[4:]):
        raise InvalidDocumentError(f"{table}.{column} holds at most {kind[4:]} characters, not {value!r}")
    return value


def stock_types(cursor, codes):
    """The stType of each code; UnknownStockItemError names the first code missing."""
    found = {}
    for code in sorted(set(codes)):
        row = cursor.run("SELECT {stock.type} FROM {stock} WHERE {stock.code} = ?", (code,)).fetchone()
        if row is None:
            raise UnknownStockItemError(f"no stock item {code!r}")
        found[code] = row[0]
    return found


def require_account(cursor, code):
    row = cursor.run("SELECT {accounts.code} FROM {accounts} WHERE {accounts.code} = ?", (code.upper(),)).fetchone()
    if row is None:
        raise UnknownAccountError(f"no account {code!r}")
    return row[0]


def insert_document(cursor, *, doc_type, our_ref, folio, account_code, date, your_ref="", long_your_ref="",
                    user_fields=None, lines, vat_rates):
    """Writes a DOCUMENT header and its DETAILS lines.

    `lines` are dicts with stock_code, description, qty, net_value (per unit), vat_code,
    location, and optionally qty_delivered, sop_folio, sop_line_no. Returns (net, vat) totals.
    """
    names = cursor.names
    total_net = total_vat = 0.0
    rows = []
    for line_no, line in enumerate(lines, start=1):
        vat_code = line["vat_code"]
        if vat_code not in vat_rates:
            raise InvalidDocumentError(f"line {line_no}: VAT code {vat_code!r} is not configured "
                                       f"(known: {', '.join(sorted(vat_rates))})")
        net = round(line["qty"] * line["net_value"], 2)
        vat = round(net * vat_rates[vat_code] / 100.0, 2)
        total_net += net
        total_vat += vat
        rows.append((folio, our_ref, line_no, check_fits(names, "lines", "stock_code", line["stock_code"]),
                     float(line["qty"]), float(line.get("qty_delivered", 0.0)), 0.0,
                     check_fits(names, "lines", "location", line["location"]), float(line["net_value"]), 0.0,
                     vat_code, vat, check_fits(names, "lines", "description", line["description"]), account_code,
                     line.get("sop_folio", 0), line.get("sop_line_no", 0)))
    user_fields = user_fields or {}
    for number in user_fields:
        if not 1 <= int(number) <= 12:
            raise InvalidDocumentError(f"transaction user fields are numbered 1..12, not {number!r}")
    extra = sorted((int(number), value) for number, value in user_fields.items())
    extra_columns = "".join(f", {{documents.user_field_{number}}}" for number, _ in extra)
    cursor.run(
        "INSERT INTO {documents} ({documents.our_ref}, {documents.folio}, {documents.doc_type}, "
        "{documents.account_code}, {documents.run_no}, {documents.trans_date}, {documents.your_ref}, "
        "{documents.long_your_ref}, {documents.net_value}, {documents.total_vat}" + extra_columns + ") "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?" + ", ?" * len(extra) + ")",
        (our_ref, folio, DOC_TYPES[doc_type], account_code, RUN_NO[doc_type], trans_date(date),
         check_fits(names, "documents", "your_ref", your_ref),
         check_fits(names, "documents", "long_your_ref", long_your_ref), round(total_net, 2), round(total_vat, 2),
         *(check_fits(names, "documents", f"user_field_{number}", value) for number, value in extra)))
    cursor.executemany(names.sql(
        "INSERT INTO {lines} ({lines.folio}, {lines.our_ref}, {lines.line_no}, {lines.stock_code}, {lines.qty}, "
        "{lines.qty_delivered}, {lines.qty_picked}, {lines.location}, {lines.net_value}, {lines.discount}, "
        "{lines.vat_code}, {lines.vat_amount}, {lines.description}, {lines.account_code}, {lines.sop_folio}, "
        "{lines.sop_line_no}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), rows)
    return round(total_net, 2), round(total_vat, 2)


def move_stock(cursor, changes):
    """Adds to an item's figures and to its location's: `changes` maps (code, location) to a
    (in_stock, allocated, picked) tuple of deltas. A location row is created when missing."""
    names = cursor.names
    dialect = names.dialect
    ensure_location = dialect.insert_if_absent(
        names.table("stock_locations"),
        [names.column("stock_locations", "stock_code"), names.column("stock_locations", "location")],
        [names.column("stock_locations", "stock_code"), names.column("stock_locations", "location")])
    for (code, location), (in_stock, allocated, picked) in sorted(changes.items()):
        if not (in_stock or allocated or picked):
            continue
        cursor.run("UPDATE {stock} SET {stock.qty_in_stock} = {stock.qty_in_stock} + ?, "
                   "{stock.qty_allocated} = {stock.qty_allocated} + ?, {stock.qty_picked} = {stock.qty_picked} + ? "
                   "WHERE {stock.code} = ?", (in_stock, allocated, picked, code))
        if not location:
            continue
        cursor.execute(ensure_location, dialect.insert_if_absent_params((code, location), (code, location)))
        cursor.run("UPDATE {stock_locations} SET {stock_locations.qty_in_stock} = {stock_locations.qty_in_stock} + ?, "
                   "{stock_locations.qty_allocated} = {stock_locations.qty_allocated} + ?, "
                   "{stock_locations.qty_picked} = {stock_locations.qty_picked} + ? "
                   "WHERE {stock_locations.stock_code} = ? AND {stock_locations.location} = ?",
                   (in_stock, allocated, picked, code, location))


def account_columns(names, details_fields):
    """(logical column, value) pairs for the AccountDetails fields given, length-checked."""
    pairs = []
    for field, value in details_fields.items():
        if field not in ACCOUNT_FIELDS:
            raise InvalidDocumentError(f"accounts have no field {field!r} (fields: {', '.join(ACCOUNT_FIELDS)})")
        if field == "address":
            values = tuple(value)[:5]
            pairs.extend((f"address_{n}", text) for n, text in enumerate(values + ("",) * (5 - len(values)), 1))
        elif field == "user_defs":
            pairs.extend((f"user_def_{n}", text) for n, text in enumerate(tuple(value)[:10], 1))
        elif field == "price_band":
            if value not in PRICE_BANDS or len(value) != 1:
                raise InvalidDocumentError(f"price band {value!r} is not one of {PRICE_BANDS}")
            pairs.append((field, value))
        else:
            pairs.append((field, value))
    return [(column, check_fits(names, "accounts", column, value)) for column, value in pairs]


def update_account_row(cursor, code, changes):
    """Applies field changes to an account; UnknownAccountError when there is none."""
    names = cursor.names
    dialect = names.dialect
    select = dialect.for_update(
        "SELECT {accounts.code} FROM " + dialect.locked("{accounts}") + " WHERE {accounts.code} = ?")
    row = cursor.run(select, (code.upper(),)).fetchone()
    if row is None:
        raise UnknownAccountError(f"no account {code!r}")
    pairs = account_columns(names, changes)
    if pairs:
        assignments = ", ".join(f"{{accounts.{column}}} = ?" for column, _ in pairs)
        cursor.run(f"UPDATE {{accounts}} SET {assignments} WHERE {{accounts.code}} = ?",
                   (*(value for _, value in pairs), row[0]))
    return row[0]
