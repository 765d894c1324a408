"""What Exchequer's users do in Exchequer, for the demo and the tests: adjust stock, pick,
dispatch (SDN) and invoice (SIN) sales orders, edit accounts, change prices and system settings.

Each action is one transaction applying the effects Exchequer's client would: dispatching
reduces in-stock and allocated (and picked) on STOCK and StockLocation and grows tlQtyDel on the
order's lines; the SDN and SIN lines point back at the order line they came from.
"""

import datetime

from exsync.exchequer.errors import InvalidDocumentError, UnknownDocumentError
from exsync.exchequer.ledger import (
    format_reference,
    insert_document,
    move_stock,
    next_number,
    stock_types,
    update_account_row,
)
from exsync.exchequer.mapping import DOC_TYPES, FOLIO_COUNTER, PRICE_BANDS
from exsync.exchequer.writer import DEFAULT_VAT_CODES

__all__ = [
    "adjust_stock",
    "change_price",
    "dispatch_order",
    "edit_account",
    "invoice_order",
    "pick_order",
    "set_free_stock_settings",
]


def adjust_stock(database, *, stock_code, location, qty):
    """A stock adjustment: `qty` more (or fewer) in stock at `location` and in total."""
    with database.transaction() as cursor:
        stock_types(cursor, [stock_code])
        move_stock(cursor, {(stock_code, location): (float(qty), 0.0, 0.0)})


def _order(cursor, reference):
    header = cursor.run("SELECT {documents.folio}, {documents.doc_type}, {documents.account_code} "
                        "FROM {documents} WHERE {documents.our_ref} = ?", (reference,)).fetchone()
    if header is None:
        raise UnknownDocumentError(f"no transaction {reference!r}")
    if header[1] != DOC_TYPES["SOR"]:
        raise InvalidDocumentError(f"{reference} is not a sales order")
    lines = cursor.run("SELECT {lines.line_no}, {lines.stock_code}, {lines.description}, {lines.qty}, "
                       "{lines.qty_delivered}, {lines.qty_picked}, {lines.location}, {lines.net_value}, "
                       "{lines.vat_code} FROM {lines} WHERE {lines.folio} = ? ORDER BY {lines.line_no}",
                       (header[0],)).fetchall()
    return header[0], header[2], lines


def pick_order(database, reference, quantities=None):
    """Picks a sales order's stock lines: `quantities` maps line numbers to quantities (default:
    everything not yet picked or delivered). Raises picked on the lines, the items and locations."""
    with database.transaction() as cursor:
        folio, _, lines = _order(cursor, reference)
        changes = {}
        for line_no, stock_code, _, qty, delivered, picked, location, _, _ in lines:
            if not stock_code:
                continue
            wanted = float(qty) - float(delivered) - float(picked)
            amount = min(wanted, float(quantities.get(line_no, 0))) if quantities is not None else wanted
            if amount <= 0:
                continue
            cursor.run("UPDATE {lines} SET {lines.qty_picked} = {lines.qty_picked} + ? WHERE {lines.folio} = ? "
                       "AND {lines.line_no} = ?", (amount, folio, line_no))
            previous = changes.get((stock_code, location), (0.0, 0.0, 0.0))
            changes[(stock_code, location)] = (0.0, 0.0, previous[2] + amount)
        move_stock(cursor, changes)


def _raise_from_order(cursor, *, doc_type, reference, date, folio, account_code, lines, vat_rates):
    number = next_number(cursor, doc_type)
    new_reference = format_reference(doc_type, number)
    new_folio = next_number(cursor, FOLIO_COUNTER)
    for line in lines:
        line["sop_folio"] = folio
    insert_document(cursor, doc_type=doc_type, our_ref=new_reference, folio=new_folio, account_code=account_code,
                    date=date or datetime.date.today(), your_ref=reference[:10], lines=lines, vat_rates=vat_rates)
    return new_reference


def dispatch_order(database, reference, quantities=None, *, date=None, vat_rates=None):
    """Raises a delivery note (SDN) for a sales order and returns its reference.

    `quantities` maps line numbers to quantities; by default everything outstanding goes.
    """
    vat_rates = vat_rates or DEFAULT_VAT_CODES
    with database.transaction() as cursor:
        folio, account_code, lines = _order(cursor, reference)
        delivery, changes = [], {}
        for line_no, stock_code, description, qty, delivered, picked, location, net, vat_code in lines:
            outstanding = float(qty) - float(delivered)
            amount = min(outstanding, float(quantities.get(line_no, 0))) if quantities is not None else outstanding
            if amount <= 0:
                continue
            unpicked = min(amount, float(picked))
            cursor.run("UPDATE {lines} SET {lines.qty_delivered} = {lines.qty_delivered} + ?, "
                       "{lines.qty_picked} = {lines.qty_picked} - ? WHERE {lines.folio} = ? AND {lines.line_no} = ?",
                       (amount, unpicked, folio, line_no))
            if stock_code:
                previous = changes.get((stock_code, location), (0.0, 0.0, 0.0))
                changes[(stock_code, location)] = (previous[0] - amount, previous[1] - amount, previous[2] - unpicked)
            delivery.append({"stock_code": stock_code, "description": description, "qty": amount,
                             "net_value": float(net), "vat_code": vat_code, "location": location,
                             "qty_delivered": amount, "sop_line_no": line_no})
        if not delivery:
            raise InvalidDocumentError(f"{reference} has nothing left to deliver")
        move_stock(cursor, changes)
        return _raise_from_order(cursor, doc_type="SDN", reference=reference, date=date, folio=folio,
                                 account_code=account_code, lines=delivery, vat_rates=vat_rates)


def invoice_order(database, reference, *, date=None, vat_rates=None):
    """Raises an invoice (SIN) for what a sales order has delivered and not yet invoiced."""
    vat_rates = vat_rates or DEFAULT_VAT_CODES
    with database.transaction() as cursor:
        folio, account_code, lines = _order(cursor, reference)
        invoiced = {}
        for sop_line_no, qty in cursor.run(
                "SELECT l.{lines.sop_line_no}, l.{lines.qty} FROM {lines} l "
                "JOIN {documents} d ON d.{documents.folio} = l.{lines.folio} "
                "WHERE l.{lines.sop_folio} = ? AND d.{documents.doc_type} = ?", (folio, DOC_TYPES["SIN"])).fetchall():
            invoiced[sop_line_no] = invoiced.get(sop_line_no, 0.0) + float(qty)
        invoice = []
        for line_no, stock_code, description, _, delivered, _, location, net, vat_code in lines:
            amount = float(delivered) - invoiced.get(line_no, 0.0)
            if amount <= 0:
                continue
            invoice.append({"stock_code": stock_code, "description": description, "qty": amount,
                            "net_value": float(net), "vat_code": vat_code, "location": location,
                            "qty_delivered": amount, "sop_line_no": line_no})
        if not invoice:
            raise InvalidDocumentError(f"{reference} has nothing delivered that is not invoiced")
        return _raise_from_order(cursor, doc_type="SIN", reference=reference, date=date, folio=folio,
                                 account_code=account_code, lines=invoice, vat_rates=vat_rates)


def edit_account(database, code, **changes):
    """Changes an account's fields (AccountDetails names: company, email, price_band...)."""
    with database.transaction() as cursor:
        return update_account_row(cursor, code, changes)


def change_price(database, *, stock_code, band, price):
    """Sets an item's selling price in one band (A..H)."""
    if band not in PRICE_BANDS or len(band) != 1:
        raise InvalidDocumentError(f"price band {band!r} is not one of {PRICE_BANDS}")
    with database.transaction() as cursor:
        stock_types(cursor, [stock_code])
        cursor.run(f"UPDATE {{stock}} SET {{stock.band_{band.lower()}_price}} = ? WHERE {{stock.code}} = ?",
                   (float(price), stock_code))


def set_free_stock_settings(database, settings):
    """Changes the two system settings that choose the free-stock rule."""
    with database.transaction() as cursor:
        cursor.run("UPDATE {settings} SET {settings.free_stock_excludes_sales_orders} = ?, "
                   "{settings.orders_allocate_when_picked} = ?",
                   (int(settings.excludes_sales_orders), int(settings.allocate_when_picked)))
