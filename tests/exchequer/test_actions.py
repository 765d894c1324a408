"""Exchequer users' actions: picking, dispatching and invoicing an order; stock, prices, accounts, settings."""

import pytest

from exsync.exchequer import (
    ExchequerReader,
    FreeStockSettings,
    InvalidDocumentError,
    SqlWriteBackend,
    UnknownStockItemError,
    adjust_stock,
    change_price,
    dispatch_order,
    edit_account,
    invoice_order,
    pick_order,
    set_free_stock_settings,
)
from tests.exchequer.factories import order


def _at(database, code, location):
    item = ExchequerReader(database=database).stock_item(code)
    at = {ls.location: ls for ls in item.locations}[location]
    return (item.in_stock, item.allocated, item.picked), (at.in_stock, at.allocated, at.picked)


def _place_order(database):
    reader = ExchequerReader(database=database)
    first, second = [i for i in reader.iter_stock_items() if i.type == "P"][:2]
    account = next(reader.iter_accounts()).code
    result = SqlWriteBackend(database=database).create_sales_document(order(
        "woo-9", account, [(first.code, 5, 10.0, "MAI"), (second.code, 2, 4.0, "W02"), ("", 1, 4.95, "")]))
    return result.reference, first.code, second.code


def _minus(a, b):
    return tuple(tuple(x - y for x, y in zip(p, q)) for p, q in zip(a, b))


def test_pick_dispatch_and_invoice_an_order(seeded):
    reference, first, second = _place_order(seeded)
    reader = ExchequerReader(database=seeded)
    placed = _at(seeded, first, "MAI")
    pick_order(seeded, reference, {1: 3})
    assert _minus(_at(seeded, first, "MAI"), placed) == ((0, 0, 3), (0, 0, 3))
    delivery = dispatch_order(seeded, reference, {1: 4})
    assert delivery == "SDN000001"
    # in stock and allocated fall by 4, picked by the 3 that were picked
    assert _minus(_at(seeded, first, "MAI"), placed) == ((-4, -4, 0), (-4, -4, 0))
    progress = reader.order_progress(reference)
    assert [(line.qty, line.qty_delivered, line.qty_invoiced) for line in progress.lines] == [
        (5, 4, 0), (2, 0, 0), (1, 0, 0)]
    assert progress.deliveries == ("SDN000001",) and not progress.fully_delivered
    sdn = reader.document("SDN000001")
    assert sdn.header.doc_type == "SDN" and sdn.header.your_ref == reference
    assert [(line.stock_code, line.qty, line.sop_abs_line_no) for line in sdn.lines] == [(first, 4, 1)]
    assert invoice_order(seeded, reference) == "SIN000001"
    w02 = _at(seeded, second, "W02")
    assert dispatch_order(seeded, reference) == "SDN000002"
    assert _minus(_at(seeded, second, "W02"), w02) == ((-2, -2, 0), (-2, -2, 0))
    assert invoice_order(seeded, reference) == "SIN000002"
    progress = reader.order_progress(reference)
    assert progress.fully_delivered and progress.fully_invoiced
    assert progress.deliveries == ("SDN000001", "SDN000002")
    assert progress.invoices == ("SIN000001", "SIN000002")
    sin = reader.document("SIN000002")
    assert [(line.stock_code, line.qty) for line in sin.lines] == [(first, 1), (second, 2), ("", 1)]
    with pytest.raises(InvalidDocumentError, match="nothing left"):
        dispatch_order(seeded, reference)
    with pytest.raises(InvalidDocumentError, match="not invoiced"):
        invoice_order(seeded, reference)
    with pytest.raises(InvalidDocumentError, match="not a sales order"):
        dispatch_order(seeded, "SDN000001")


def test_the_free_stock_setting_decides_what_an_order_takes(seeded):
    reference, first, _ = _place_order(seeded)
    reader = ExchequerReader(database=seeded)
    item = reader.stock_item(first)
    at_main = ["MAI"]
    expected = {
        FreeStockSettings(excludes_sales_orders=True): item.in_stock,
        FreeStockSettings(allocate_when_picked=True): item.in_stock - item.picked,
        FreeStockSettings(): item.in_stock - item.allocated,
    }
    for settings, free in expected.items():
        set_free_stock_settings(seeded, settings)
        assert reader.free_stock_settings() == settings
        levels = {level.code: level.free for level in reader.stock_levels()}
        assert levels[first] == free
    set_free_stock_settings(seeded, FreeStockSettings(allocate_when_picked=True))
    before = {level.code: level.free for level in reader.stock_levels(at_main)}[first]
    pick_order(seeded, reference)
    assert {level.code: level.free for level in reader.stock_levels(at_main)}[first] == before - 5


def test_adjust_stock_prices_and_accounts(seeded):
    reader = ExchequerReader(database=seeded)
    item = next(i for i in reader.iter_stock_items() if i.type == "P")
    before = _at(seeded, item.code, "W03")
    adjust_stock(seeded, stock_code=item.code, location="W03", qty=-2)
    assert _minus(_at(seeded, item.code, "W03"), before) == ((-2, 0, 0), (-2, 0, 0))
    adjust_stock(seeded, stock_code=item.code, location="W09", qty=7)
    assert _at(seeded, item.code, "W09")[1] == (7, 0, 0)
    with pytest.raises(UnknownStockItemError):
        adjust_stock(seeded, stock_code="NO-SUCH", location="MAI", qty=1)
    change_price(seeded, stock_code=item.code, band="B", price=9.99)
    assert reader.stock_item(item.code).band_b_price == 9.99
    with pytest.raises(InvalidDocumentError):
        change_price(seeded, stock_code=item.code, band="Q", price=1)
    account = next(reader.iter_accounts())
    edit_account(seeded, account.code, company="Renamed Ltd", phone="0113 000000")
    edited = reader.account(account.code)
    assert (edited.company, edited.phone, edited.email) == ("Renamed Ltd", "0113 000000", account.email)
