"""Reads: stock pages with per-location figures, BOMs, accounts by code and e-mail, stock levels."""

import pytest

from exsync.exchequer import (
    ALL_LOCATIONS,
    ExchequerReader,
    FreeStockSettings,
    SqlWriteBackend,
    UnknownAccountError,
    UnknownDocumentError,
    UnknownStockItemError,
    adjust_stock,
    could_build_all,
    dispatch_order,
    pick_order,
    set_free_stock_settings,
)
from tests.exchequer.factories import order
from tests.exchequer.test_rules import LOCATION_CASES, SPREAD


def test_stock_streams_in_pages_and_matches_single_reads(seeded):
    small_pages = list(ExchequerReader(database=seeded, page_rows=7).iter_stock_items())
    one_page = list(ExchequerReader(database=seeded, page_rows=10_000).iter_stock_items())
    assert small_pages == one_page
    codes = [item.code for item in small_pages]
    assert len(codes) == len(set(codes)) == 60 + 6 + 8  # items, kits, groups
    reader = ExchequerReader(database=seeded)
    sample = small_pages[len(small_pages) // 2]
    assert reader.stock_item(sample.code) == sample
    with pytest.raises(UnknownStockItemError):
        reader.stock_item("NO-SUCH-ITEM")


def test_bom_components_name_parents_by_code(seeded):
    boms = ExchequerReader(database=seeded).bom_components()
    assert sorted(boms) == [f"KIT-{n:05d}" for n in range(1, 7)]
    assert all(c.parent_code == parent and c.qty_used > 0 for parent, comps in boms.items() for c in comps)


@pytest.mark.parametrize("locations", [ALL_LOCATIONS, ["MAI"], ["MAI", "W03"]])
def test_stock_levels_apply_the_rules_to_every_item(seeded, locations):
    reader = ExchequerReader(database=seeded)
    rules = reader.stock_rules(locations)
    items = {item.code: item for item in reader.iter_stock_items()}
    levels = {level.code: level for level in reader.stock_levels(locations)}
    assert set(levels) == set(items)
    for code, item in items.items():
        assert levels[code].free == rules.free(item)
    expected = could_build_all(boms=reader.bom_components(),
                               free={code: rules.free(item) for code, item in items.items()})
    assert {code: level.could_build for code, level in levels.items() if level.could_build is not None} == expected


@pytest.mark.parametrize("locations", [ALL_LOCATIONS, ["MAI"], ["MAI", "W03"], ["ZZZ"], []])
def test_free_stock_rows_match_the_items_and_the_rules(seeded, locations):
    reader = ExchequerReader(database=seeded, page_rows=7)
    rules = reader.stock_rules(locations)
    items = list(reader.iter_stock_items())
    rows = list(reader.iter_free_stock(rules))
    assert [row[0] for row in rows] == [item.code for item in items]
    for item, row in zip(items, rows, strict=True):
        assert row == (item.code, item.type, rules.free(item), item.web_enabled, item.description,
                       item.band_a_price, item.band_b_price, item.category)


def _set_spread(database, code):
    """Gives `code` the figures of test_rules' SPREAD item, totals and locations alike."""
    with database.transaction() as cursor:
        cursor.run("UPDATE {stock} SET {stock.qty_in_stock} = ?, {stock.qty_allocated} = ?, "
                   "{stock.qty_picked} = ? WHERE {stock.code} = ?",
                   (SPREAD.in_stock, SPREAD.allocated, SPREAD.picked, code))
        for figures in SPREAD.locations:
            cursor.run("UPDATE {stock_locations} SET {stock_locations.qty_in_stock} = ?, "
                       "{stock_locations.qty_allocated} = ?, {stock_locations.qty_picked} = ? "
                       "WHERE {stock_locations.stock_code} = ? AND {stock_locations.location} = ?",
                       (figures.in_stock, figures.allocated, figures.picked, code, figures.location))


@pytest.mark.parametrize("settings, locations, expected", LOCATION_CASES)
def test_free_stock_rows_follow_the_rules_table(seeded, settings, locations, expected):
    reader = ExchequerReader(database=seeded, page_rows=7)
    code = next(item.code for item in reader.iter_stock_items() if item.type == "P")
    _set_spread(seeded, code)
    set_free_stock_settings(seeded, settings)
    rows = {row[0]: row for row in reader.iter_free_stock(reader.stock_rules(locations))}
    assert rows[code][2] == expected


def test_item_totals_stay_the_sum_over_locations(seeded):
    """The lean path reads free stock over all locations from the STOCK totals: the seed, orders,
    picks, dispatches and adjustments must keep them the sums of the location rows."""
    reader = ExchequerReader(database=seeded)
    first, second = [item.code for item in reader.iter_stock_items() if item.type == "P"][:2]
    account = next(reader.iter_accounts()).code
    reference = SqlWriteBackend(database=seeded).create_sales_document(order(
        "woo-sums", account, [(first, 5, 10.0, "MAI"), (second, 2, 4.0, "")])).reference
    pick_order(seeded, reference, {1: 3})
    dispatch_order(seeded, reference, {1: 4})
    adjust_stock(seeded, stock_code=second, location="W03", qty=-2)
    every = [code for code, _ in reader.locations()]
    for settings in ({}, {"allocate_when_picked": True}, {"excludes_sales_orders": True}):
        set_free_stock_settings(seeded, FreeStockSettings(**settings))
        totals = {row[0]: row[2] for row in reader.iter_free_stock(reader.stock_rules(ALL_LOCATIONS))}
        summed = {row[0]: row[2] for row in reader.iter_free_stock(reader.stock_rules(every))}
        assert totals == summed


def test_accounts_by_code_and_email(seeded):
    reader = ExchequerReader(database=seeded)
    first = next(reader.iter_accounts())
    assert reader.account(first.code.lower()) == first
    assert first in reader.accounts_by_email(f"  {first.email.upper()} ")
    assert reader.accounts_by_email("nobody@nowhere.example") == []
    with pytest.raises(UnknownAccountError):
        reader.account("ZZZZ99")
    with pytest.raises(UnknownDocumentError):
        reader.document("SOR999999")
