"""Change capture: turns what changed in Exchequer's web products into events on the bus.

Exchequer keeps no change timestamps, so each cycle streams the web-enabled items (the mapping's
web flag), computes what the shop shows of each (product_scan.py), and compares a fingerprint of
the product fields and the quantity with what the last cycle recorded. The record is read from
the state once and then kept in step in memory (compactly: product_scan.SentProducts), read again
only when the state's sequence shows another writer.

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
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from exsync.bus import EXCHEQUER_EXCHANGE
from exsync.bus.events import publish_event
from exsync.bus.protocols import EventPublisher
from exsync.errors import ExsyncError
from exsync.exchequer.db import Cursor, Database, Row
from exsync.exchequer.mapping import Column
from exsync.exchequer.product_scan import (
    ProductExport,
    SentProducts,
    export_of,
    iter_exports,
    row_fingerprint,
)
from exsync.exchequer.reader import ExchequerReader
from exsync.exchequer.rules import ALL_LOCATIONS
from exsync.exchequer.runs import CAPTURE, RunLog
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_CAPTURE_EVENT_ITEMS as DEFAULT_EVENT_ITEMS
from exsync.schemas.config import DEFAULT_CAPTURE_INTERVAL_SECONDS as DEFAULT_INTERVAL_SECONDS
from exsync.schemas.config import DEFAULT_CAPTURE_LEASE_SECONDS as DEFAULT_LEASE_SECONDS
from exsync.state import Lease, StateTable, create_state_tables, holder_id

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
    "ChangeSink",
    "ProductExport",
    "iter_exports",
    "order_progress_step",
]

log = logging.getLogger(__name__)

SOURCE = "exsync/exchequer/capture"
PRODUCT_CHANGED = ("exchequer.product.changed", "product.changed")
STOCK_CHANGED = ("exchequer.stock.changed", "stock.changed")

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
# One change on its way out: the export, its fingerprint, the raw-fields hash (SentProducts), whether
# the product and the stock changed, and whether the SKU is new to the record.
_Entry = tuple[ProductExport, str, int, bool, bool, bool]


class CaptureState:
    """The capture's own tables for one company: fingerprints per SKU, the sequence, the lease."""

    def __init__(self, *, database: Database, company: str, holder: str | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.database = database
        self.company = company
        self.holder = holder or holder_id()
        self.lease_seconds = lease_seconds
        self.items_sql = CAPTURE_TABLES[0].sql_name(database)
        self.cursor_sql = CAPTURE_TABLES[1].sql_name(database)
        # The company's row of the cursor table carries its lease (the woo-writer's has a row too).
        self.lease = Lease(database=database, table=CAPTURE_TABLES[1]).held(
            (company,), holder=self.holder, seconds=lease_seconds)

    def ensure(self) -> "CaptureState":
        create_state_tables(self.database, CAPTURE_TABLES)
        return self

    def _locked_cursor_row(self, cursor: Cursor) -> Row | None:
        dialect = self.database.dialect
        sql = dialect.for_update(f'SELECT "sequence", "holder", "lease_expires" FROM '
                                 f'{dialect.locked(self.cursor_sql)} WHERE "company" = ?')
        return cursor.execute(sql, (self.company,)).fetchone()

    def acquire(self) -> bool:
        """Takes or renews the lease; False while another holder's lease is unexpired."""
        return self.lease.claim()

    def release(self) -> None:
        self.lease.release()

    def reserve(self, count: int) -> int | None:
        """Commits `count` new sequence numbers and renews the lease; returns the first, or None if
        the lease has passed to another holder (this one must stop)."""
        with self.database.transaction() as cursor:
            row = self._locked_cursor_row(cursor)
            if row is None or row[1] != self.holder:
                return None
            cursor.execute(f'UPDATE {self.cursor_sql} SET "sequence" = ?, "lease_expires" = ? WHERE "company" = ?',
                           (int(row[0]) + count, time.time() + self.lease_seconds, self.company))
            return int(row[0]) + 1

    def sequence(self) -> int:
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "sequence" FROM {self.cursor_sql} WHERE "company" = ?',
                                 (self.company,)).fetchone()
        return 0 if row is None else int(row[0])

    def _recorded(self, cursor: Cursor) -> Iterator[Row]:
        """(sku, product fingerprint, quantity) rows as last recorded, streamed."""
        cursor.execute(f'SELECT "sku", "product_fingerprint", "quantity" FROM {self.items_sql} '
                       'WHERE "company" = ?', (self.company,))
        return cursor.iterate()

    def load(self) -> dict[str, tuple[str, int]]:
        """sku -> (product fingerprint, quantity) as last recorded."""
        with self.database.transaction(write=False) as cursor:
            return {sku: (fingerprint, int(quantity)) for sku, fingerprint, quantity in self._recorded(cursor)}

    def load_sent(self) -> SentProducts:
        """What `load` gives, streamed into the compact SentProducts (no row is held twice)."""
        with self.database.transaction(write=False) as cursor:
            return SentProducts.from_rows(self._recorded(cursor))

    def record(self, entries: Sequence[tuple[str, str, int, int, bool]]) -> None:
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


class ChangeSink(Protocol):
    """Where a chunk of changes goes: the bus (BusSink), or the shop directly (a full export)."""

    def send(self, *, products: list[dict[str, str | int]], stock: list[dict[str, str | int]]) -> None:
        """Delivers one chunk's product items and stock items (either list may be empty)."""


class BusSink:
    """Publishes a chunk of changes as one product event and one stock event (confirmed)."""

    def __init__(self, *, publisher: EventPublisher, company: str) -> None:
        self.publisher = publisher
        self.company = company

    def send(self, *, products: list[dict[str, str | int]], stock: list[dict[str, str | int]]) -> None:
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

    def __init__(self, *, reader: ExchequerReader, state: CaptureState, sink: ChangeSink,
                 locations: str | Iterable[str] = ALL_LOCATIONS, event_items: int = DEFAULT_EVENT_ITEMS,
                 metrics: Metrics | None = None, each_cycle: Iterable[Callable[[], object]] = (),
                 runs: RunLog | None = None) -> None:
        self.reader = reader
        self.runs = runs
        self.state = state
        self.sink = sink
        self.locations = locations
        self.event_items = event_items
        self.metrics = metrics or Metrics()
        self.each_cycle = tuple(each_cycle)
        # What the state recorded (SentProducts), kept in step with each chunk recorded, and the
        # state's sequence after this capture's last reservation: a different sequence at the start
        # of a cycle means another writer (a replica that held the lease meanwhile), so it is read again.
        self._sent: SentProducts | None = None
        self._sent_sequence: int | None = None

    def run_once(self, *, force: bool = False) -> CaptureReport:
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

    def _record_run(self, outcome: str, detail: str) -> None:
        """Notes the cycle for `exsync status`; a state database that fails here fails the next cycle too."""
        if self.runs is None:
            return
        try:
            self.runs.record(CAPTURE, ok=outcome == "ok", detail=detail)
        except ExsyncError as error:
            log.warning("capture: cannot record the cycle in the state database: %s", error)

    def _sent_products(self) -> SentProducts:
        sequence = self.state.sequence()
        if self._sent is None or sequence != self._sent_sequence:
            self._sent, self._sent_sequence = self.state.load_sent(), sequence
        return self._sent

    def _scan(self, report: CaptureReport, force: bool) -> None:
        try:
            self._scan_rows(report, force, self._sent_products())
        except BaseException:
            # A chunk may have been recorded without the memory hearing of it: read the state again.
            self._sent = None
            raise

    def _scan_rows(self, report: CaptureReport, force: bool, sent: SentProducts) -> None:
        counts = [0, 0]
        chunk: list[_Entry] = []
        chunk_seen_at = 0.0  # set with the chunk's first entry
        # The steady state is "nothing changed": per row a hash of the raw product fields and one
        # comparison with the record (SentProducts.candidates). The fingerprint (formatting and
        # blake2b) is computed only for raw fields not yet seen to give the recorded fingerprint, a
        # ProductExport only for what goes out.
        for row, quantity, raw in sent.candidates(self.reader, self.locations, force=force, counts=counts):
            sku = row[0]
            fingerprint = row_fingerprint(row)
            changed = sent.compare(sku, raw, fingerprint, quantity)
            if changed is None or force:
                entry = (export_of(row, quantity), fingerprint, raw, True, True, changed is None)
            else:
                product_changed, stock_changed = changed
                if not (product_changed or stock_changed):
                    continue
                entry = (export_of(row, quantity), fingerprint, raw, product_changed, stock_changed, False)
            if not chunk:
                chunk_seen_at = time.monotonic()
            chunk.append(entry)
            if len(chunk) >= self.event_items:
                self._send(chunk, chunk_seen_at, report, sent)
                chunk = []
        if chunk:
            self._send(chunk, chunk_seen_at, report, sent)
        report.rows_scanned, report.exported = counts

    def _send(self, chunk: list[_Entry], seen_at: float, report: CaptureReport, sent: SentProducts) -> None:
        first = self.state.reserve(len(chunk))
        if first is None:
            raise _LeaseLost()
        self.metrics.set("capture_lag_seconds", time.monotonic() - seen_at)
        products: list[dict[str, str | int]] = []
        stock: list[dict[str, str | int]] = []
        entries: list[tuple[str, str, int, int, bool]] = []
        for offset, (export, fingerprint, _, product_changed, stock_changed, new) in enumerate(chunk):
            sequence = first + offset
            if product_changed:
                products.append(export.product_item(sequence))
            if stock_changed:
                stock.append(export.stock_item(sequence))
            entries.append((export.sku, fingerprint, export.quantity, sequence, new))
        self.sink.send(products=products, stock=stock)
        self.state.record(entries)
        for export, fingerprint, raw, *_ in chunk:
            sent.set(export.sku, raw, fingerprint, export.quantity)
        self._sent_sequence = first + len(chunk) - 1
        report.products_changed += len(products)
        report.stock_changed += len(stock)
        self.metrics.inc("capture_changes_published", len(products), kind="product")
        self.metrics.inc("capture_changes_published", len(stock), kind="stock")

    def run_forever(self, *, interval_seconds: float = DEFAULT_INTERVAL_SECONDS, stop: threading.Event | None = None,
                    heartbeat: Callable[..., None] | None = None) -> None:
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


def order_progress_step(*, database: Database, publisher: EventPublisher,
                        metrics: Metrics | None) -> Callable[[], int] | None:
    """The order engineer's OrderProgressCapture as a per-cycle step, when that module exists."""
    try:
        from exsync.exchequer.progress import OrderProgressCapture
    except ImportError as error:
        if error.name != "exsync.exchequer.progress":
            raise
        return None
    return OrderProgressCapture(database=database, publisher=publisher, metrics=metrics).run_once
