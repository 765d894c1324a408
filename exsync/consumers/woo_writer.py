"""The woo-writer consumer: Exchequer's product, price and stock changes into the shop, in batches.

The shop's API is the bottleneck (tens of ms an item), so the writer never writes per message:
- `handle` stores each event's items durably as one pending row per SKU, keeping the newest
  capture sequence (an older sequence never overwrites a newer one, pending or already written),
  commits, and returns, so the worker acks only what is stored;
- `flush` (once 100 SKUs are pending, and whenever the queue goes idle) coalesces per SKU,
  resolves SKU -> product id through a cache (the shop's products paged once, `?sku=` on a miss),
  compares with the last value written per SKU and sends only real changes, creating missing
  simple products (stock managed) and categories (by name), in `/products/batch` requests of up
  to 100 items. An item the shop refuses stays pending with its attempt count and error,
  retried after growing pauses (`item_retry_seconds`, doubled each time); after
  `max_item_attempts` it is marked failed (kept, visible in the pending table) and not retried.

Band A is the regular price; band B is Wholesale Suite's wholesale price meta, with the
percentage-discount meta cleared (it would override the price). Stock is sent as an integer
with the stock status derived from it.

The shop keeps its own stock (it reduces it when an order is paid and puts it back when one is
cancelled; an admin can type a number in), so a value written once is not a value that stays.
The writer asserts Exchequer's free stock over the shop's in two ways:
- order events (`order.*` from the shop, bound to the writer's queue) whose status moves the
  shop's stock (into or out of paid: processing, on-hold, completed against pending, cancelled,
  refunded, failed) mark their SKUs; `stock_check_delay_seconds` later (time for the orders
  consumer to import a paid order, so Exchequer has allocated it) the writer reads those
  products' stock from the shop (`include`/`sku` lists, `_fields` trimmed, 100 a request) and
  corrects those that differ from Exchequer's current free stock;
- the stock audit (`audit_stock`, and every `stock_audit_interval_seconds` on the writer's
  ticks, a page per tick so messages and heartbeats are never held up) pages through every
  product in the shop and corrects what differs.
Both read Exchequer's figure the way change capture does (`iter_exports`), so a cancelled order
whose SOR still allocates stock shows Exchequer's lower figure, never more than it can supply.

Only one process writes a shop's products at a time: every write (flush, correction) happens
under the writer's lease, a row in the state database kept by the capture's lease mechanism
(`CaptureState`, keyed `WRITER_LEASE`), so `exsync export products` and `exsync audit stock`
wait for a running consumer's flush to end rather than racing it. A unique-key race in the
writer's own tables means another process stored the same row first: the transaction is run
again against what is now there, never a dead process.
"""

import contextlib
import dataclasses
import html
import json
import logging
import time

from exsync.bus import EXCHEQUER_EXCHANGE, WOO_EXCHANGE, PermanentError, QueueSpec
from exsync.consumers.errors import ConsumerError
from exsync.exchequer.capture import CaptureState
from exsync.exchequer.errors import DuplicateKeyError, ExchequerError
from exsync.exchequer.mapping import Column
from exsync.exchequer.state import StateTable, create_state_tables, text_column
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_PRODUCTS_FLUSH_ITEMS as DEFAULT_FLUSH_ITEMS
from exsync.schemas.config import DEFAULT_PRODUCTS_ITEM_RETRY_SECONDS as DEFAULT_ITEM_RETRY_SECONDS
from exsync.schemas.config import DEFAULT_PRODUCTS_MAX_ITEM_ATTEMPTS as DEFAULT_MAX_ITEM_ATTEMPTS
from exsync.schemas.config import (
    DEFAULT_STOCK_AUDIT_INTERVAL_SECONDS,
    DEFAULT_STOCK_CHECK_DELAY_SECONDS,
    DEFAULT_WRITER_LEASE_SECONDS,
)
from exsync.woo import WooApiError, WooError
from exsync.woo.client import MAX_BATCH_ITEMS, MAX_PER_PAGE

__all__ = [
    "DEFAULT_FLUSH_ITEMS",
    "DEFAULT_MAX_ITEM_ATTEMPTS",
    "STOCK_FIELDS",
    "ExchequerFreeStock",
    "WRITER_LEASE",
    "WRITER_TABLES",
    "FlushReport",
    "StockAuditReport",
    "WooWriter",
    "WriterBusyError",
    "QUEUE",
    "stock_moved",
]

log = logging.getLogger(__name__)

# The shop's order events reach the writer too: a status change that moves the shop's stock (paid,
# cancelled...) makes it check and correct those products' stock. The single active consumer:
# the writer coalesces per SKU.
QUEUE = QueueSpec(name="woo.write", exchange=EXCHEQUER_EXCHANGE, binding_keys=("product.*", "stock.*"),
                  single_active_consumer=True, other_bindings=((WOO_EXCHANGE, "order.*"),))

DEFAULT_PAGE_SKUS = 1000
# Bound on SQL parameters per IN (...) list (SQLite's oldest limit is 999).
_IN_CHUNK = 500
PRODUCT_EVENT = "exchequer.product.changed"
STOCK_EVENT = "exchequer.stock.changed"
WHOLESALE_PRICE_META = "wholesale_customer_wholesale_price"
WHOLESALE_FLAG_META = "wholesale_customer_have_wholesale_price"
WHOLESALE_DISCOUNT_META = "wholesale_customer_wholesale_percentage_discount"
PRODUCT_FIELDS = ("name", "regular_price", "wholesale_price", "category")
ORDER_EVENTS = ("woo.order.created", "woo.order.updated", "woo.order.deleted")
# What a stock read asks of the shop (`_fields`): a tenth of a full product's JSON.
STOCK_FIELDS = "id,sku,manage_stock,stock_quantity"
# The lease row's key in the capture's lease table: one writer of the shop's products at a time.
WRITER_LEASE = "woo-writer"
# WooCommerce reduces stock when an order enters one of these and puts it back when it leaves for
# pending or cancelled (refunds and failures may restock too): a change of side moves stock.
STOCK_HELD_STATUSES = ("processing", "on-hold", "completed")
STOCK_RELEASED_STATUSES = ("pending", "cancelled", "refunded", "failed")
DEFAULT_STOCK_CHECK_SKUS = 1000
DEFAULT_STOCK_RETRY_SECONDS = 60.0
DEFAULT_WORST_SKUS = 10
DEFAULT_LEASE_WAIT_SECONDS = 0.0
DEFAULT_TICK_SECONDS = 1.0
_DUPLICATE_ATTEMPTS = 3
_DONE = object()
_SKU = Column("sku", "str:40")

WRITER_TABLES = (
    StateTable(name="woo_pending", key=("sku",), columns={
        "sku": _SKU,
        "product_sequence": Column("product_sequence", "int"),
        "product": text_column("product"),
        "stock_sequence": Column("stock_sequence", "int"),
        "quantity": Column("quantity", "int"),
        "attempts": Column("attempts", "int"),
        "failed": Column("failed", "int"),
        "error": Column("error", "str:1000"),
        "retry_at": Column("retry_at", "float"),
    }),
    StateTable(name="woo_products", key=("sku",), columns={
        "sku": _SKU,
        "product_id": Column("product_id", "int"),
        "product_sequence": Column("product_sequence", "int"),
        "stock_sequence": Column("stock_sequence", "int"),
        "written": text_column("written"),
    }),
    StateTable(name="woo_categories", key=("name",), columns={
        "name": Column("name", "str:200"),
        "category_id": Column("category_id", "int"),
    }),
    # SKUs whose shop stock is to be read and corrected from `due_at` on (marked by order events)
    StateTable(name="woo_stock_checks", key=("sku",), columns={
        "sku": _SKU,
        "due_at": Column("due_at", "float"),
        "reason": Column("reason", "str:40"),
    }),
    # the side of the stock line each shop order was last seen on (1: the shop holds its stock)
    StateTable(name="woo_order_stock", key=("order_id",), columns={
        "order_id": Column("order_id", "int"),
        "held": Column("held", "int"),
    }),
    # the last stock audit that finished, so a restart keeps the schedule
    StateTable(name="woo_stock_audit", key=("name",), columns={
        "name": Column("name", "str:40"),
        "finished_at": Column("finished_at", "float"),
        "checked": Column("checked", "int"),
        "drifted": Column("drifted", "int"),
        "corrected": Column("corrected", "int"),
    }),
)


class WriterBusyError(ConsumerError):
    """Another process holds the writer's lease (is writing the shop's products): try again later."""


def stock_moved(previous_held, status):
    """(moved, held): whether an order going to `status` moved the shop's stock, and the side it is
    on now (None for a status that neither holds nor releases stock, e.g. a draft or trash).

    `previous_held` is the side the order was last seen on (None: never seen). An order first seen
    pending has moved nothing; first seen anywhere else, the shop may have moved its stock.
    """
    if status in STOCK_HELD_STATUSES:
        held = True
    elif status in STOCK_RELEASED_STATUSES:
        held = False
    else:
        return False, previous_held
    if previous_held is None:
        return status != "pending", held
    return previous_held != held, held


def _again_on_duplicate(work):
    """Runs `work()` (one transaction), again if another process inserted the same key meanwhile:
    the next run reads the row that is now there and goes the update way."""
    for attempt in range(1, _DUPLICATE_ATTEMPTS + 1):
        try:
            return work()
        except DuplicateKeyError:
            if attempt == _DUPLICATE_ATTEMPTS:
                raise
            log.info("woo-writer: another process stored the same row first; reading it again")


def _chunks(values, size):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _money(value):
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return ""


def _meta(product, key):
    for entry in product.get("meta_data") or ():
        if entry.get("key") == key:
            return entry.get("value")
    return None


def shop_values(product):
    """What a shop product shows of the fields the writer manages, as the writer compares them."""
    categories = product.get("categories") or []
    wholesale = _meta(product, WHOLESALE_PRICE_META)
    if _meta(product, WHOLESALE_DISCOUNT_META) not in (None, ""):
        wholesale = None  # a leftover discount overrides the price: it must be written again
    return {
        "name": html.unescape(product.get("name") or ""),
        "regular_price": _money(product.get("regular_price")),
        "wholesale_price": _money(wholesale) if wholesale not in (None, "") else "",
        "category": html.unescape(categories[0]["name"]) if categories else "",
        "quantity": product.get("stock_quantity") if product.get("manage_stock") else None,
    }


def _stock_status(quantity):
    return "instock" if quantity > 0 else "outofstock"


@dataclasses.dataclass(kw_only=True)
class FlushReport:
    """What one flush settled."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    retry_later: int = 0
    requests: int = 0

    def add(self, other):
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@dataclasses.dataclass(kw_only=True)
class StockAuditReport:
    """What a stock audit (or a check of marked SKUs) found in the shop and did about it."""

    checked: int = 0
    drifted: int = 0
    corrected: int = 0
    failed: int = 0
    missing: int = 0
    requests: int = 0
    seconds: float = 0.0
    finished: bool = False
    # (sku, the shop's figure, Exchequer's) of the largest differences, largest first
    worst: list = dataclasses.field(default_factory=list)

    def note_drift(self, sku, shop_quantity, exchequer_quantity, keep=DEFAULT_WORST_SKUS):
        self.drifted += 1
        self.worst.append((sku, shop_quantity, exchequer_quantity))
        self.worst.sort(key=lambda entry: (-abs((entry[1] or 0) - entry[2]), entry[0]))
        del self.worst[keep:]


@dataclasses.dataclass(kw_only=True)
class _Pending:
    sku: str
    product_sequence: int
    product: dict | None
    stock_sequence: int
    quantity: int | None
    attempts: int


class WooWriter:
    """Stores changes durably and writes them to the shop in batches; one per shop (single consumer).

    `free_stock`, when given, returns Exchequer's current web quantity of every web product
    (sku -> int, as change capture computes it); without it order events mark SKUs but nothing
    is checked, and there is no audit.
    """

    def __init__(self, *, database, client, metrics=None, flush_items=DEFAULT_FLUSH_ITEMS,
                 max_item_attempts=DEFAULT_MAX_ITEM_ATTEMPTS, item_retry_seconds=DEFAULT_ITEM_RETRY_SECONDS,
                 page_skus=DEFAULT_PAGE_SKUS, free_stock=None,
                 stock_check_delay_seconds=DEFAULT_STOCK_CHECK_DELAY_SECONDS,
                 stock_audit_interval_seconds=DEFAULT_STOCK_AUDIT_INTERVAL_SECONDS,
                 lease_seconds=DEFAULT_WRITER_LEASE_SECONDS, tick_seconds=DEFAULT_TICK_SECONDS,
                 clock=time.time):
        self.database = database
        self.client = client
        self.metrics = metrics or Metrics()
        self.flush_items = flush_items
        self.max_item_attempts = max_item_attempts
        self.item_retry_seconds = item_retry_seconds
        self.page_skus = page_skus
        self.free_stock = free_stock
        self.stock_check_delay_seconds = stock_check_delay_seconds
        self.stock_audit_interval_seconds = stock_audit_interval_seconds
        self.tick_seconds = tick_seconds
        self.clock = clock
        (self._pending_sql, self._products_sql, self._categories_sql, self._checks_sql, self._orders_sql,
         self._audit_sql) = (table.sql_name(database) for table in WRITER_TABLES)
        self._categories = None
        create_state_tables(database, WRITER_TABLES)
        # The capture's lease mechanism, on a row of its own: one writer of the shop's products.
        self.lease = CaptureState(database=database, company=WRITER_LEASE, lease_seconds=lease_seconds).ensure()
        self._holding = 0
        self._audit = None
        self._audit_report = None
        self._last_tick = 0.0
        finished = self.last_audit()
        if finished is not None:
            self.metrics.set("stock_audit_last_success_timestamp_seconds", finished)
        # Never audited: the first audit comes an interval after the start, not at every restart.
        self._audit_due_at = (finished if finished is not None else self.clock()) + (
            stock_audit_interval_seconds or 0)

    # -- the lease: one writer of the shop's products ------------------------------------------

    @contextlib.contextmanager
    def writing(self, *, wait_seconds=DEFAULT_LEASE_WAIT_SECONDS):
        """Holds the writer's lease for the block (re-entrant); WriterBusyError if another process
        still holds it after `wait_seconds`."""
        if self._holding:
            self._renew()
            self._holding += 1
            try:
                yield
            finally:
                self._holding -= 1
            return
        deadline = time.monotonic() + wait_seconds
        while not self.lease.acquire():
            if time.monotonic() >= deadline:
                raise WriterBusyError("another process is writing the shop's products (the woo-writer's lease)")
            time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
        self._holding = 1
        try:
            yield
        finally:
            self._holding = 0
            self.lease.release()

    def _renew(self):
        """Renews the lease before a write; WriterBusyError if it passed to another process."""
        if not self.lease.acquire():
            raise WriterBusyError("the woo-writer's lease passed to another process mid-write")

    # -- storing what arrives ---------------------------------------------------------------------

    def handle(self, message):
        """The consumer's handler: stores the event's items (committed), then flushes when enough wait.

        Order events from the shop only mark the SKUs whose shop stock they moved."""
        event = message.event
        if event.get("type") in ORDER_EVENTS:
            self.note_order(event.get("data"))
            self._tick(flush=False)
            return
        items = (event.get("data") or {}).get("items") if isinstance(event.get("data"), dict) else None
        if event.get("type") not in (PRODUCT_EVENT, STOCK_EVENT) or not isinstance(items, list):
            raise PermanentError(f"not a product or stock change event: {event.get('type')!r}")
        try:
            if event["type"] == PRODUCT_EVENT:
                self.accept(products=items)
            else:
                self.accept(stock=items)
        except (KeyError, TypeError, ValueError) as error:
            raise PermanentError(f"malformed {event['type']} item: {error!r}") from error
        if self.pending_count() >= self.flush_items:
            self._flush_quietly()
        self._tick(flush=False)

    def on_idle(self):
        self._tick(flush=True, force=True)

    def _tick(self, *, flush, force=False):
        """Time-based work: pending changes (idle only: while busy they wait for a full batch),
        stock checks that are due, one page of a running audit. Between messages, at most once a
        `tick_seconds` unless idle; a shop or database outage waits for the next tick."""
        now = self.clock()
        if not force and now - self._last_tick < self.tick_seconds:
            return
        self._last_tick = now
        try:
            if flush and self.pending_count():
                self.flush()
            if self.free_stock is not None:
                self.check_marked()
                self._audit_step()
        except WriterBusyError as error:
            # Every tick while an export writes: not worth more than a debug line each time.
            log.debug("woo-writer: %s; trying again next tick", error)
        except (WooError, ExchequerError) as error:
            log.warning("woo-writer: %s; pending changes and marks stay stored", error)

    def _flush_quietly(self):
        # The changes are stored; a shop outage must not fail (and retry) the messages that carried them.
        try:
            self.flush()
        except WriterBusyError as error:
            log.info("woo-writer: %s; the changes stay pending", error)
        except WooError as error:
            log.warning("woo-writer flush stopped (%s); pending changes stay stored", error)

    # -- order events: marking SKUs whose shop stock moved -----------------------------------------

    def note_order(self, order):
        """Marks the SKUs of a shop order whose status change moved the shop's stock; returns them."""
        if not isinstance(order, dict) or "id" not in order:
            raise PermanentError("an order event needs a data object with an id")
        try:
            order_id = int(order["id"])
        except (TypeError, ValueError) as error:
            raise PermanentError(f"order id {order['id']!r} is not a number") from error
        status = order.get("status")
        skus = sorted({str(line.get("sku")) for line in order.get("line_items") or ()
                       if isinstance(line, dict) and line.get("sku")})
        if not isinstance(status, str):
            return []

        def work():
            with self.database.transaction() as cursor:
                row = cursor.execute(f'SELECT "held" FROM {self._orders_sql} WHERE "order_id" = ?',
                                     (order_id,)).fetchone()
                previous = None if row is None else bool(row[0])
                moved, held = stock_moved(previous, status)
                if held is None:
                    return []
                if row is None:
                    cursor.execute(f'INSERT INTO {self._orders_sql} ("order_id", "held") VALUES (?, ?)',
                                   (order_id, int(held)))
                elif previous != held:
                    cursor.execute(f'UPDATE {self._orders_sql} SET "held" = ? WHERE "order_id" = ?',
                                   (int(held), order_id))
                if not moved or not skus:
                    return []
                self._mark(cursor, skus, self.clock() + self.stock_check_delay_seconds, f"order {status}")
                return skus

        marked = _again_on_duplicate(work)
        if marked:
            log.info("woo-writer: order %s went %s; shop stock of %s to be checked", order_id, status,
                     ", ".join(marked))
        return marked

    def mark(self, skus, *, due_at=None, reason="marked"):
        """Marks SKUs for a stock check from `due_at` (now by default)."""
        skus = sorted({str(sku) for sku in skus if sku})
        due_at = self.clock() if due_at is None else due_at

        def work():
            with self.database.transaction() as cursor:
                self._mark(cursor, skus, due_at, reason)

        _again_on_duplicate(work)

    def _mark(self, cursor, skus, due_at, reason):
        # A later mark pushes the check back: the newest event's settling time counts.
        existing = {row[0] for row in self._select_in(cursor, f'SELECT "sku" FROM {self._checks_sql} WHERE "sku"',
                                                      skus)}
        cursor.executemany(f'UPDATE {self._checks_sql} SET "due_at" = ?, "reason" = ? WHERE "sku" = ?',
                           [(due_at, reason[:40], sku) for sku in skus if sku in existing])
        cursor.executemany(f'INSERT INTO {self._checks_sql} ("sku", "due_at", "reason") VALUES (?, ?, ?)',
                           [(sku, due_at, reason[:40]) for sku in skus if sku not in existing])

    def marked(self):
        """sku -> due time of every SKU waiting for a stock check."""
        with self.database.transaction(write=False) as cursor:
            return {row[0]: float(row[1]) for row in cursor.execute(
                f'SELECT "sku", "due_at" FROM {self._checks_sql}').fetchall()}

    def check_marked(self, *, now=None):
        """Reads the shop's stock of the marked SKUs that are due and corrects what differs from
        Exchequer's free stock; returns the StockAuditReport (None when nothing was due)."""
        now = self.clock() if now is None else now
        with self.database.transaction(write=False) as cursor:
            sql = self.database.dialect.limit(
                f'SELECT "sku", "due_at" FROM {self._checks_sql} WHERE "due_at" <= ? ORDER BY "due_at", "sku"',
                DEFAULT_STOCK_CHECK_SKUS)
            due = {row[0]: float(row[1]) for row in cursor.execute(sql, (now,)).fetchall()}
        if not due:
            return None
        started = time.monotonic()
        report = StockAuditReport()
        with self.writing():
            exchequer = self.free_stock()
            shop = self._shop_stock(sorted(due), report)
            drift = {}
            for sku in due:
                if sku not in exchequer:
                    continue  # not a web product (any more): not the writer's to set
                if sku not in shop:
                    report.missing += 1
                    continue
                report.checked += 1
                product_id, quantity = shop[sku]
                if quantity != exchequer[sku]:
                    report.note_drift(sku, quantity, exchequer[sku])
                    drift[sku] = (product_id, exchequer[sku])
            failed = self._correct(drift, report)
        self.metrics.inc("stock_drift_found", report.drifted, source="order")
        retry_at = self.clock() + DEFAULT_STOCK_RETRY_SECONDS
        with self.database.transaction() as cursor:
            # Only the marks read are cleared: one set again meanwhile stays for its own check.
            cursor.executemany(f'DELETE FROM {self._checks_sql} WHERE "sku" = ? AND "due_at" = ?',
                               [(sku, due_at) for sku, due_at in due.items() if sku not in failed])
            cursor.executemany(f'UPDATE {self._checks_sql} SET "due_at" = ? WHERE "sku" = ? AND "due_at" = ?',
                               [(retry_at, sku, due[sku]) for sku in failed])
        report.seconds = time.monotonic() - started
        report.finished = True
        if report.drifted:
            log.warning("woo-writer: %d of %d checked SKU(s) differed from Exchequer's free stock, %d corrected: %s",
                        report.drifted, report.checked, report.corrected,
                        ", ".join(f"{sku} shop {shop_q} Exchequer {exq_q}" for sku, shop_q, exq_q in report.worst))
        return report

    # -- reading the shop's stock and correcting it -----------------------------------------------

    def _shop_stock(self, skus, report):
        """sku -> (product id, the shop's stock, None when it does not manage it) for the SKUs found;
        products the writer knows by id are listed by `include`, the rest by `sku`, 100 a request."""
        known = self._known(skus)
        found = {}
        by_id = {product_id: sku for sku, (product_id, _) in known.items()}
        ids = sorted(by_id)
        for start in range(0, len(ids), MAX_PER_PAGE):
            chunk = ids[start:start + MAX_PER_PAGE]
            page = self.client.list_products_page(per_page=MAX_PER_PAGE, params={
                "include": ",".join(str(i) for i in chunk), "status": "any", "_fields": STOCK_FIELDS})
            report.requests += 1
            for product in page.items:
                if product.get("sku") == by_id.get(int(product.get("id") or 0)):
                    found[product["sku"]] = self._stock_of(product)
        rest = [sku for sku in skus if sku not in found]
        for start in range(0, len(rest), MAX_PER_PAGE):
            chunk = rest[start:start + MAX_PER_PAGE]
            page = self.client.list_products_page(per_page=MAX_PER_PAGE, params={
                "sku": ",".join(chunk), "status": "any", "_fields": STOCK_FIELDS})
            report.requests += 1
            for product in page.items:
                if product.get("sku") in chunk:
                    found[product["sku"]] = self._stock_of(product)
        return found

    @staticmethod
    def _stock_of(product):
        quantity = product.get("stock_quantity") if product.get("manage_stock") else None
        return int(product["id"]), None if quantity is None else int(quantity)

    def _correct(self, drift, report):
        """Writes Exchequer's figure over the shop's (sku -> (product id, quantity)) in batches, under
        the lease, and records it as written; returns the SKUs the shop refused."""
        failed = set()
        if not drift:
            return failed
        with self.writing():
            self._store_known([(sku, product_id, "") for sku, (product_id, _) in drift.items()])
            written = self._known(list(drift))
            operations = sorted(drift.items())
            for chunk in _chunks(operations, MAX_BATCH_ITEMS):
                self._renew()
                result = self.client.batch_products(update=[
                    {"id": product_id, "manage_stock": True, "stock_quantity": quantity,
                     "stock_status": _stock_status(quantity)} for _, (product_id, quantity) in chunk])
                report.requests += 1
                ok = []
                for (sku, (product_id, quantity)), answer in zip(chunk, result.items, strict=False):
                    if answer.ok:
                        values = dict(written.get(sku, (product_id, {}))[1], quantity=quantity)
                        ok.append((product_id, json.dumps(values, sort_keys=True), sku))
                    else:
                        failed.add(sku)
                        log.warning("woo-writer: the shop refused the stock of %s: %s", sku, answer.error)
                failed.update(sku for sku, _ in chunk[len(result.items):])
                with self.database.transaction() as cursor:
                    cursor.executemany(f'UPDATE {self._products_sql} SET "product_id" = ?, "written" = ? '
                                       'WHERE "sku" = ?', ok)
                report.corrected += len(ok)
                self.metrics.inc("woo_writer_changes", len(ok), outcome="corrected")
        report.failed += len(failed)
        return failed

    # -- the stock audit --------------------------------------------------------------------------

    def last_audit(self):
        """When the last stock audit finished (epoch seconds), or None."""
        with self.database.transaction(write=False) as cursor:
            row = cursor.execute(f'SELECT "finished_at" FROM {self._audit_sql} WHERE "name" = ?',
                                 ("stock",)).fetchone()
        return None if row is None else float(row[0])

    def audit_stock(self, *, wait_seconds=DEFAULT_LEASE_WAIT_SECONDS):
        """Audits every product's stock in the shop against Exchequer's free stock at once and
        corrects the differences (`exsync audit stock`); returns the StockAuditReport."""
        if self.free_stock is None:
            raise ConsumerError("the stock audit needs Exchequer's free stock (no company database given)")
        report = StockAuditReport()
        with self.writing(wait_seconds=wait_seconds):
            for _ in self._audit_pages(report):
                pass
        return report

    def _audit_step(self):
        """One page of the scheduled audit, started when due; the audit holds no lease between pages."""
        if self._audit is None:
            if not self.stock_audit_interval_seconds or self.clock() < self._audit_due_at:
                return
            self._audit_report = StockAuditReport()
            self._audit = self._audit_pages(self._audit_report)
            self._audit_due_at = self.clock() + self.stock_audit_interval_seconds
            log.info("woo-writer: stock audit started")
        with self.writing():  # busy elsewhere: this page waits for a later tick
            try:
                done = next(self._audit, _DONE) is _DONE
            except BaseException:
                # An outage ends this audit (a generator that raised is over); the next starts at the next interval.
                self._audit = None
                raise
        if done:
            self._audit = None
            report = self._audit_report
            log.info("woo-writer: stock audit: %d product(s) checked, %d differed from Exchequer, %d corrected, "
                     "%d failed, %d web product(s) not in the shop, %d request(s) in %.1f s%s",
                     report.checked, report.drifted, report.corrected, report.failed, report.missing,
                     report.requests, report.seconds,
                     "; worst: " + ", ".join(f"{sku} shop {shop_q} Exchequer {exq_q}"
                                             for sku, shop_q, exq_q in report.worst) if report.worst else "")

    def _audit_pages(self, report):
        """The audit as a generator, one shop page a step: Exchequer is read once at the start, each
        page of the shop's products (ids ascending, `_fields` trimmed) compared, the differences
        corrected in batches of up to 100."""
        started = time.monotonic()
        exchequer = self.free_stock()
        seen, drift, page = set(), {}, 1
        while True:
            result = self.client.list_products_page(page=page, per_page=MAX_PER_PAGE, params={
                "status": "any", "orderby": "id", "order": "asc", "_fields": STOCK_FIELDS})
            report.requests += 1
            for product in result.items:
                sku = product.get("sku")
                if not sku or sku not in exchequer or sku in seen:
                    continue
                seen.add(sku)
                report.checked += 1
                product_id, quantity = self._stock_of(product)
                if quantity != exchequer[sku]:
                    report.note_drift(sku, quantity, exchequer[sku])
                    drift[sku] = (product_id, exchequer[sku])
            if len(drift) >= MAX_BATCH_ITEMS:
                self._correct(drift, report)
                drift = {}
            if not result.items or page >= result.total_pages:
                break
            page += 1
            yield
        self._correct(drift, report)
        report.missing = len(set(exchequer) - seen)
        report.seconds = time.monotonic() - started
        report.finished = True
        finished_at = self.clock()
        self.metrics.inc("stock_drift_found", report.drifted, source="audit")
        self.metrics.set("stock_audit_last_success_timestamp_seconds", finished_at)

        def record():
            with self.database.transaction() as cursor:
                values = (finished_at, report.checked, report.drifted, report.corrected, "stock")
                if cursor.execute(f'SELECT 1 FROM {self._audit_sql} WHERE "name" = ?', ("stock",)).fetchone():
                    cursor.execute(f'UPDATE {self._audit_sql} SET "finished_at" = ?, "checked" = ?, "drifted" = ?, '
                                   '"corrected" = ? WHERE "name" = ?', values)
                else:
                    cursor.execute(f'INSERT INTO {self._audit_sql} ("finished_at", "checked", "drifted", '
                                   '"corrected", "name") VALUES (?, ?, ?, ?, ?)', values)

        _again_on_duplicate(record)

    def _select_in(self, cursor, sql_prefix, skus):
        rows = []
        for chunk in _chunks(list(skus), _IN_CHUNK):
            marks = ", ".join("?" for _ in chunk)
            rows.extend(cursor.execute(f"{sql_prefix} IN ({marks})", tuple(chunk)).fetchall())
        return rows

    def accept(self, *, products=(), stock=()):
        """Stores changes (event items); returns (stored, stale). One transaction."""
        stored, stale = _again_on_duplicate(lambda: self._accept(products, stock))
        if stale:
            self.metrics.inc("woo_writer_changes", stale, outcome="stale")
        return stored, stale

    def _accept(self, products, stock):
        incoming = {}
        for item in products:
            incoming.setdefault(str(item["sku"]), [None, None])[0] = item
        for item in stock:
            incoming.setdefault(str(item["sku"]), [None, None])[1] = item
        stored = stale = 0
        with self.database.transaction() as cursor:
            pending = {row[0]: row for row in self._select_in(
                cursor, f'SELECT "sku", "product_sequence", "product", "stock_sequence", "quantity", "failed" '
                        f'FROM {self._pending_sql} WHERE "sku"', incoming)}
            applied = {row[0]: (int(row[1]), int(row[2])) for row in self._select_in(
                cursor, f'SELECT "sku", "product_sequence", "stock_sequence" FROM {self._products_sql} '
                        'WHERE "sku"', incoming)}
            inserts, updates = [], []
            for sku, (product_item, stock_item) in incoming.items():
                row = pending.get(sku)
                product_seq, product_json = (int(row[1]), row[2]) if row else (0, "")
                stock_seq, quantity = (int(row[3]), int(row[4])) if row else (0, 0)
                applied_product, applied_stock = applied.get(sku, (0, 0))
                changed = False
                if product_item is not None:
                    sequence = int(product_item["sequence"])
                    if sequence > max(product_seq, applied_product):
                        product_seq, changed = sequence, True
                        product_json = json.dumps({
                            "name": str(product_item["description"]),
                            "regular_price": _money(product_item["regular_price"]),
                            "wholesale_price": _money(product_item["wholesale_price"]),
                            "category": str(product_item.get("category") or "")}, sort_keys=True)
                    else:
                        stale += 1
                if stock_item is not None:
                    sequence = int(stock_item["sequence"])
                    if sequence > max(stock_seq, applied_stock):
                        stock_seq, quantity, changed = sequence, int(stock_item["quantity"]), True
                    else:
                        stale += 1
                if not changed:
                    continue
                stored += 1
                if row is None:
                    inserts.append((sku, product_seq, product_json, stock_seq, quantity))
                else:
                    # A new change gives a failed SKU a fresh start.
                    updates.append((product_seq, product_json, stock_seq, quantity, sku))
            cursor.executemany(f'INSERT INTO {self._pending_sql} ("sku", "product_sequence", "product", '
                               '"stock_sequence", "quantity", "attempts", "failed", "error", "retry_at") '
                               "VALUES (?, ?, ?, ?, ?, 0, 0, '', 0)", inserts)
            cursor.executemany(f'UPDATE {self._pending_sql} SET "product_sequence" = ?, "product" = ?, '
                               '"stock_sequence" = ?, "quantity" = ?, "attempts" = 0, "failed" = 0, "error" = \'\', '
                               '"retry_at" = 0 WHERE "sku" = ?', updates)
        return stored, stale

    def pending_count(self):
        with self.database.transaction(write=False) as cursor:
            count = int(cursor.execute(f'SELECT COUNT(*) FROM {self._pending_sql} WHERE "failed" = 0').fetchone()[0])
        self.metrics.set("woo_writer_pending", count)
        return count

    def failures(self):
        """(sku, attempts, error) of every SKU marked failed."""
        with self.database.transaction(write=False) as cursor:
            return [tuple(row) for row in cursor.execute(
                f'SELECT "sku", "attempts", "error" FROM {self._pending_sql} WHERE "failed" = 1 ORDER BY "sku"')
                .fetchall()]

    # -- writing to the shop --------------------------------------------------------------------

    def flush(self, *, progress=None, wait_seconds=DEFAULT_LEASE_WAIT_SECONDS):
        """Writes every pending change, holding the writer's lease (waiting up to `wait_seconds` for
        another process's flush to end); `progress(done, total)` is called after each request."""
        with self.writing(wait_seconds=wait_seconds):
            return self._flush(progress)

    def _flush(self, progress):
        report = FlushReport()
        total = self.pending_count()
        after = ""
        # Right after the cache was filled from the shop, a SKU missing from it is missing from the shop.
        look_up_missing = not self._prime_products()
        while True:
            page = self._pending_page(after)
            if not page:
                break
            self._renew()
            after = page[-1].sku
            page_report = self._write_page(page, progress=progress, total=total, done_before=report,
                                           look_up_missing=look_up_missing)
            report.add(page_report)
            if page_report.retry_later:
                break  # the shop is refusing for now: the rest waits for the next flush
        self.pending_count()
        return report

    def _pending_page(self, after):
        with self.database.transaction(write=False) as cursor:
            sql = self.database.dialect.limit(
                f'SELECT "sku", "product_sequence", "product", "stock_sequence", "quantity", "attempts" '
                f'FROM {self._pending_sql} WHERE "failed" = 0 AND "retry_at" <= ? AND "sku" > ? ORDER BY "sku"',
                self.page_skus)
            rows = cursor.execute(sql, (time.time(), after)).fetchall()
        return [_Pending(sku=row[0], product_sequence=int(row[1]), product=json.loads(row[2]) if row[2] else None,
                         stock_sequence=int(row[3]), quantity=int(row[4]) if int(row[3]) else None,
                         attempts=int(row[5])) for row in rows]

    def _prime_products(self):
        """Fills the product cache from the shop while it is empty (the first flush ever); True if it did."""
        with self.database.transaction(write=False) as cursor:
            if cursor.execute(f"SELECT COUNT(*) FROM {self._products_sql}").fetchone()[0]:
                return False
        rows = [(product["sku"], int(product["id"]), json.dumps(shop_values(product), sort_keys=True))
                for product in self.client.iter_products(params={"status": "any"}) if product.get("sku")]
        self._store_known(rows)
        return True

    def _store_known(self, rows):
        """Caches (sku, product id, values) of products found in the shop (new SKUs' sequences start at 0)."""
        _again_on_duplicate(lambda: self._store_known_once(rows))

    def _store_known_once(self, rows):
        with self.database.transaction() as cursor:
            existing = {row[0] for row in self._select_in(
                cursor, f'SELECT "sku" FROM {self._products_sql} WHERE "sku"', [row[0] for row in rows])}
            cursor.executemany(f'INSERT INTO {self._products_sql} ("sku", "product_id", "product_sequence", '
                               '"stock_sequence", "written") VALUES (?, ?, 0, 0, ?)',
                               [row for row in rows if row[0] not in existing])
            cursor.executemany(f'UPDATE {self._products_sql} SET "product_id" = ?, "written" = ? '
                               'WHERE "sku" = ? AND "product_id" = 0',
                               [(product_id, written, sku) for sku, product_id, written in rows if sku in existing])

    def _known(self, skus):
        """sku -> (product id, last values written) for SKUs cached with a product id."""
        with self.database.transaction(write=False) as cursor:
            return {row[0]: (int(row[1]), json.loads(row[2]) if row[2] else {}) for row in self._select_in(
                cursor, f'SELECT "sku", "product_id", "written" FROM {self._products_sql} '
                        'WHERE "product_id" <> 0 AND "sku"', skus)}

    def _category_id(self, name):
        if self._categories is None:
            with self.database.transaction(write=False) as cursor:
                self._categories = {row[0]: int(row[1]) for row in cursor.execute(
                    f'SELECT "name", "category_id" FROM {self._categories_sql}').fetchall()}
        if name not in self._categories:
            # WordPress hands names back HTML-escaped ("Nuts &amp; Bolts").
            found = {html.unescape(category["name"]): int(category["id"])
                     for category in self.client.iter_categories() if category.get("parent", 0) == 0}
            category_id = found.get(name)
            if category_id is None:
                try:
                    category_id = int(self.client.create_category(name=name)["id"])
                except WooApiError as error:
                    # The name differs but the slug is taken (case, punctuation): that term is the one.
                    existing = (error.data or {}).get("resource_id") if isinstance(error.data, dict) else None
                    if error.code != "term_exists" or not existing:
                        raise
                    category_id = int(existing)
            try:
                with self.database.transaction() as cursor:
                    cursor.execute(f'INSERT INTO {self._categories_sql} ("name", "category_id") VALUES (?, ?)',
                                   (name, category_id))
            except DuplicateKeyError:
                # Another process stored the category first: its id is the one (the shop has one term).
                with self.database.transaction(write=False) as cursor:
                    row = cursor.execute(f'SELECT "category_id" FROM {self._categories_sql} WHERE "name" = ?',
                                         (name,)).fetchone()
                category_id = int(row[0]) if row is not None else category_id
            self._categories[name] = category_id
        return self._categories[name]

    def _desired(self, pending, written):
        desired = dict(written)
        if pending.product is not None:
            desired.update({field: pending.product[field] for field in PRODUCT_FIELDS})
        if pending.quantity is not None:
            desired["quantity"] = pending.quantity
        return desired

    def _payload(self, desired, written, *, create, sku):
        """The fields to send: everything for a new product, only what differs for an existing one."""
        changed = {field for field in (*PRODUCT_FIELDS, "quantity")
                   if desired.get(field) is not None and desired.get(field) != written.get(field)}
        payload = {}
        if create:
            payload.update({"sku": sku, "type": "simple", "name": desired.get("name") or sku,
                            "manage_stock": True})
            changed.discard("name")
        if "name" in changed and desired["name"]:
            payload["name"] = desired["name"]
        if "regular_price" in changed:
            payload["regular_price"] = desired["regular_price"]
        if "category" in changed and desired["category"]:
            payload["categories"] = [{"id": self._category_id(desired["category"])}]
        if "wholesale_price" in changed:
            price = desired["wholesale_price"]
            has_price = price not in ("", "0.00")
            payload["meta_data"] = [
                {"key": WHOLESALE_PRICE_META, "value": price if has_price else None},
                {"key": WHOLESALE_FLAG_META, "value": "yes" if has_price else "no"},
                {"key": WHOLESALE_DISCOUNT_META, "value": None},
            ]
        if "quantity" in changed:
            quantity = int(desired["quantity"])
            payload.update({"manage_stock": True, "stock_quantity": quantity, "stock_status": _stock_status(quantity)})
        return payload

    def _write_page(self, page, *, progress, total, done_before, look_up_missing):
        report = FlushReport()
        known = self._known([p.sku for p in page])
        missing = [p.sku for p in page if p.sku not in known]
        if missing and look_up_missing:
            found = self.client.products_by_sku(missing)
            if found:
                self._store_known([(sku, int(product["id"]), json.dumps(shop_values(product), sort_keys=True))
                                   for sku, product in found.items()])
                known.update(self._known(list(found)))
        operations, unchanged = [], []
        for pending in page:
            product_id, written = known.get(pending.sku, (None, {}))
            desired = self._desired(pending, written)
            payload = self._payload(desired, written, create=product_id is None, sku=pending.sku)
            if not payload:
                unchanged.append((pending, product_id, desired))
                continue
            if product_id is not None:
                payload["id"] = product_id
            operations.append((pending, product_id, desired, payload))
        self._settle(ok=[(p, pid, d) for p, pid, d in unchanged], failed=[])
        report.unchanged += len(unchanged)
        self.metrics.inc("woo_writer_changes", len(unchanged), outcome="unchanged")

        def tell():
            if progress is not None:
                progress(sum(r.created + r.updated + r.unchanged + r.failed for r in (done_before, report)), total)

        if unchanged:
            tell()
        for chunk in _chunks(operations, MAX_BATCH_ITEMS):
            creates = [op for op in chunk if op[1] is None]
            updates = [op for op in chunk if op[1] is not None]
            result = self.client.batch_products(create=[op[3] for op in creates], update=[op[3] for op in updates])
            report.requests += 1
            self.metrics.observe("woo_writer_batch_items", len(chunk))
            answers = {("create", index): answer for index, answer in
                       enumerate(a for a in result.items if a.action == "create")}
            answers.update({("update", index): answer for index, answer in
                            enumerate(a for a in result.items if a.action == "update")})
            ok, failed, written = [], [], {"create": 0, "update": 0}
            for action, ops in (("create", creates), ("update", updates)):
                for index, (pending, product_id, desired, _) in enumerate(ops):
                    answer = answers.get((action, index))
                    if answer is not None and answer.ok:
                        ok.append((pending, int(answer.body.get("id") or product_id or 0), desired))
                        written[action] += 1
                    else:
                        error = answer.error if answer is not None else None
                        failed.append((pending, error))
            retry_later = [f for f in failed if f[1] is not None and f[1].retryable]
            permanent = [f for f in failed if f not in retry_later]
            report.retry_later += len(retry_later)
            report.failed += self._settle(ok=ok, failed=permanent)
            report.created += written["create"]
            report.updated += written["update"]
            self.metrics.inc("woo_writer_changes", written["create"], outcome="created")
            self.metrics.inc("woo_writer_changes", written["update"], outcome="updated")
            tell()
            if retry_later:
                break
        return report

    def _settle(self, *, ok, failed):
        """Records written values and clears pending rows; counts attempts of refused items.
        Returns how many SKUs were marked failed for good."""
        gave_up = _again_on_duplicate(lambda: self._settle_once(ok, failed))
        if gave_up:
            self.metrics.inc("woo_writer_changes", gave_up, outcome="failed")
            log.error("woo-writer: %d SKU(s) failed for good; see the woo_pending table", gave_up)
        return gave_up

    def _settle_once(self, ok, failed):
        gave_up = 0
        with self.database.transaction() as cursor:
            existing = {row[0] for row in self._select_in(
                cursor, f'SELECT "sku" FROM {self._products_sql} WHERE "sku"', [p.sku for p, _, _ in ok])}
            rows = [(product_id, p.product_sequence, p.stock_sequence, json.dumps(desired, sort_keys=True), p.sku)
                    for p, product_id, desired in ok]
            # A change of one kind leaves the other kind's applied sequence as it was (0 means none came).
            cursor.executemany(
                f'UPDATE {self._products_sql} SET "product_id" = ?, '
                '"product_sequence" = CASE WHEN ? > "product_sequence" THEN ? ELSE "product_sequence" END, '
                '"stock_sequence" = CASE WHEN ? > "stock_sequence" THEN ? ELSE "stock_sequence" END, '
                '"written" = ? WHERE "sku" = ?',
                [(product_id, product_seq, product_seq, stock_seq, stock_seq, written, sku)
                 for product_id, product_seq, stock_seq, written, sku in rows if sku in existing])
            cursor.executemany(f'INSERT INTO {self._products_sql} ("product_id", "product_sequence", '
                               '"stock_sequence", "written", "sku") VALUES (?, ?, ?, ?, ?)',
                               [row for row in rows if row[4] not in existing])
            # Only the version written is cleared: a newer change stored meanwhile stays pending.
            cursor.executemany(f'DELETE FROM {self._pending_sql} WHERE "sku" = ? AND "product_sequence" = ? '
                               'AND "stock_sequence" = ?', [(p.sku, p.product_sequence, p.stock_sequence)
                                                            for p, _, _ in ok])
            # The product was deleted in the shop: forget its id, so the next attempt finds or creates it.
            cursor.executemany(f'UPDATE {self._products_sql} SET "product_id" = 0, "written" = \'\' WHERE "sku" = ?',
                               [(pending.sku,) for pending, error in failed
                                if getattr(error, "code", None) == "woocommerce_rest_product_invalid_id"])
            updates = []
            for pending, error in failed:
                attempts = pending.attempts + 1
                give_up = attempts >= self.max_item_attempts
                gave_up += give_up
                message = f"{type(error).__name__}: {error}" if error is not None else "no answer from the shop"
                # Growing pauses, so a refused item is not hammered every time the queue idles.
                retry_at = time.time() + self.item_retry_seconds * 2 ** (attempts - 1)
                if give_up:
                    log.error("woo-writer: SKU %s failed for good after %d attempt(s): %s", pending.sku, attempts,
                              message, extra={"sku": pending.sku, "attempt": attempts, "outcome": "failed"})
                updates.append((attempts, int(give_up), message[:1000], retry_at, pending.sku))
            cursor.executemany(f'UPDATE {self._pending_sql} SET "attempts" = ?, "failed" = ?, "error" = ?, '
                               '"retry_at" = ? WHERE "sku" = ?', updates)
        return gave_up

    def close(self):
        close_source = getattr(self.free_stock, "close", None)
        if close_source is not None:
            close_source()
        self.client.close()
        self.database.close()


class ExchequerFreeStock:
    """Exchequer's web quantity of every web product (sku -> int), read as change capture computes
    it (`iter_exports`: free stock over the configured locations, could-build for kits); callable,
    on a connection of its own, opened on first use and again after a failure."""

    def __init__(self, *, dsn, mapping, locations):
        self.dsn = dsn
        self.mapping = mapping
        self.locations = locations
        self._database = None

    def __call__(self):
        from exsync.exchequer.capture import iter_exports
        from exsync.exchequer.db import connect
        from exsync.exchequer.reader import ExchequerReader

        if self._database is None:
            self._database = connect(self.dsn, mapping=self.mapping)
        try:
            return {export.sku: export.quantity for export in iter_exports(
                ExchequerReader(database=self._database), locations=self.locations)}
        except ExchequerError:
            self.close()
            raise

    def close(self):
        if self._database is not None:
            self._database.close()
            self._database = None
