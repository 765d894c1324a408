"""Change capture: turns what changed in Exchequer's web products into events on the bus.

Exchequer keeps no change timestamps, so each cycle streams the web-enabled items (the mapping's
web flag), computes what the shop shows of each (description, band A and B prices, category,
free stock over the configured locations; for a bill of materials the kit rule: its own free stock
plus what its components could build, never below 0), and compares a
fingerprint of the product fields and the quantity with what the last cycle recorded.

Changes go out in chunks of up to `event_items` SKUs: one `exchequer.product.changed` event
(routing key `product.changed`) and one `exchequer.stock.changed` event (`stock.changed`) per
chunk, each carrying a list of items with their capture sequence. Many SKUs travel in one event
because the publisher waits for each confirm (~2 ms): 10,000 changes are 40 publishes, not 20,000.
A chunk's sequences are reserved (committed) before it is published, and its fingerprints are
recorded only after the broker confirmed it, so a crash repeats a change and never loses one,
and a sequence is never used twice.

Only one capture per company runs at a time: a lease row in the state database (renewed with each
chunk and each cycle, expiring after `lease_seconds`) lets a second replica stand by safely.
Each cycle also runs the per-cycle steps (order progress, customer accounts) under the same lease.
"""

import dataclasses
import hashlib
import logging
import math
import os
import socket
import threading
import time
import uuid

from exsync.bus import EXCHEQUER_EXCHANGE
from exsync.bus.events import publish_event
from exsync.errors import ExsyncError
from exsync.exchequer.account_capture import DEFAULT_EVENT_ITEMS as DEFAULT_ACCOUNT_EVENT_ITEMS
from exsync.exchequer.account_capture import AccountCapture
from exsync.exchequer.mapping import Column
from exsync.exchequer.rules import ALL_LOCATIONS
from exsync.exchequer.runs import CAPTURE, RunLog
from exsync.exchequer.state import StateTable, create_state_tables
from exsync.metrics import Metrics

__all__ = [
    "CAPTURE_TABLES",
    "DEFAULT_EVENT_ITEMS",
    "DEFAULT_INTERVAL_SECONDS",
    "DEFAULT_LEASE_SECONDS",
    "PRODUCT_CHANGED",
    "STOCK_CHANGED",
    "BusSink",
    "CaptureReport",
    "CaptureState",
    "ChangeCapture",
    "ProductExport",
    "build_capture",
    "iter_exports",
    "run_capture_once",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 15.0
DEFAULT_EVENT_ITEMS = 500
DEFAULT_LEASE_SECONDS = 120.0
SOURCE = "exsync/exchequer/capture"
PRODUCT_CHANGED = ("exchequer.product.changed", "product.changed")
STOCK_CHANGED = ("exchequer.stock.changed", "stock.changed")
# Quantities are floats: 2.9999999999 free should show as 3, not 2.
_FLOOR_TOLERANCE = 1e-9

_COMPANY = Column("company", "str:30")
CAPTURE_TABLES = (
    StateTable(name="capture_items", key=("company", "sku"), columns={
        "company": _COMPANY,
        "sku": Column("sku", "str:40"),
        "product_fingerprint": Column("product_fingerprint", "str:16"),
        "quantity": Column("quantity", "int"),
        "sequence": Column("sequence", "int"),
    }),
    StateTable(name="capture_cursor", key=("company",), columns={
        "company": _COMPANY,
        "sequence": Column("sequence", "int"),
        "holder": Column("holder", "str:100"),
        "lease_expires": Column("lease_expires", "float"),
    }),
)


def _money(value):
    return f"{float(value):.2f}"


def _fingerprint(description, regular_price, wholesale_price, category):
    text = f"{description}\x1f{regular_price}\x1f{wholesale_price}\x1f{category}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class ProductExport:
    """What the shop shows of one web product: the values capture fingerprints and publishes."""

    sku: str
    description: str
    regular_price: str
    wholesale_price: str
    category: str
    quantity: int

    def fingerprint(self):
        """A short hash of the product fields (the quantity is compared on its own)."""
        return _fingerprint(self.description, self.regular_price, self.wholesale_price, self.category)

    def product_item(self, sequence):
        return {"sku": self.sku, "description": self.description, "regular_price": self.regular_price,
                "wholesale_price": self.wholesale_price, "category": self.category, "sequence": sequence}

    def stock_item(self, sequence):
        return {"sku": self.sku, "quantity": self.quantity, "sequence": sequence}


def _web_rows(reader, locations, counter):
    """(row, quantity) per web-enabled item, rows as ExchequerReader.iter_free_stock gives them;
    bills of materials come last, their quantity what could be built."""
    rules = reader.stock_rules(locations)
    floor = math.floor
    scanned = 0
    for row, built in rules.with_could_build(reader.iter_free_stock(rules), reader.bom_components()):
        scanned += 1
        if row[3]:
            available = row[2] if built is None else built
            yield row, max(0, floor(available + _FLOOR_TOLERANCE))
    if counter is not None:
        counter[0] += scanned


def _export(row, quantity):
    return ProductExport(sku=row[0], description=row[4].strip(), regular_price=_money(row[5]),
                         wholesale_price=_money(row[6]), category=row[7].strip(), quantity=quantity)


def iter_exports(reader, *, locations=ALL_LOCATIONS, counter=None):
    """Yields a ProductExport per web-enabled item, streamed; bills of materials come last.

    Every item is read (a BOM's components need not be web products), but only bills of materials
    are held, until every component's free stock has been seen. `counter`, a one-element list,
    counts the rows scanned (once the stream is exhausted).
    """
    for row, quantity in _web_rows(reader, locations, counter):
        yield _export(row, quantity)


class CaptureState:
    """The capture's own tables for one company: fingerprints per SKU, the sequence, the lease."""

    def __init__(self, *, database, company, holder=None, lease_seconds=DEFAULT_LEASE_SECONDS):
        self.database = database
        self.company = company
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.items_sql = CAPTURE_TABLES[0].sql_name(database)
        self.cursor_sql = CAPTURE_TABLES[1].sql_name(database)

    def ensure(self):
        create_state_tables(self.database, CAPTURE_TABLES)
        return self

    def _locked_cursor_row(self, cursor):
        dialect = self.database.dialect
        sql = dialect.for_update(f'SELECT "sequence", "holder", "lease_expires" FROM '
                                 f'{dialect.locked(self.cursor_sql)} WHERE "company" = ?')
        return cursor.execute(sql, (self.company,)).fetchone()

    def acquire(self):
        """Takes or renews the lease; False while another holder's lease is unexpired."""
        now = time.time()
        with self.database.transaction() as cursor:
            row = self._locked_cursor_row(cursor)
            if row is None:
                cursor.execute(f'INSERT INTO {self.cursor_sql} ("company", "sequence", "holder", "lease_expires") '
                               "VALUES (?, 0, ?, ?)", (self.company, self.holder, now + self.lease_seconds))
                return True
            if row[1] != self.holder and float(row[2]) > now:
                return False
            cursor.execute(f'UPDATE {self.cursor_sql} SET "holder" = ?, "lease_expires" = ? WHERE "company" = ?',
                           (self.holder, now + self.lease_seconds, self.company))
            return True

    def release(self):
        with self.database.transaction() as cursor:
            cursor.execute(f'UPDATE {self.cursor_sql} SET "lease_expires" = 0 WHERE "company" = ? AND "holder" = ?',
                           (self.company, self.holder))

    def reserve(self, count):
        """Commits `count` new sequence numbers and renews the lease; returns the first, or None if
        the lease has passed to another holder (this one must stop)."""
        with self.database.transaction() as cursor:
            row = self._locked_cursor_row(cursor)
            if row is None or row[1] != self.holder:
                return None
            cursor.execute(f'UPDATE {self.cursor_sql} SET "sequence" = ?, "lease_expires" = ? WHERE "company" = ?',
                           (int(row[0]) + count, time.time() + self.lease_seconds, self.company))
            return int(row[0]) + 1

    def sequence(self):
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "sequence" FROM {self.cursor_sql} WHERE "company" = ?',
                                 (self.company,)).fetchone()
        return 0 if row is None else int(row[0])

    def load(self):
        """sku -> (product fingerprint, quantity) as last recorded."""
        with self.database.transaction(write=False) as cursor:
            cursor.execute(f'SELECT "sku", "product_fingerprint", "quantity" FROM {self.items_sql} '
                           'WHERE "company" = ?', (self.company,))
            return {sku: (fingerprint, int(quantity)) for sku, fingerprint, quantity in cursor.iterate()}

    def record(self, entries):
        """Stores (sku, fingerprint, quantity, sequence, is_new) entries in one transaction."""
        with self.database.transaction() as cursor:
            cursor.executemany(
                f'UPDATE {self.items_sql} SET "product_fingerprint" = ?, "quantity" = ?, "sequence" = ? '
                'WHERE "company" = ? AND "sku" = ?',
                [(fp, qty, seq, self.company, sku) for sku, fp, qty, seq, new in entries if not new])
            cursor.executemany(
                f'INSERT INTO {self.items_sql} ("company", "sku", "product_fingerprint", "quantity", "sequence") '
                "VALUES (?, ?, ?, ?, ?)",
                [(self.company, sku, fp, qty, seq) for sku, fp, qty, seq, new in entries if new])


class BusSink:
    """Publishes a chunk of changes as one product event and one stock event (confirmed)."""

    def __init__(self, *, publisher, company):
        self.publisher = publisher
        self.company = company

    def send(self, *, products, stock):
        for (event_type, routing_key), items in ((PRODUCT_CHANGED, products), (STOCK_CHANGED, stock)):
            if items:
                publish_event(self.publisher, exchange=EXCHEQUER_EXCHANGE, routing_key=routing_key, type=event_type,
                              source=SOURCE, subject=self.company, data={"company": self.company, "items": items})


@dataclasses.dataclass(kw_only=True)
class CaptureReport:
    """What one cycle did."""

    rows_scanned: int = 0
    exported: int = 0
    products_changed: int = 0
    stock_changed: int = 0
    seconds: float = 0.0
    skipped: bool = False


class _LeaseLost(Exception):
    """Internal: another replica took the lease mid-cycle."""


class ChangeCapture:
    """One company's capture: scan, diff against the state, send changes, record them."""

    def __init__(self, *, reader, state, sink, locations=ALL_LOCATIONS, event_items=DEFAULT_EVENT_ITEMS,
                 metrics=None, each_cycle=(), runs=None):
        self.reader = reader
        self.runs = runs
        self.state = state
        self.sink = sink
        self.locations = locations
        self.event_items = event_items
        self.metrics = metrics or Metrics()
        self.each_cycle = tuple(each_cycle)
        # sku -> (hash of the raw product fields, their fingerprint) as the last full scan saw them:
        # a cache of a pure function, so it holds whatever the state says; hash() is per process,
        # so it is never stored.
        self._fingerprints = {}

    def run_once(self, *, force=False):
        """One cycle. With `force`, every web product counts as changed (a full export)."""
        started = time.monotonic()
        report = CaptureReport()
        if not self.state.acquire():
            report.skipped = True
            log.info("capture of %s: another replica holds the lease", self.state.company)
            return report
        outcome, detail = "ok", ""
        try:
            self._scan(report, force)
        except _LeaseLost:
            outcome, detail = "lease_lost", "the lease passed to another replica mid-cycle"
            log.warning("capture of %s: the lease passed to another replica mid-cycle", self.state.company)
        except Exception as error:
            outcome, detail = "error", f"{type(error).__name__}: {error}"
            raise
        finally:
            self._record_run(outcome, detail)
            report.seconds = time.monotonic() - started
            self.metrics.observe("capture_cycle_duration_seconds", report.seconds, outcome=outcome)
            self.metrics.inc("capture_rows_scanned", report.rows_scanned)
            self.metrics.set("capture_lag_seconds", 0.0)
        if outcome == "ok":
            # Only the replica holding the lease says so: the stall alert takes the newest of them.
            self.metrics.set("capture_last_success_timestamp_seconds", time.time())
        for step in self.each_cycle:
            step()
        return report

    def _record_run(self, outcome, detail):
        """Notes the cycle for `exsync status`; a state database that fails here fails the next cycle too."""
        if self.runs is None:
            return
        try:
            self.runs.record(CAPTURE, ok=outcome == "ok", detail=detail)
        except ExsyncError as error:
            log.warning("capture: cannot record the cycle in the state database: %s", error)

    def _scan(self, report, force):
        known = self.state.load()
        counter = [0]
        chunk, chunk_seen_at = [], None
        previous, fingerprints = self._fingerprints, {}
        # The steady state is "nothing changed": per row a hash of the raw product fields, looked
        # up in the last cycle's fingerprints, and two comparisons. The fingerprint (formatting and
        # blake2b) is computed only for fields that differ, a ProductExport only for what goes out.
        for row, quantity in _web_rows(self.reader, self.locations, counter):
            report.exported += 1
            sku = row[0]
            raw = hash(row[4:8])
            cached = previous.pop(sku, None)
            if cached is None or cached[0] != raw:
                cached = (raw, _fingerprint(row[4].strip(), _money(row[5]), _money(row[6]), row[7].strip()))
            fingerprints[sku] = cached
            fingerprint = cached[1]
            # Popping as we go lets the known state shrink while the scan runs.
            old = known.pop(sku, None)
            if old is None or force:
                entry = (_export(row, quantity), fingerprint, True, True, old is None)
            else:
                product_changed, stock_changed = old[0] != fingerprint, old[1] != quantity
                if not (product_changed or stock_changed):
                    continue
                entry = (_export(row, quantity), fingerprint, product_changed, stock_changed, False)
            if not chunk:
                chunk_seen_at = time.monotonic()
            chunk.append(entry)
            if len(chunk) >= self.event_items:
                self._send(chunk, chunk_seen_at, report)
                chunk = []
        if chunk:
            self._send(chunk, chunk_seen_at, report)
        self._fingerprints = fingerprints
        report.rows_scanned = counter[0]

    def _send(self, chunk, seen_at, report):
        first = self.state.reserve(len(chunk))
        if first is None:
            raise _LeaseLost()
        self.metrics.set("capture_lag_seconds", time.monotonic() - seen_at)
        products, stock, entries = [], [], []
        for offset, (export, fingerprint, product_changed, stock_changed, new) in enumerate(chunk):
            sequence = first + offset
            if product_changed:
                products.append(export.product_item(sequence))
            if stock_changed:
                stock.append(export.stock_item(sequence))
            entries.append((export.sku, fingerprint, export.quantity, sequence, new))
        self.sink.send(products=products, stock=stock)
        self.state.record(entries)
        report.products_changed += len(products)
        report.stock_changed += len(stock)
        self.metrics.inc("capture_changes_published", len(products), kind="product")
        self.metrics.inc("capture_changes_published", len(stock), kind="stock")

    def run_forever(self, *, interval_seconds=DEFAULT_INTERVAL_SECONDS, stop=None, heartbeat=None):
        """Cycles every `interval_seconds` until `stop` (a threading.Event) is set; releases the lease.

        `heartbeat` (an `exsync.health.Liveness.beat`) hears of each cycle's start and each wait, so
        a cycle that hangs shows on the liveness probe."""
        stop = stop or threading.Event()
        heartbeat = heartbeat or (lambda **_: None)
        try:
            while not stop.is_set():
                started = time.monotonic()
                heartbeat()
                try:
                    report = self.run_once()
                    if not report.skipped:
                        log.info("capture: %d rows, %d product and %d stock changes in %.2f s",
                                 report.rows_scanned, report.products_changed, report.stock_changed,
                                 report.seconds)
                except Exception:
                    log.exception("capture cycle failed; trying again next interval")
                wait_seconds = max(0.0, interval_seconds - (time.monotonic() - started))
                heartbeat(waiting_seconds=wait_seconds)
                stop.wait(wait_seconds)
        finally:
            self.state.release()


def _order_progress_step(*, database, publisher, metrics):
    """The order engineer's OrderProgressCapture as a per-cycle step, when that module exists."""
    try:
        from exsync.exchequer.progress import OrderProgressCapture
    except ImportError as error:
        if error.name != "exsync.exchequer.progress":
            raise
        return None
    return OrderProgressCapture(database=database, publisher=publisher, metrics=metrics).run_once


def build_capture(settings, *, metrics=None, publisher=None, sink=None):
    """A ChangeCapture wired from the settings, and a `close()` for what it opened.

    The state gets a connection of its own (even on the company's database) because the scan
    holds a read transaction while chunks are recorded.
    """
    from exsync.bus import Publisher, Topology
    from exsync.exchequer.db import connect
    from exsync.exchequer.options import mapping_for, options_for
    from exsync.exchequer.reader import ExchequerReader

    metrics = metrics or Metrics()
    options = settings.config.get("capture", {})
    mapping = mapping_for(settings.config)
    company_db = connect(settings.exchequer_dsn, mapping=mapping)
    state_db = connect(settings.state_dsn, mapping=mapping)
    own_publisher = None
    if publisher is None and sink is None:
        publisher = own_publisher = Publisher(url=settings.amqp_url, topology=Topology.from_config(settings.config),
                                              metrics=metrics)
    steps = []
    if publisher is not None:
        step = _order_progress_step(database=company_db, publisher=publisher, metrics=metrics)
        if step is not None:
            steps.append(step)
        customers = settings.config.get("customers", {})
        if customers.get("enabled", True):
            accounts = AccountCapture(database=company_db, state_database=state_db, publisher=publisher,
                                      company=mapping.company, metrics=metrics,
                                      event_items=customers.get("event_items", DEFAULT_ACCOUNT_EVENT_ITEMS))
            steps.append(accounts.run_once)
    state = CaptureState(database=state_db, company=mapping.company,
                         lease_seconds=options.get("lease_seconds", DEFAULT_LEASE_SECONDS)).ensure()
    capture = ChangeCapture(
        reader=ExchequerReader(database=company_db), state=state,
        sink=sink or BusSink(publisher=publisher, company=mapping.company),
        locations=options_for(settings.config).locations,
        event_items=options.get("event_items", DEFAULT_EVENT_ITEMS), metrics=metrics, each_cycle=steps,
        runs=RunLog(database=state_db).ensure())

    def close():
        if own_publisher is not None:
            own_publisher.close()
        company_db.close()
        state_db.close()

    return capture, close


def run_capture_once(settings, *, metrics=None):
    """One capture cycle for the configured company (the demo's hook); returns its CaptureReport."""
    capture, close = build_capture(settings, metrics=metrics)
    try:
        report = capture.run_once()
        capture.state.release()
        return report
    finally:
        close()
