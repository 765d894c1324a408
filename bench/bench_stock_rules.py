"""Free stock and could-build for every item of a 100,000-item company, beside a raw fetch of the rows.

Seeds its own SQLite company under var/bench/ (the seed time is recorded too), then times, best
of a few rounds: a raw fetch of the STOCK and StockLocation rows (tuples, nothing built); the
rules alone over items already in memory; and the whole streamed pipeline (reader + rules).
"""

import os
import time

from bench.results import record
from bench.support import remove_sqlite
from exsync.exchequer import ExchequerReader, connect, init_schema, seed

BENCH_DIR = os.path.join("var", "bench")
ITEMS = 100_000
LOCATIONS = 3
BOMS = 1_000
ACCOUNTS = 1_000
ROUNDS = 3
FETCH_ROWS = 1000


def _best(function, rounds=ROUNDS):
    best, value = None, None
    for _ in range(rounds):
        started = time.perf_counter()
        value = function()
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best, value


def _raw_fetch(database):
    rows = 0
    items_sql = ("SELECT {stock.code}, {stock.type}, {stock.qty_in_stock}, {stock.qty_allocated}, "
                 "{stock.qty_picked} FROM {stock}")
    locations_sql = ("SELECT {stock_locations.stock_code}, {stock_locations.location}, "
                     "{stock_locations.qty_in_stock}, {stock_locations.qty_allocated}, "
                     "{stock_locations.qty_picked} FROM {stock_locations}")
    with database.transaction(write=False) as cursor:
        for template in (items_sql, locations_sql):
            cursor.run(template)
            while batch := cursor.fetchmany(FETCH_ROWS):
                rows += len(batch)
    return rows


def _fresh_database(path):
    remove_sqlite(path)
    return connect(f"sqlite:///{path}")


def run():
    os.makedirs(BENCH_DIR, exist_ok=True)
    path = os.path.join(BENCH_DIR, "stock_rules.db")
    conditions = {"backend": "sqlite", "items": ITEMS, "locations": LOCATIONS, "boms": BOMS}
    with _fresh_database(path) as database:
        init_schema(database)
        started = time.perf_counter()
        summary = seed(database, items=ITEMS, locations=LOCATIONS, boms=BOMS, accounts=ACCOUNTS)
        seed_seconds = time.perf_counter() - started
        record("exchequer_seed_100k_items_seconds", value=round(seed_seconds, 2), unit="s", goal="< 60",
               conditions={**conditions, "stock_rows": summary.stock_rows,
                           "stock_location_rows": summary.stock_location_rows})

        reader = ExchequerReader(database=database)
        raw_seconds, raw_rows = _best(lambda: _raw_fetch(database))
        items = list(reader.iter_stock_items())
        boms = reader.bom_components()
        rules = reader.stock_rules()
        rules_seconds, levels = _best(lambda: list(rules.levels(items, boms)))
        pipeline_seconds, streamed = _best(lambda: list(reader.stock_levels()))
        assert len(levels) == len(streamed) == summary.stock_rows
        built = sum(1 for level in levels if level.could_build is not None)
        timings = {"raw_fetch_seconds": round(raw_seconds, 3), "raw_rows": raw_rows,
                   "rules_seconds": round(rules_seconds, 3), "pipeline_seconds": round(pipeline_seconds, 3),
                   "items_with_could_build": built}
        record("stock_rules_ratio_to_raw_fetch", value=round(rules_seconds / raw_seconds, 3), unit="ratio",
               goal="< 1 (the rules cost less than fetching the rows they run on)",
               conditions={**conditions, **timings})
        record("stock_levels_pipeline_ratio_to_raw_fetch", value=round(pipeline_seconds / raw_seconds, 3),
               unit="ratio",
               goal="none set; for information (ordered keyset pages, item objects and the rules, streamed)",
               conditions={**conditions, **timings})
