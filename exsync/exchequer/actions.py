"""What Exchequer's users do in Exchequer, for the demo and the tests: adjust stock, pick, dispatch
(SDN), invoice (SIN), write off (cancel) and edit sales orders, edit accounts, change prices and
system settings; and what Exchequer's own stock recalculation would make of the allocations.

Each action is one transaction applying the effects Exchequer's client would, on the demo company
only (a real company is changed by its users in Exchequer). Delivering an order line grows tlQtyDel
and shrinks tlStockDeductQty, reduces in-stock and allocated (and picked) on STOCK and StockLocation
(`Stock_Deduct`, ENTRPRSE/DLLTK/BTS1.pas L1648-1740); delivery and invoice lines point back at the
order line's tlABSLineNo (`tlSOPABSLineNo`), never at its position.
"""

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

from exsync.exchequer.db import Cursor, Database, Row
from exsync.exchequer.errors import InvalidDocumentError, UnknownDocumentError
from exsync.exchequer.ledger import (
    company_settings,
    full_stock_code,
    insert_document,
    move_stock,
    post_order_balance,
    stock_records,
    take_folio,
    take_reference,
    update_account_row,
    vat_rates,
)
from exsync.exchequer.mapping import (
    COMPLETED_ORDER_RUN_NO,
    DOC_TYPES,
    FOLIO_COUNTER,
    LINE_TYPES,
    PRICE_BANDS,
    RUN_NO,
    pascal_bytes,
    pascal_text,
)
from exsync.exchequer.models import FreeStockSettings
from exsync.exchequer.schema import require_demo_company
from exsync.exchequer.writer import ALLOCATED_STOCK_TYPES

__all__ = [
    "adjust_stock",
    "cancel_order",
    "change_price",
    "dispatch_order",
    "edit_account",
    "insert_order_line",
    "invoice_order",
    "pick_order",
    "recalculated_allocations",
    "set_free_stock_settings",
    "set_system_flags",
]


def _transaction(database: Database, what: str) -> contextlib.AbstractContextManager[Cursor]:
    require_demo_company(database, what)
    return database.transaction()


def adjust_stock(database: Database, *, stock_code: str, location: str, qty: float) -> None:
    """A stock adjustment: `qty` more (or fewer) in stock at `location` and in total."""
    with _transaction(database, "a stock adjustment") as cursor:
        stock_records(cursor, [stock_code])
        settings = company_settings(cursor)
        move_stock(cursor, {(stock_code, location): (float(qty), 0.0, 0.0)},
                   use_multi_locations=settings.use_multi_locations)


_ORDER_LINE_COLUMNS = (
    "{lines.abs_line_no}, {lines.stock_code_text}, {lines.description}, {lines.qty}, {lines.qty_delivered}, "
    "{lines.qty_written_off}, {lines.qty_picked}, {lines.location}, {lines.net_value}, {lines.vat_code}, "
    "{lines.stock_deduct_qty}, {lines.qty_mul}")


def _order(cursor: Cursor, reference: str) -> tuple[Row, list[tuple[Any, ...]]]:
    header = cursor.run("SELECT {documents.folio}, {documents.doc_type}, {documents.account_code}, "
                        "{documents.next_line_no}, {documents.trans_date} "
                        "FROM {documents} WHERE {documents.our_ref} = ?", (reference,)).fetchone()
    if header is None:
        raise UnknownDocumentError(f"no transaction {reference!r}")
    if header[1] != DOC_TYPES["SOR"]:
        raise InvalidDocumentError(f"{reference} is not a sales order")
    lines = [(row[0], (row[1] or "").rstrip(), *row[2:]) for row in cursor.run(
        f"SELECT {_ORDER_LINE_COLUMNS} FROM {{lines}} WHERE {{lines.folio}} = ? ORDER BY {{lines.line_no}}",
        (header[0],)).fetchall()]
    return header, lines


def _stock_line(cursor: Cursor, code: str) -> bool:
    return bool(code) and stock_records(cursor, [code])[code][0] in ALLOCATED_STOCK_TYPES


def pick_order(database: Database, reference: str, quantities: Mapping[int, float] | None = None) -> None:
    """Picks a sales order's stock lines: `quantities` maps tlABSLineNo to quantities (default:
    everything not yet picked or delivered). Raises picked on the lines, the items and locations."""
    with _transaction(database, "picking") as cursor:
        header, lines = _order(cursor, reference)
        settings = company_settings(cursor)
        changes: dict[tuple[str, str], tuple[float, float, float]] = {}
        for abs_no, code, _, qty, delivered, written_off, picked, location, _, _, _, _ in lines:
            if not _stock_line(cursor, code):
                continue
            wanted = float(qty) - float(delivered) - float(written_off) - float(picked)
            amount = min(wanted, float(quantities.get(abs_no, 0))) if quantities is not None else wanted
            if amount <= 0:
                continue
            cursor.run("UPDATE {lines} SET {lines.qty_picked} = {lines.qty_picked} + ? WHERE {lines.folio} = ? "
                       "AND {lines.abs_line_no} = ?", (amount, header[0], abs_no))
            previous = changes.get((code, location), (0.0, 0.0, 0.0))
            changes[(code, location)] = (0.0, 0.0, previous[2] + amount)
        move_stock(cursor, changes, use_multi_locations=settings.use_multi_locations)


def _order_moved(cursor: Cursor, folio: int, reference: str, account_code: str, outstanding_value_change: float,
                 date: str) -> None:
    """After a delivery or write-off: thTotalOrderOS and the customer's order balance follow
    (`Update_SOPOS`, BTS1.pas L2394; `UpdateCustOrdBal`), and a finished order's run number becomes
    -42 (`OrdPSRunNo`)."""
    cursor.run("UPDATE {documents} SET {documents.total_order_os} = {documents.total_order_os} + ? "
               "WHERE {documents.folio} = ?", (round(outstanding_value_change, 2), folio))
    post_order_balance(cursor, account_code=account_code, year=int(date[:4]) - 1900, period=int(date[4:6]),
                       amount=outstanding_value_change)
    open_lines = cursor.scalar("SELECT COUNT(*) FROM {lines} WHERE {lines.folio} = ? "
                               "AND {lines.qty} > {lines.qty_delivered} + {lines.qty_written_off}", (folio,))
    if not open_lines:
        cursor.run("UPDATE {documents} SET {documents.run_no} = ? WHERE {documents.folio} = ?",
                   (COMPLETED_ORDER_RUN_NO, folio))
        cursor.run("UPDATE {lines} SET {lines.run_no} = ? WHERE {lines.folio} = ?", (COMPLETED_ORDER_RUN_NO, folio))


def _raise_from_order(cursor: Cursor, *, doc_type: str, reference: str, date: datetime.date | None, folio: int,
                      account_code: str, lines: list[dict[str, Any]], rates: Mapping[str, float]) -> str:
    new_reference = take_reference(cursor, doc_type)
    # Deliveries take their folio from AFL, invoices from FOL (`SetNextDocNos`, Sysu1.pas L372-420).
    new_folio = take_folio(cursor, FOLIO_COUNTER if doc_type == "SDN" else "FOL")
    for line in lines:
        line["sop_folio"] = folio
    # The generated header names its order: YourRef and RemitNo := the SOR's OurRef (SOPCT3U.pas L600-625).
    insert_document(cursor, doc_type=doc_type, our_ref=new_reference, folio=new_folio, account_code=account_code,
                    date=date or datetime.date.today(), your_ref=reference[:10], lines=lines, vat_rates=rates,
                    remit_no=reference[:10])
    return new_reference


def dispatch_order(database: Database, reference: str, quantities: Mapping[int, float] | None = None, *,
                   date: datetime.date | None = None) -> str:
    """Raises a delivery note (SDN) for a sales order and returns its reference.

    `quantities` maps tlABSLineNo to quantities; by default everything outstanding goes.
    """
    with _transaction(database, "a delivery") as cursor:
        header, lines = _order(cursor, reference)
        settings = company_settings(cursor)
        rates = vat_rates(cursor)
        folio, account_code = header[0], header[2]
        delivery: list[dict[str, Any]] = []
        changes: dict[tuple[str, str], tuple[float, float, float]] = {}
        value = 0.0
        for abs_no, code, description, qty, delivered, written_off, picked, location, net, vat_code, deduct, \
                mul in lines:
            outstanding = float(qty) - float(delivered) - float(written_off)
            amount = min(outstanding, float(quantities.get(abs_no, 0))) if quantities is not None else outstanding
            if amount <= 0:
                continue
            unpicked = min(amount, float(picked))
            released = min(float(deduct), amount * float(mul or 1))
            cursor.run("UPDATE {lines} SET {lines.qty_delivered} = {lines.qty_delivered} + ?, "
                       "{lines.qty_picked} = {lines.qty_picked} - ?, "
                       "{lines.stock_deduct_qty} = {lines.stock_deduct_qty} - ? "
                       "WHERE {lines.folio} = ? AND {lines.abs_line_no} = ?",
                       (amount, unpicked, released, folio, abs_no))
            value -= amount * float(net)
            if _stock_line(cursor, code):
                previous = changes.get((code, location), (0.0, 0.0, 0.0))
                changes[(code, location)] = (previous[0] - amount, previous[1] - released, previous[2] - unpicked)
            delivery.append({"stock_code": code, "description": description, "qty": amount, "net_value": float(net),
                             "vat_code": vat_code, "location": location, "qty_delivered": amount,
                             "stock_deduct_qty": amount if code else 0.0, "sop_abs_line_no": abs_no})
        if not delivery:
            raise InvalidDocumentError(f"{reference} has nothing left to deliver")
        move_stock(cursor, changes, use_multi_locations=settings.use_multi_locations)
        sdn = _raise_from_order(cursor, doc_type="SDN", reference=reference, date=date, folio=folio,
                                account_code=account_code, lines=delivery, rates=rates)
        _order_moved(cursor, folio, reference, account_code, value, header[4])
        return sdn


def invoice_order(database: Database, reference: str, *, date: datetime.date | None = None) -> str:
    """Raises an invoice (SIN) for what a sales order has delivered and not yet invoiced."""
    with _transaction(database, "an invoice") as cursor:
        header, lines = _order(cursor, reference)
        rates = vat_rates(cursor)
        folio, account_code = header[0], header[2]
        invoiced: dict[int, float] = {}
        for sop_abs_line_no, qty in cursor.run(
                "SELECT l.{lines.sop_abs_line_no}, l.{lines.qty} FROM {lines} l "
                "JOIN {documents} d ON d.{documents.folio} = l.{lines.folio} "
                "WHERE l.{lines.sop_folio} = ? AND d.{documents.doc_type} = ?", (folio, DOC_TYPES["SIN"])).fetchall():
            invoiced[sop_abs_line_no] = invoiced.get(sop_abs_line_no, 0.0) + float(qty)
        invoice: list[dict[str, Any]] = []
        for abs_no, code, description, _, delivered, _, _, location, net, vat_code, _, _ in lines:
            amount = float(delivered) - invoiced.get(abs_no, 0.0)
            if amount <= 0:
                continue
            invoice.append({"stock_code": code, "description": description, "qty": amount, "net_value": float(net),
                            "vat_code": vat_code, "location": location, "qty_delivered": amount,
                            "sop_abs_line_no": abs_no})
        if not invoice:
            raise InvalidDocumentError(f"{reference} has nothing delivered that is not invoiced")
        return _raise_from_order(cursor, doc_type="SIN", reference=reference, date=date, folio=folio,
                                 account_code=account_code, lines=invoice, rates=rates)


def cancel_order(database: Database, reference: str) -> float:
    """Writes off what is left of a sales order (tlQtyWOFF), as a user cancelling it in Exchequer does:
    its allocation is released (tlStockDeductQty 0) and the order is finished. Documents are never
    deleted. Returns the quantity written off."""
    with _transaction(database, "a write-off") as cursor:
        header, lines = _order(cursor, reference)
        settings = company_settings(cursor)
        folio = header[0]
        changes: dict[tuple[str, str], tuple[float, float, float]] = {}
        value, total = 0.0, 0.0
        for abs_no, code, _, qty, delivered, written_off, picked, location, net, _, deduct, _ in lines:
            outstanding = float(qty) - float(delivered) - float(written_off)
            if outstanding <= 0:
                continue
            cursor.run("UPDATE {lines} SET {lines.qty_written_off} = {lines.qty_written_off} + ?, "
                       "{lines.qty_picked} = 0, {lines.stock_deduct_qty} = 0 "
                       "WHERE {lines.folio} = ? AND {lines.abs_line_no} = ?", (outstanding, folio, abs_no))
            value -= outstanding * float(net)
            total += outstanding
            if _stock_line(cursor, code):
                previous = changes.get((code, location), (0.0, 0.0, 0.0))
                changes[(code, location)] = (0.0, previous[1] - float(deduct), previous[2] - float(picked))
        move_stock(cursor, changes, use_multi_locations=settings.use_multi_locations)
        _order_moved(cursor, folio, reference, header[2], value, header[4])
        return total


def insert_order_line(database: Database, reference: str, *, position: int, stock_code: str, qty: float,
                      unit_net_price: float, vat_code: str = "S", location: str = "MAI",
                      description: str | None = None) -> int:
    """Inserts a line into a sales order at display position `position` (1 = first), as a user editing
    the order in Exchequer: the lines after it move down (tlLineNo), the new line takes the order's
    next absolute number (thNextLineNumber) and allocates. Returns the new line's tlABSLineNo."""
    with _transaction(database, "an order edit") as cursor:
        header, _ = _order(cursor, reference)
        settings = company_settings(cursor)
        folio, account_code, abs_no, date = header[0], header[2], int(header[3]), header[4]
        record = stock_records(cursor, [stock_code])[stock_code]
        rate = vat_rates(cursor)[vat_code]
        cursor.run("UPDATE {lines} SET {lines.line_no} = {lines.line_no} + 1 WHERE {lines.folio} = ? "
                   "AND {lines.line_no} >= ?", (folio, position))
        deduct = float(qty) if record[0] in ALLOCATED_STOCK_TYPES else 0.0
        line_location = location if settings.use_multi_locations else ""
        net = round(float(qty) * float(unit_net_price), 2)
        cursor.run(
            "INSERT INTO {lines} ({lines.folio}, {lines.our_ref}, {lines.line_no}, {lines.abs_line_no}, "
            "{lines.doc_type}, {lines.run_no}, {lines.year}, {lines.period}, {lines.line_type}, {lines.stock_code}, "
            "{lines.qty}, {lines.qty_mul}, {lines.stock_deduct_qty}, {lines.location}, {lines.net_value}, "
            "{lines.vat_code}, {lines.vat_amount}, {lines.description}, {lines.account_code}, {lines.line_date}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            (folio, reference, position, abs_no, DOC_TYPES["SOR"], RUN_NO["SOR"], int(date[:4]) - 1900,
             int(date[4:6]), LINE_TYPES["SOR"], pascal_bytes(full_stock_code(stock_code), 20), float(qty), deduct,
             line_location, float(unit_net_price), vat_code, round(net * rate / 100.0, 2),
             description or stock_code, account_code, date))
        cursor.run("UPDATE {documents} SET {documents.next_line_no} = ?, "
                   "{documents.net_value} = {documents.net_value} + ? WHERE {documents.folio} = ?",
                   (abs_no + 1, net, folio))
        move_stock(cursor, {(stock_code, line_location): (0.0, deduct, 0.0)},
                   use_multi_locations=settings.use_multi_locations)
        _order_moved(cursor, folio, reference, account_code, net, date)
        return abs_no


def recalculated_allocations(database: Database) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """What Exchequer's `esp_RecalculateStock` (020 - Stored Procedures/210 - esp_RecalculateStock.sql)
    would set as allocated: Σ tlStockDeductQty of SOR lines (classified by tlDocType, L116, L569-572)
    with tlYear after the audit year (L153), by item and by (item, location). Returns (by item, by
    (item, location))."""
    by_item: dict[str, float] = {}
    by_location: dict[tuple[str, str], float] = {}
    with database.transaction(write=False) as cursor:
        audit_year = company_settings(cursor).audit_year
        for code, location, deduct in cursor.run(
                "SELECT {lines.stock_code}, {lines.location}, {lines.stock_deduct_qty} FROM {lines} "
                "WHERE {lines.doc_type} = ? AND {lines.year} > ?", (DOC_TYPES["SOR"], audit_year)).fetchall():
            code = pascal_text(code).rstrip()
            if not code:
                continue
            by_item[code] = by_item.get(code, 0.0) + float(deduct)
            if location:
                by_location[(code, location)] = by_location.get((code, location), 0.0) + float(deduct)
    return by_item, by_location


def edit_account(database: Database, code: str, **changes: Any) -> str:
    """Changes an account's fields (AccountDetails names: company, email, price_band...)."""
    with _transaction(database, "an account edit") as cursor:
        return update_account_row(cursor, code, changes)


def change_price(database: Database, *, stock_code: str, band: str, price: float) -> None:
    """Sets an item's selling price in one band (A..H)."""
    if band not in PRICE_BANDS or len(band) != 1:
        raise InvalidDocumentError(f"price band {band!r} is not one of {PRICE_BANDS}")
    with _transaction(database, "a price change") as cursor:
        stock_records(cursor, [stock_code])
        cursor.run(f"UPDATE {{stock}} SET {{stock.band_{band.lower()}_price}} = ? WHERE {{stock.code}} = ?",
                   (float(price), stock_code))


_SYSTEM_FLAGS = {"excludes_sales_orders": "free_ex_all", "allocate_when_picked": "use_pick4all",
                 "works_orders_allocate_when_picked": "use_wiss4all", "deduct_bom_components": "dead_bom",
                 "use_multi_locations": "use_mloc", "quotes_allocate": "qu_alloc_flg",
                 "credit_check": "use_credit_chk"}


def set_system_flags(database: Database, **flags: bool) -> None:
    """Changes system settings on the 'SYS' record of EXCHQSS (names: the keys of _SYSTEM_FLAGS)."""
    unknown = set(flags) - set(_SYSTEM_FLAGS)
    if unknown:
        raise InvalidDocumentError(f"unknown system settings {sorted(unknown)}; known: {sorted(_SYSTEM_FLAGS)}")
    with _transaction(database, "a settings change") as cursor:
        for position, id_code in cursor.run(
                "SELECT {system_setup.position_id}, {system_setup.id_code} FROM {system_setup}").fetchall():
            if pascal_text(id_code) != "SYS":
                continue
            assignments = ", ".join(f"{{system_setup.{_SYSTEM_FLAGS[name]}}} = ?" for name in flags)
            cursor.run(f"UPDATE {{system_setup}} SET {assignments} WHERE {{system_setup.position_id}} = ?",
                       (*(int(bool(value)) for value in flags.values()), position))


def set_free_stock_settings(database: Database, settings: FreeStockSettings) -> None:
    """Changes the system settings that choose the free-stock rule."""
    set_system_flags(database, excludes_sales_orders=settings.excludes_sales_orders,
                     allocate_when_picked=settings.allocate_when_picked,
                     works_orders_allocate_when_picked=settings.works_orders_allocate_when_picked)
