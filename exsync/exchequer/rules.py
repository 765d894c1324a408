"""Free stock and what a kit can supply: Exchequer's stock rules as pure functions over plain values.

Free stock is the main application's `FreeStock` (ENTRPRSE/R&D/Sysu2.pas L1243-1300), chosen by the
company's settings (evw_SystemSettings):
  - free stock excludes sales orders        -> free = in stock
  - else                                    -> free = in stock - sales allocation - works-order allocation
    where the sales allocation is picked (orders allocate only when picked) or allocated, and the
    works-order allocation picked-for-WOR (AllocateStockWhenPicked) or allocated-to-WOR; both WOR
    figures are 0 at a company without Works Order Processing,
over all locations (the STOCK totals) or the sum over chosen locations (StockLocation).

A bill of materials (a kit) is sold from its own stock first: selling one allocates the kit's own
stock row (DLLTK/BTS1.pas L1700-1720). So the kit rule: a kit's web quantity is its own free stock
(its in-stock less its own allocations, which may be negative) plus what its components' free stock
could build, never below 0. Could-build is the least, over the components, of floor(component
availability / quantity used per unit), where a component that is itself a kit is available by the
same rule (recursively); description-only components ('D') are ignored; a cycle is a
BomCycleError; a kit with no countable component can build 0.
"""

import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from exsync.exchequer.errors import BomCycleError
from exsync.exchequer.models import BomComponent, FreeStockSettings, StockItem, StockLevel

__all__ = [
    "ALL_LOCATIONS",
    "RULE_IN_STOCK",
    "RULE_LESS_ALLOCATED",
    "RULE_LESS_PICKED",
    "StockRules",
    "could_build",
    "could_build_all",
    "kit_available",
    "free_stock",
    "free_stock_rule",
    "item_free_stock",
]

ALL_LOCATIONS = "all"
RULE_IN_STOCK = "in_stock"
RULE_LESS_PICKED = "in_stock_less_picked"
RULE_LESS_ALLOCATED = "in_stock_less_allocated"
DESCRIPTION_ONLY = "D"
BILL_OF_MATERIALS = "M"
# Quantities are floats: 0.3 / 0.1 must count as 3, not 2.9999999999999996.
_FLOOR_TOLERANCE = 1e-9

# free(in_stock, allocated, picked, alloc_wor=0, picked_wor=0): one rule over one set of figures.
FreeRule = Callable[..., float]
# A bill of materials' parent code -> its components.
Boms = Mapping[str, Iterable[BomComponent]]


def free_stock_rule(settings: FreeStockSettings) -> str:
    """Which of the three rules the settings choose."""
    if settings.excludes_sales_orders:
        return RULE_IN_STOCK
    if settings.allocate_when_picked:
        return RULE_LESS_PICKED
    return RULE_LESS_ALLOCATED


def _rule_function(rule: str, works_orders_when_picked: bool = False) -> FreeRule:
    """free(in_stock, allocated, picked, alloc_wor=0, picked_wor=0) for the chosen rule."""
    if rule == RULE_IN_STOCK:
        return lambda in_stock, allocated, picked, alloc_wor=0.0, picked_wor=0.0: in_stock
    if works_orders_when_picked:
        if rule == RULE_LESS_PICKED:
            return lambda in_stock, allocated, picked, alloc_wor=0.0, picked_wor=0.0: in_stock - picked - picked_wor
        return lambda in_stock, allocated, picked, alloc_wor=0.0, picked_wor=0.0: in_stock - allocated - picked_wor
    if rule == RULE_LESS_PICKED:
        return lambda in_stock, allocated, picked, alloc_wor=0.0, picked_wor=0.0: in_stock - picked - alloc_wor
    return lambda in_stock, allocated, picked, alloc_wor=0.0, picked_wor=0.0: in_stock - allocated - alloc_wor


def _settings_rule(settings: FreeStockSettings) -> FreeRule:
    return _rule_function(free_stock_rule(settings), getattr(settings, "works_orders_allocate_when_picked", False))


def free_stock(*, in_stock: float, allocated: float, picked: float, settings: FreeStockSettings,
               alloc_wor: float = 0.0, picked_wor: float = 0.0) -> float:
    """Free stock from one set of figures (an item's totals or one location's)."""
    return _settings_rule(settings)(in_stock, allocated, picked, alloc_wor, picked_wor)


def item_free_stock(item: StockItem, settings: FreeStockSettings,
                    locations: str | Collection[str] = ALL_LOCATIONS) -> float:
    """An item's free stock over all locations or over the named ones (a collection of codes)."""
    rule = _settings_rule(settings)
    if locations == ALL_LOCATIONS:
        return rule(item.in_stock, item.allocated, item.picked, item.alloc_wor, item.picked_wor)
    return sum(rule(ls.in_stock, ls.allocated, ls.picked, ls.alloc_wor, ls.picked_wor)
               for ls in item.locations if ls.location in locations)


def _units(free: float, qty_used: float) -> int:
    return math.floor(free / qty_used + _FLOOR_TOLERANCE)


def _could_build(code: str, boms: Boms, free: Mapping[str, float], memo: dict[str, int], path: list[str]) -> int:
    if code in memo:
        return memo[code]
    if code in path:
        start = path.index(code)
        raise BomCycleError([*path[start:], code])
    path.append(code)
    least: int | None = None
    for component in boms.get(code, ()):
        if component.component_type == DESCRIPTION_ONLY or component.qty_used <= 0:
            continue
        if component.component_code in boms:
            # A kit inside a kit is available by the kit rule: its own free stock plus what it can build.
            nested = _could_build(component.component_code, boms, free, memo, path)
            available = max(0, free.get(component.component_code, 0.0) + nested)
        else:
            available = free.get(component.component_code, 0.0)
        units = _units(available, component.qty_used)
        least = units if least is None else min(least, units)
    path.pop()
    result = max(0, least) if least is not None else 0
    memo[code] = result
    return result


def kit_available(code: str, *, boms: Boms, free: Mapping[str, float]) -> int:
    """The kit rule: the kit's own free stock (may be negative) plus what its components could build,
    never below 0. `free` holds the kit's own free stock too."""
    return max(0, math.floor(free.get(code, 0.0) + _FLOOR_TOLERANCE) + could_build(code, boms=boms, free=free))


def could_build(code: str, *, boms: Boms, free: Mapping[str, float]) -> int:
    """How many of the bill of materials `code` its components' free stock could make.

    `boms` maps a parent code to its components (objects with component_code, component_type,
    qty_used); `free` maps component codes to free stock (a missing code counts as 0).
    """
    return _could_build(code, boms, free, {}, [])


def could_build_all(*, boms: Boms, free: Mapping[str, float]) -> dict[str, int]:
    """Could-build for every bill in `boms`, sharing the work of nested bills."""
    memo: dict[str, int] = {}
    for code in boms:
        _could_build(code, boms, free, memo, [])
    return {code: memo[code] for code in boms}


class StockRules:
    """The rules as configured: the free-stock settings and which locations count.

    `free_from(in_stock, allocated, picked)` is the settings' rule over one set of figures (an
    item's totals or one location's), for callers that hold plain values rather than StockItems.
    """

    def __init__(self, *, settings: FreeStockSettings, locations: str | Iterable[str] = ALL_LOCATIONS) -> None:
        self.settings = settings
        self.locations: str | frozenset[str] = locations if isinstance(locations, str) and locations == ALL_LOCATIONS \
            else frozenset(locations)
        self.free_from = _settings_rule(settings)

    def free(self, item: StockItem) -> float:
        rule = self.free_from
        if self.locations == ALL_LOCATIONS:
            return rule(item.in_stock, item.allocated, item.picked, item.alloc_wor, item.picked_wor)
        wanted = self.locations
        return sum(rule(ls.in_stock, ls.allocated, ls.picked, ls.alloc_wor, ls.picked_wor)
                   for ls in item.locations if ls.location in wanted)

    def levels(self, items: Iterable[StockItem], boms: Boms) -> Iterator[StockLevel]:
        """Yields a StockLevel per item of the stream `items`; bills of materials come last, once
        every component's free stock has been seen, with what the kit rule makes available."""
        free_of = self.free
        rows = ((item.code, item.type, free_of(item)) for item in items)
        for (code, _, free), built in self.with_could_build(rows, boms):
            yield StockLevel(code, free, built)

    def with_could_build(self, rows: Iterable[tuple[Any, ...]],
                         boms: Boms) -> Iterator[tuple[tuple[Any, ...], int | None]]:
        """Yields (row, kit quantity) per row of the stream `rows`, tuples that begin (code, type,
        free stock): the kit quantity is None but for bills of materials, which come last, once every
        component's free stock has been seen (only those figures and the bills' rows are kept); it is
        the kit rule's figure (`kit_available`: own free stock plus could-build, never below 0)."""
        wanted = {component.component_code for components in boms.values() for component in components}
        free: dict[str, float] = {}
        held: list[tuple[Any, ...]] = []
        for row in rows:
            code = row[0]
            if code in wanted or code in boms:
                free[code] = row[2]
            if code in boms or row[1] == BILL_OF_MATERIALS:
                held.append(row)
            else:
                yield row, None
        built = could_build_all(boms=boms, free=free)
        for row in held:
            own = math.floor(row[2] + _FLOOR_TOLERANCE)
            yield row, max(0, own + built.get(row[0], 0))
