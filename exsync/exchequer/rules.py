"""Free stock and could-build: Exchequer's stock rules as pure functions over plain values.

Free stock follows the two system settings (see /work/shared/exchequer.md):
  - free stock excludes sales orders        -> free = in stock
  - else orders allocate only when picked   -> free = in stock - picked
  - else                                    -> free = in stock - allocated
over all locations (the STOCK totals) or the sum over chosen locations (StockLocation).

Could-build for a bill of materials is the least, over its components, of
floor(component free stock / quantity used per unit); a component that is itself a bill of
materials counts with its own could-build (recursively), description-only components ('D')
are ignored, and a cycle is a BomCycleError. Two choices the rule leaves open, made here: the
figure never goes below 0, and a bill with no countable component can build 0.
"""

import math

from exsync.exchequer.errors import BomCycleError
from exsync.exchequer.models import StockLevel

__all__ = [
    "ALL_LOCATIONS",
    "RULE_IN_STOCK",
    "RULE_LESS_ALLOCATED",
    "RULE_LESS_PICKED",
    "StockRules",
    "could_build",
    "could_build_all",
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


def free_stock_rule(settings):
    """Which of the three rules the settings choose."""
    if settings.excludes_sales_orders:
        return RULE_IN_STOCK
    if settings.allocate_when_picked:
        return RULE_LESS_PICKED
    return RULE_LESS_ALLOCATED


def _rule_function(rule):
    if rule == RULE_IN_STOCK:
        return lambda in_stock, allocated, picked: in_stock
    if rule == RULE_LESS_PICKED:
        return lambda in_stock, allocated, picked: in_stock - picked
    return lambda in_stock, allocated, picked: in_stock - allocated


def free_stock(*, in_stock, allocated, picked, settings):
    """Free stock from one set of figures (an item's totals or one location's)."""
    return _rule_function(free_stock_rule(settings))(in_stock, allocated, picked)


def item_free_stock(item, settings, locations=ALL_LOCATIONS):
    """An item's free stock over all locations or over the named ones (a collection of codes)."""
    rule = _rule_function(free_stock_rule(settings))
    if locations == ALL_LOCATIONS:
        return rule(item.in_stock, item.allocated, item.picked)
    return sum(rule(ls.in_stock, ls.allocated, ls.picked) for ls in item.locations if ls.location in locations)


def _units(free, qty_used):
    return math.floor(free / qty_used + _FLOOR_TOLERANCE)


def _could_build(code, boms, free, memo, path):
    if code in memo:
        return memo[code]
    if code in path:
        start = path.index(code)
        raise BomCycleError([*path[start:], code])
    path.append(code)
    least = None
    for component in boms.get(code, ()):
        if component.component_type == DESCRIPTION_ONLY or component.qty_used <= 0:
            continue
        if component.component_code in boms:
            available = _could_build(component.component_code, boms, free, memo, path)
        else:
            available = free.get(component.component_code, 0.0)
        units = _units(available, component.qty_used)
        least = units if least is None else min(least, units)
    path.pop()
    result = max(0, least) if least is not None else 0
    memo[code] = result
    return result


def could_build(code, *, boms, free):
    """How many of the bill of materials `code` its components' free stock could make.

    `boms` maps a parent code to its components (objects with component_code, component_type,
    qty_used); `free` maps component codes to free stock (a missing code counts as 0).
    """
    return _could_build(code, boms, free, {}, [])


def could_build_all(*, boms, free):
    """Could-build for every bill in `boms`, sharing the work of nested bills."""
    memo = {}
    for code in boms:
        _could_build(code, boms, free, memo, [])
    return {code: memo[code] for code in boms}


class StockRules:
    """The rules as configured: the free-stock settings and which locations count.

    `free_from(in_stock, allocated, picked)` is the settings' rule over one set of figures (an
    item's totals or one location's), for callers that hold plain values rather than StockItems.
    """

    def __init__(self, *, settings, locations=ALL_LOCATIONS):
        self.settings = settings
        self.locations = locations if locations == ALL_LOCATIONS else frozenset(locations)
        self.free_from = _rule_function(free_stock_rule(settings))

    def free(self, item):
        rule = self.free_from
        if self.locations == ALL_LOCATIONS:
            return rule(item.in_stock, item.allocated, item.picked)
        wanted = self.locations
        return sum(rule(ls.in_stock, ls.allocated, ls.picked) for ls in item.locations if ls.location in wanted)

    def levels(self, items, boms):
        """Yields a StockLevel per item of the stream `items`; bills of materials come last,
        once every component's free stock has been seen (only those figures are kept)."""
        free_of = self.free
        rows = ((item.code, item.type, free_of(item)) for item in items)
        for (code, _, free), built in self.with_could_build(rows, boms):
            yield StockLevel(code, free, built)

    def with_could_build(self, rows, boms):
        """Yields (row, could-build) per row of the stream `rows`, tuples that begin (code, type,
        free stock): could-build is None but for bills of materials, which come last, once every
        component's free stock has been seen (only those figures and the bills' rows are kept)."""
        wanted = {component.component_code for components in boms.values() for component in components}
        free_of_components = {}
        held = []
        for row in rows:
            code = row[0]
            if code in wanted:
                free_of_components[code] = row[2]
            if code in boms or row[1] == BILL_OF_MATERIALS:
                held.append(row)
            else:
                yield row, None
        built = could_build_all(boms=boms, free=free_of_components)
        for row in held:
            yield row, built.get(row[0], 0)
