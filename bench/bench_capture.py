"""Change capture over 100,000 items x 3 locations with 2,000 BOMs, and over 1,000,000 items x 3
locations with 20,000 BOMs, each beside a raw fetch of the same rows.

Seeds its own SQLite company under var/bench/, then runs the capture in a child process (so its
peak RSS is the capture's own): a first cycle (every web product is new), then reruns with
nothing changed: the cost paid every interval, which is what `capture_seconds_100k` and
`capture_seconds_1m` record (best of three). The conditions also give one rerun by a capture just
started, before it has read the record and seen the fields of each product.
Changes go to an in-process counting sink; publishing is measured by the bus's own benchmarks.
"""

import json
import os
import resource
import subprocess
import sys
import time

from bench.results import record
from bench.support import remove_sqlite
from exsync.exchequer import ExchequerReader, connect, init_schema, seed
from exsync.exchequer.capture import CaptureState, ChangeCapture

BENCH_DIR = os.path.join("var", "bench")
ITEMS = 100_000
LOCATIONS = 3
BOMS = 2_000
BIG_ITEMS = 1_000_000
BIG_BOMS = 20_000
ROUNDS = 3
FETCH_ROWS = 1000


class CountingSink:
    """Counts the changes a cycle would publish."""

    def __init__(self):
        self.products = self.stock = 0

    def send(self, *, products, stock):
        self.products += len(products)
        self.stock += len(stock)


def _raw_fetch(database, tables=2):
    """The rows the goal is set against, as tuples: STOCK with the exported columns, then
    StockLocation (which a capture reads only when some locations are configured)."""
    rows = 0
    templates = (
        "SELECT {stock.code}, {stock.folio}, {stock.desc_1}, {stock.type}, {stock.parent_code}, "
        "{stock.qty_in_stock}, {stock.qty_allocated}, {stock.qty_picked}, {stock.qty_on_order}, "
        "{stock.band_a_price}, {stock.band_b_price}, {stock.category}, {stock.web_flag} FROM {stock}",
        "SELECT {stock_locations.stock_code}, {stock_locations.location}, {stock_locations.qty_in_stock}, "
        "{stock_locations.qty_allocated}, {stock_locations.qty_picked}, {stock_locations.qty_on_order} "
        "FROM {stock_locations}",
    )
    with database.transaction(write=False) as cursor:
        for template in templates[:tables]:
            cursor.run(template)
            while batch := cursor.fetchmany(FETCH_ROWS):
                rows += len(batch)
    return rows


def child(path, readers=True):
    """Runs in the child: a first cycle and reruns (and, with `readers`, the reader alone); prints
    timings and peak RSS as JSON."""
    dsn = f"sqlite:///{path}"
    with connect(dsn) as database, connect(dsn) as state_database:
        state = CaptureState(database=state_database, company="BENCH1").ensure()
        sink = CountingSink()
        capture = ChangeCapture(reader=ExchequerReader(database=database), state=state, sink=sink)
        first = capture.run_once()
        first_changes = sink.stock
        reruns, raw, stock_only = [], [], []
        for _ in range(ROUNDS):
            # The raw fetch beside each rerun, in the same process and moment: on a shared machine
            # a fetch timed minutes apart from the reruns measures the neighbours, not the capture.
            started = time.perf_counter()
            raw_rows = _raw_fetch(database)
            raw.append(time.perf_counter() - started)
            started = time.perf_counter()
            _raw_fetch(database, tables=1)
            stock_only.append(time.perf_counter() - started)
            sink.products = sink.stock = 0
            report = capture.run_once()
            reruns.append((report.seconds, sink.products + sink.stock, report.rows_scanned))
        # A capture just started (a new replica, a restart) has read nothing yet; the first one is
        # let go, as a restart would, so the peak is one capture's.
        capture = None
        sink.products = sink.stock = 0
        fresh = ChangeCapture(reader=ExchequerReader(database=database), state=state, sink=sink).run_once()
        fresh_changes = sink.products + sink.stock
        state.release()
        reader_seconds = free_stock_seconds = None
        if readers:
            # Where the time goes: the reader alone, as items (StockItem and LocationStock objects)
            # and as the plain rows capture reads.
            reader = ExchequerReader(database=database)
            started = time.perf_counter()
            for _ in reader.iter_stock_items():
                pass
            reader_seconds = time.perf_counter() - started
            started = time.perf_counter()
            for _ in reader.iter_free_stock(reader.stock_rules()):
                pass
            free_stock_seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as handle:
        own_peak_kib = next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
    print(json.dumps({"first_seconds": first.seconds, "first_changes": first_changes, "exported": first.exported,
                      "rerun_seconds": min(seconds for seconds, _, _ in reruns),
                      "raw_fetch_seconds": min(raw), "raw_stock_only_fetch_seconds": min(stock_only),
                      "raw_rows": raw_rows, "rounds": [{"rerun_seconds": round(rerun[0], 3),
                                                        "raw_fetch_seconds": round(fetch, 3)}
                                                       for rerun, fetch in zip(reruns, raw, strict=True)],
                      "rerun_changes": max(changes for _, changes, _ in reruns + [(0, fresh_changes, 0)]),
                      "fresh_rerun_seconds": fresh.seconds,
                      "rows_scanned": reruns[0][2], "reader_items_seconds": reader_seconds,
                      "reader_free_stock_seconds": free_stock_seconds, "peak_rss_bytes": peak_kib * 1024,
                      "own_peak_rss_bytes": own_peak_kib * 1024}))



def measure(*, items, boms, readers):
    """Seeds a company of `items` x LOCATIONS with `boms` bills and runs the child (reruns and raw
    fetches, best of ROUNDS each); returns (the child's figures, the conditions)."""
    os.makedirs(BENCH_DIR, exist_ok=True)
    path = os.path.join(BENCH_DIR, f"capture-{items}.db")
    remove_sqlite(path)
    try:
        # Seeded by a process of its own: ru_maxrss survives fork and exec, so a child forked from a
        # parent grown by seeding a million items would report the parent's size, not its own.
        subprocess.run([sys.executable, "-m", "bench.bench_capture", "--seed", path, str(items), str(boms)],
                       check=True)
        output = subprocess.run([sys.executable, "-m", "bench.bench_capture", path, *([] if readers else ["--lean"])],
                                capture_output=True, text=True, check=True).stdout
    finally:
        if items > ITEMS:
            remove_sqlite(path)
    result = json.loads(output.strip().splitlines()[-1])
    conditions = {"backend": "sqlite", "items": items, "locations": LOCATIONS, "boms": boms,
                  "raw_fetch_seconds": round(result["raw_fetch_seconds"], 3), "raw_rows": result["raw_rows"],
                  "raw_stock_only_fetch_seconds": round(result["raw_stock_only_fetch_seconds"], 3),
                  "rounds": result["rounds"],
                  "first_cycle_seconds": round(result["first_seconds"], 3),
                  "first_cycle_changes": result["first_changes"], "web_products": result["exported"],
                  "rows_scanned": result["rows_scanned"], "rerun_changes": result["rerun_changes"],
                  "fresh_process_rerun_seconds": round(result["fresh_rerun_seconds"], 3),
                  "sink": "in-process counter (no broker)",
                  "machine": "2 cores shared with other agents' work (tests, benchmarks) while measured"}
    if readers:
        conditions.update(reader_items_seconds=round(result["reader_items_seconds"], 3),
                          reader_free_stock_seconds=round(result["reader_free_stock_seconds"], 3))
    return result, conditions


def record_scale(result, conditions, *, suffix, seconds_key, seconds_goal, rss_goal, measured):
    """The keys of one catalogue size: a rerun's seconds, its ratio to the raw fetch, the peak RSS."""
    record(seconds_key, value=round(result["rerun_seconds"], 3), unit="s",
           goal=f"<= {seconds_goal} (a cycle with nothing changed: scan, could-build, diff)",
           conditions=conditions)
    record(f"capture_ratio_to_raw_fetch{suffix}", value=round(result["rerun_seconds"] / result["raw_fetch_seconds"], 3),
           unit="ratio", goal="<= 2", conditions=conditions)
    record(f"capture_peak_rss_bytes{suffix}", value=result["peak_rss_bytes"], unit="bytes", goal=f"<= {rss_goal}",
           conditions={**conditions, "measured": measured, "own_peak_rss_bytes": result["own_peak_rss_bytes"]})


def run():
    result, conditions = measure(items=ITEMS, boms=BOMS, readers=True)
    record_scale(result, conditions, suffix="", seconds_key="capture_seconds_100k", seconds_goal=2,
                 rss_goal=300000000,
                 measured="ru_maxrss of a child process running both cycles")
    record("capture_rerun_changes", value=result["rerun_changes"], unit="changes", goal="0",
           conditions=conditions)
    result, conditions = measure(items=BIG_ITEMS, boms=BIG_BOMS, readers=False)
    record_scale(result, conditions, suffix="_1m", seconds_key="capture_seconds_1m", seconds_goal=12,
                 rss_goal=400000000,
                 measured="ru_maxrss of a child process running the first cycle, three reruns and a fresh "
                          "capture's rerun (forked from a parent that did not seed)")


def seed_company(path, items, boms):
    with connect(f"sqlite:///{path}") as database:
        init_schema(database)
        seed(database, items=items, locations=LOCATIONS, boms=boms, accounts=10)


if __name__ == "__main__":
    if sys.argv[1] == "--seed":
        seed_company(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        child(sys.argv[1], readers="--lean" not in sys.argv[2:])
