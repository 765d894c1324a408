"""Reads: stock pages with per-location figures, BOMs, accounts by code and e-mail, stock levels."""

import pytest

from exsync.exchequer import (
    ALL_LOCATIONS,
    ExchequerReader,
    UnknownAccountError,
    UnknownDocumentError,
    UnknownStockItemError,
    could_build_all,
)


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
