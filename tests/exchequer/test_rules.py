"""Free stock and could-build against hand-worked cases."""

import pytest

from exsync.exchequer import (
    ALL_LOCATIONS,
    BomComponent,
    BomCycleError,
    FreeStockSettings,
    LocationStock,
    StockItem,
    StockRules,
    could_build,
    could_build_all,
    free_stock,
    item_free_stock,
    kit_available,
)

LESS_ALLOCATED = FreeStockSettings(excludes_sales_orders=False, allocate_when_picked=False)
LESS_PICKED = FreeStockSettings(excludes_sales_orders=False, allocate_when_picked=True)
EXCLUDES_ORDERS = FreeStockSettings(excludes_sales_orders=True, allocate_when_picked=False)
EXCLUDES_ORDERS_AND_PICKED = FreeStockSettings(excludes_sales_orders=True, allocate_when_picked=True)


def item(code, locations, *, stock_type="P"):
    """An item whose totals are the sums of its (location, in stock, allocated, picked) figures."""
    figures = tuple(LocationStock(loc, float(i), float(a), float(p), 0.0) for loc, i, a, p in locations)
    return StockItem(code, 1, code, stock_type, "", sum(f.in_stock for f in figures),
                     sum(f.allocated for f in figures), sum(f.picked for f in figures), 0.0, 0.0, 0.0, "", True,
                     figures)


# in stock 15, allocated 10, picked 3 in total
SPREAD = item("WIDGET-00001", [("MAI", 10, 4, 1), ("W02", 5, 5, 2), ("W03", 0, 1, 0)])


@pytest.mark.parametrize("settings, expected", [
    (EXCLUDES_ORDERS, 10.0),              # free = in stock
    (EXCLUDES_ORDERS_AND_PICKED, 10.0),   # excluding orders wins over allocate-when-picked
    (LESS_PICKED, 9.0),                   # free = in stock - picked
    (LESS_ALLOCATED, 6.0),                # free = in stock - allocated
])
def test_free_stock_follows_each_setting(settings, expected):
    assert free_stock(in_stock=10.0, allocated=4.0, picked=1.0, settings=settings) == expected


# The reference for free stock over locations; test_reader checks the reader's lean path against it.
LOCATION_CASES = [
    (LESS_ALLOCATED, ALL_LOCATIONS, 5.0),       # 15 - 10 from the STOCK totals
    (LESS_ALLOCATED, ["MAI"], 6.0),             # one location: 10 - 4
    (LESS_ALLOCATED, ["MAI", "W02"], 6.0),      # some: (10 - 4) + (5 - 5)
    (LESS_ALLOCATED, ["W03"], -1.0),            # over-allocated location stays negative
    (LESS_PICKED, ["MAI", "W02"], 12.0),        # (10 - 1) + (5 - 2)
    (LESS_PICKED, ALL_LOCATIONS, 12.0),         # 15 - 3
    (EXCLUDES_ORDERS, ["W02", "W03"], 5.0),     # 5 + 0
    (LESS_ALLOCATED, ["ZZZ"], 0.0),             # a location the item is not stocked at
    (LESS_ALLOCATED, [], 0.0),                  # no location counts
]


@pytest.mark.parametrize("settings, locations, expected", LOCATION_CASES)
def test_free_stock_over_one_some_or_all_locations(settings, locations, expected):
    assert item_free_stock(SPREAD, settings, locations) == expected
    assert StockRules(settings=settings, locations=locations).free(SPREAD) == expected


def bom(parent, *components):
    """components: (code, qty used) or (code, qty used, type)."""
    return {parent: tuple(BomComponent(parent, c[0], float(c[1]), c[2] if len(c) > 2 else "P") for c in components)}


FREE = {"A": 10.0, "B": 7.0, "C": 3.0, "D": 0.0, "E": 100.0, "F": 0.9, "N": -2.0}


@pytest.mark.parametrize("boms, parent, expected", [
    (bom("K", ("A", 2), ("B", 1)), "K", 5),                       # min(10/2, 7/1)
    (bom("K", ("A", 2), ("B", 1), ("D", 1, "D")), "K", 5),        # description-only ignored
    (bom("K", ("A", 3)), "K", 3),                                 # floor(10/3)
    (bom("K", ("F", 0.3)), "K", 3),                               # 0.9/0.3 is 3, float noise aside
    (bom("K", ("C", 0.5), ("E", 10)), "K", 6),                    # min(6, 10)
    (bom("K", ("N", 1), ("A", 1)), "K", 0),                       # negative free stock builds nothing
    (bom("K", ("MISSING", 1), ("A", 1)), "K", 0),                 # an unknown component has no stock
    (bom("K", ("D", 1, "D")), "K", 0),                            # nothing countable
    ({**bom("K1", ("A", 2), ("B", 1)), **bom("K2", ("K1", 1), ("C", 0.5))}, "K2", 5),   # nested: min(5, 6)
    ({**bom("K1", ("A", 2), ("B", 1)), **bom("K3", ("K1", 2), ("E", 10))}, "K3", 2),    # nested: min(5/2, 10)
    ({**bom("K1", ("A", 2), ("B", 1)), **bom("K2", ("K1", 1), ("C", 0.5)),
      **bom("K4", ("K2", 5))}, "K4", 1),                                                 # two levels: 5/5
])
def test_could_build(boms, parent, expected):
    assert could_build(parent, boms=boms, free=FREE) == expected
    assert could_build_all(boms=boms, free=FREE)[parent] == expected


@pytest.mark.parametrize("boms, parent, cycle", [
    ({**bom("X", ("Y", 1)), **bom("Y", ("Z", 1)), **bom("Z", ("X", 1))}, "X", ("X", "Y", "Z", "X")),
    ({**bom("X", ("A", 1), ("X", 1))}, "X", ("X", "X")),
    ({**bom("TOP", ("X", 1)), **bom("X", ("Y", 1)), **bom("Y", ("X", 2))}, "TOP", ("X", "Y", "X")),
])
def test_a_cycle_is_an_error_naming_the_items(boms, parent, cycle):
    with pytest.raises(BomCycleError) as raised:
        could_build(parent, boms=boms, free=FREE)
    assert raised.value.items == cycle
    assert " -> ".join(cycle) in str(raised.value)


def test_could_build_over_plain_rows_matches_the_levels_of_items():
    boms = {**bom("AAA-KIT", ("ZZZ-PART", 2), ("MMM-PART", 1)), **bom("BBB-KIT", ("AAA-KIT", 1))}
    items = [item("AAA-KIT", [], stock_type="M"), item("BBB-KIT", [], stock_type="M"),
             item("MMM-PART", [("MAI", 4, 1, 0)]), item("ZZZ-PART", [("MAI", 9, 2, 0), ("W02", 10, 0, 0)])]
    rules = StockRules(settings=LESS_ALLOCATED)
    rows = [(i.code, i.type, rules.free(i), f"extra {i.code}") for i in items]
    out = list(rules.with_could_build(iter(rows), boms))
    # Rows come out whole, bills last; the rest carry no could-build.
    assert [row[0] for row, _ in out] == ["MMM-PART", "ZZZ-PART", "AAA-KIT", "BBB-KIT"]
    assert all(row[3] == f"extra {row[0]}" for row, _ in out)
    assert [(row[0], row[2], built) for row, built in out] == [
        (level.code, level.free, level.could_build) for level in rules.levels(items, boms)]
    assert dict((row[0], built) for row, built in out) == {"MMM-PART": None, "ZZZ-PART": None,
                                                           "AAA-KIT": 3, "BBB-KIT": 3}


def test_levels_hold_bills_until_their_components_are_seen():
    boms = {**bom("AAA-KIT", ("ZZZ-PART", 2), ("MMM-PART", 1)), **bom("BBB-KIT", ("AAA-KIT", 1))}
    items = [item("AAA-KIT", [], stock_type="M"), item("BBB-KIT", [], stock_type="M"),
             item("MMM-PART", [("MAI", 4, 1, 0)]), item("LONE-KIT", [], stock_type="M"),
             item("ZZZ-PART", [("MAI", 9, 2, 0), ("W02", 10, 0, 0)])]
    levels = {level.code: level for level in StockRules(settings=LESS_ALLOCATED).levels(items, boms)}
    assert levels["MMM-PART"].free == 3.0 and levels["MMM-PART"].could_build is None
    assert levels["ZZZ-PART"].free == 17.0
    assert levels["AAA-KIT"].could_build == 3       # min(17/2, 3/1)
    assert levels["BBB-KIT"].could_build == 3       # through AAA-KIT
    assert levels["LONE-KIT"].could_build == 0      # a bill with no components
    only_w02 = {level.code: level for level in StockRules(settings=LESS_ALLOCATED, locations=["W02"])
                .levels(items, boms)}
    assert only_w02["AAA-KIT"].could_build == 0     # MMM-PART has nothing at W02


def test_a_kit_counts_its_own_free_stock_which_may_be_negative():
    """The kit rule: own free stock (in stock less its own allocations) plus what the components could
    build, never below 0; a kit inside a kit counts by the same rule."""
    boms = {**bom("AAA-KIT", ("ZZZ-PART", 2), ("MMM-PART", 1)), **bom("BBB-KIT", ("AAA-KIT", 1))}
    parts = [item("MMM-PART", [("MAI", 4, 1, 0)]), item("ZZZ-PART", [("MAI", 9, 2, 0), ("W02", 10, 0, 0)])]
    rules = StockRules(settings=LESS_ALLOCATED)

    def levels(kit_figures, outer_figures=("MAI", 0, 0, 0)):
        items = [item("AAA-KIT", [kit_figures], stock_type="M"), item("BBB-KIT", [outer_figures], stock_type="M"),
                 *parts]
        return {level.code: level.could_build for level in rules.levels(items, boms)}

    assert levels(("MAI", 0, 0, 0)) == {"AAA-KIT": 3, "BBB-KIT": 3, "MMM-PART": None, "ZZZ-PART": None}
    assert levels(("MAI", 5, 0, 0))["AAA-KIT"] == 8           # 5 of its own + 3 it could build
    assert levels(("MAI", 0, 2, 0))["AAA-KIT"] == 1           # two sold from no stock: -2 + 3
    assert levels(("MAI", 0, 5, 0))["AAA-KIT"] == 0           # never below 0
    assert levels(("MAI", 0, 2, 0), ("MAI", 0, 1, 0))["BBB-KIT"] == 0   # 1 inner kit, one outer sold
    assert kit_available("AAA-KIT", boms=boms, free={"AAA-KIT": -2, "MMM-PART": 3, "ZZZ-PART": 17}) == 1
