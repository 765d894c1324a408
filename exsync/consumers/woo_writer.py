"""The woo-writer consumer: Exchequer's product, price and stock changes into the shop, in batches.

The shop's API is the bottleneck (tens of ms an item), so the writer never writes per message:
- `handle` stores each event's items durably as one pending row per SKU, keeping the newest
  capture sequence (an older sequence never overwrites a newer one, pending or already written),
  commits, and returns, so the worker acks only what is stored;
- `flush` (once 100 SKUs are pending, and whenever the queue goes idle) coalesces per SKU,
  resolves SKU -> product id through a cache (the shop's products paged once, `?sku=` on a miss),
  compares with the last value written per SKU and sends only real changes, creating missing
  simple products (stock managed) and categories (by name), in `/products/batch` requests of up
  to 100 items, several in flight at once (`shop.max_concurrent_requests`, adapting to the shop:
  `woo_batches`), never two for one SKU. A pending row is cleared only once the shop confirmed it.
  An item the shop refuses stays pending with its attempt count and error,
  retried after growing pauses (`item_retry_seconds`, doubled each time); after
  `max_item_attempts` it is marked failed (kept, visible in the pending table) and not retried.

What is sent is built in `woo_payloads`; the stock checks and audit are `woo_stock`'s; every
statement on the writer's tables is `WriterStore`'s (`exsync.state.products`).

Only one process writes a shop's products at a time: every write (flush, correction) happens
under the writer's lease (exsync.state's `Lease`, on the capture cursor table's row keyed
`WRITER_LEASE`), so `exsync export products` and `exsync audit stock`
wait for a running consumer's flush to end rather than racing it. A unique-key race in the
writer's own tables means another process stored the same row first: the transaction is run
again against what is now there, never a dead process.
"""

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from exsync.bus import EXCHEQUER_EXCHANGE, WOO_EXCHANGE, PermanentError, QueueSpec
from exsync.consumers.errors import ConsumerError
from exsync.consumers.woo_batches import (
    AdaptiveConcurrency,
    Batch,
    BatchPipeline,
    FlushReport,
    Operation,
    Outcome,
    is_pressure,
    match_answers,
)
from exsync.consumers.woo_payloads import (
    WHOLESALE_DISCOUNT_META,
    WHOLESALE_FLAG_META,
    WHOLESALE_PRICE_META,
    Categories,
    desired_values,
    payload_for,
    product_values,
    shop_values,
)
from exsync.consumers.woo_stock import (
    DEFAULT_LEASE_WAIT_SECONDS,
    STOCK_FIELDS,
    ExchequerFreeStock,
    StockAuditReport,
    StockChecks,
    stock_moved,
)
from exsync.exchequer.capture import CaptureState
from exsync.exchequer.errors import ExchequerError
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_PRODUCTS_FLUSH_ITEMS as DEFAULT_FLUSH_ITEMS
from exsync.schemas.config import DEFAULT_PRODUCTS_ITEM_RETRY_SECONDS as DEFAULT_ITEM_RETRY_SECONDS
from exsync.schemas.config import DEFAULT_PRODUCTS_MAX_ITEM_ATTEMPTS as DEFAULT_MAX_ITEM_ATTEMPTS
from exsync.schemas.config import (
    DEFAULT_SHOP_MAX_CONCURRENT_REQUESTS,
    DEFAULT_STOCK_AUDIT_INTERVAL_SECONDS,
    DEFAULT_STOCK_CHECK_DELAY_SECONDS,
    DEFAULT_WRITER_LEASE_SECONDS,
)
from exsync.state.products import (
    WRITER_TABLES,
    Failure,
    IncomingChange,
    KnownProduct,
    PendingChange,
    Refusal,
    Settled,
    WriterStore,
)
from exsync.woo import WooError
from exsync.woo.client import MAX_BATCH_ITEMS

__all__ = [
    "DEFAULT_FLUSH_ITEMS",
    "DEFAULT_MAX_ITEM_ATTEMPTS",
    "STOCK_FIELDS",
    "WHOLESALE_DISCOUNT_META",
    "WHOLESALE_FLAG_META",
    "WHOLESALE_PRICE_META",
    "ExchequerFreeStock",
    "WRITER_LEASE",
    "WRITER_TABLES",
    "FlushReport",
    "StockAuditReport",
    "WooWriter",
    "WriterBusyError",
    "QUEUE",
    "shop_values",
    "stock_moved",
]

log = logging.getLogger(__name__)

# The shop's order events reach the writer too: a status change that moves the shop's stock (paid,
# cancelled...) makes it check and correct those products' stock. The single active consumer:
# the writer coalesces per SKU.
QUEUE = QueueSpec(name="woo.write", exchange=EXCHEQUER_EXCHANGE, binding_keys=("product.*", "stock.*"),
                  single_active_consumer=True, other_bindings=((WOO_EXCHANGE, "order.*"),))

DEFAULT_PAGE_SKUS = 1000
DEFAULT_TICK_SECONDS = 1.0
PRODUCT_EVENT = "exchequer.product.changed"
STOCK_EVENT = "exchequer.stock.changed"
ORDER_EVENTS = ("woo.order.created", "woo.order.updated", "woo.order.deleted")
# The lease row's key in the capture's lease table: one writer of the shop's products at a time.
WRITER_LEASE = "woo-writer"
_INVALID_ID = "woocommerce_rest_product_invalid_id"


class WriterBusyError(ConsumerError):
    """Another process holds the writer's lease (is writing the shop's products): try again later."""


class WooWriter(StockChecks):
    """Stores changes durably and writes them to the shop in batches; one per shop (single consumer).

    `free_stock`, when given, returns Exchequer's current web quantity of every web product
    (sku -> int, as change capture computes it); without it order events mark SKUs but nothing
    is checked, and there is no audit. `max_concurrent_requests` batches are in flight at most.
    """

    def __init__(self, *, database: Any, client: Any, metrics: Metrics | None = None,
                 flush_items: int = DEFAULT_FLUSH_ITEMS, max_item_attempts: int = DEFAULT_MAX_ITEM_ATTEMPTS,
                 item_retry_seconds: float = DEFAULT_ITEM_RETRY_SECONDS, page_skus: int = DEFAULT_PAGE_SKUS,
                 free_stock: Callable[[], dict[str, int]] | None = None,
                 stock_check_delay_seconds: float = DEFAULT_STOCK_CHECK_DELAY_SECONDS,
                 stock_audit_interval_seconds: float | None = DEFAULT_STOCK_AUDIT_INTERVAL_SECONDS,
                 lease_seconds: float = DEFAULT_WRITER_LEASE_SECONDS, tick_seconds: float = DEFAULT_TICK_SECONDS,
                 max_concurrent_requests: int = DEFAULT_SHOP_MAX_CONCURRENT_REQUESTS,
                 clock: Callable[[], float] = time.time) -> None:
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
        self.store = WriterStore(database=database).ensure()
        self.categories = Categories(store=self.store, client=client)
        # Kept across flushes: a shop that pushed back stays at the lower limit until clean batches grow it.
        self.concurrency = AdaptiveConcurrency(maximum=max_concurrent_requests, metrics=self.metrics)
        # The one Lease (exsync.state), on a row of the capture's cursor table: one writer of the shop's products.
        self.lease = CaptureState(database=database, company=WRITER_LEASE, lease_seconds=lease_seconds).ensure().lease
        self._holding = 0
        self._audit: Iterator[None] | None = None
        self._audit_report: StockAuditReport | None = None
        self._last_tick = 0.0
        finished = self.last_audit()
        if finished is not None:
            self.metrics.set("stock_audit_last_success_timestamp_seconds", finished)
        # Never audited: the first audit comes an interval after the start, not at every restart.
        self._audit_due_at = (finished if finished is not None else self.clock()) + (
            stock_audit_interval_seconds or 0)

    # -- the lease: one writer of the shop's products ------------------------------------------

    @contextlib.contextmanager
    def writing(self, *, wait_seconds: float = DEFAULT_LEASE_WAIT_SECONDS) -> Iterator[None]:
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
        while not self.lease.claim():
            if time.monotonic() >= deadline:
                raise WriterBusyError("another process is writing the shop's products (the woo-writer's lease)")
            time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
        self._holding = 1
        try:
            yield
        finally:
            self._holding = 0
            self.lease.release()

    def _renew(self) -> None:
        """Renews the lease before a write; WriterBusyError if it passed to another process."""
        if not self.lease.claim():
            raise WriterBusyError("the woo-writer's lease passed to another process mid-write")

    # -- storing what arrives ---------------------------------------------------------------------

    def handle(self, message: Any) -> None:
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

    def on_idle(self) -> None:
        self._tick(flush=True, force=True)

    def _tick(self, *, flush: bool, force: bool = False) -> None:
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

    def _flush_quietly(self) -> None:
        # The changes are stored; a shop outage must not fail (and retry) the messages that carried them.
        try:
            self.flush()
        except WriterBusyError as error:
            log.info("woo-writer: %s; the changes stay pending", error)
        except WooError as error:
            log.warning("woo-writer flush stopped (%s); pending changes stay stored", error)

    def accept(self, *, products: Any = (), stock: Any = ()) -> tuple[int, int]:
        """Stores changes (event items); returns (stored, stale). One transaction."""
        incoming: dict[str, dict] = {}
        for item in products:
            incoming.setdefault(str(item["sku"]), {}).update(product_sequence=int(item["sequence"]),
                                                             product=product_values(item))
        for item in stock:
            incoming.setdefault(str(item["sku"]), {}).update(stock_sequence=int(item["sequence"]),
                                                             quantity=int(item["quantity"]))
        stored, stale = self.store.accept([IncomingChange(sku=sku, **change) for sku, change in incoming.items()])
        if stale:
            self.metrics.inc("woo_writer_changes", stale, outcome="stale")
        return stored, stale

    def pending_count(self) -> int:
        count = self.store.pending_count()
        self.metrics.set("woo_writer_pending", count)
        return count

    def failures(self) -> list[Failure]:
        """(sku, attempts, error) of every SKU marked failed."""
        return self.store.failures()

    def _category_id(self, name: str) -> int:
        return self.categories.id_of(name)

    # -- writing to the shop --------------------------------------------------------------------

    def flush(self, *, progress: Callable[[int, int], None] | None = None,
              wait_seconds: float = DEFAULT_LEASE_WAIT_SECONDS) -> FlushReport:
        """Writes every pending change, holding the writer's lease (waiting up to `wait_seconds` for
        another process's flush to end); `progress(done, total)` is called after each request."""
        with self.writing(wait_seconds=wait_seconds):
            return self._flush(progress)

    def _flush(self, progress: Callable[[int, int], None] | None) -> FlushReport:
        report = FlushReport()
        total = self.pending_count()

        def tell() -> None:
            if progress is not None:
                progress(report.done, total)

        # Right after the cache was filled from the shop, a SKU missing from it is missing from the shop.
        look_up_missing = not self._prime_products()
        pipeline = BatchPipeline(concurrency=self.concurrency, send=self._send,
                                 settle=lambda batch, result: self._settle_batch(batch, result, report, tell),
                                 before_send=self._renew)
        self.client.retry_listeners.append(pipeline.heard)
        try:
            pipeline.run(self._batches(report, tell, look_up_missing=look_up_missing))
        finally:
            self.client.retry_listeners.remove(pipeline.heard)
        self.pending_count()
        return report

    def _batches(self, report: FlushReport, tell: Callable[[], None], *, look_up_missing: bool) -> Iterator[Batch]:
        """The flush's batches, a page of pending changes at a time (read as the pipeline has room)."""
        after = ""
        while True:
            page = self.store.pending_page(after=after, limit=self.page_skus)
            if not page:
                return
            self._renew()
            after = page[-1].sku
            operations, unchanged = self._operations(page, look_up_missing=look_up_missing)
            if unchanged:
                self._settle(settled=unchanged, refused=[])
                report.unchanged += len(unchanged)
                self.metrics.inc("woo_writer_changes", len(unchanged), outcome="unchanged")
                tell()
            for start in range(0, len(operations), MAX_BATCH_ITEMS):
                chunk = operations[start:start + MAX_BATCH_ITEMS]
                yield Batch(skus=frozenset(op.pending.sku for op in chunk), work=chunk)

    def _operations(self, page: list[PendingChange], *, look_up_missing: bool) -> tuple[list[Operation],
                                                                                        list[Settled]]:
        """What to send for a page of pending changes, and the changes the shop already shows."""
        known = self.store.known(p.sku for p in page)
        missing = [p.sku for p in page if p.sku not in known]
        if missing and look_up_missing:
            found = self.client.products_by_sku(missing)
            if found:
                self.store.store_known([KnownProduct(sku=sku, product_id=int(product["id"]),
                                                     written=shop_values(product)) for sku, product in found.items()])
                known.update(self.store.known(list(found)))
        operations, unchanged = [], []
        for pending in page:
            product_id = known[pending.sku].product_id if pending.sku in known else None
            written = known[pending.sku].written if pending.sku in known else {}
            desired = desired_values(pending, written)
            payload = payload_for(desired, written, create=product_id is None, sku=pending.sku,
                                  categories=self.categories)
            if not payload:
                unchanged.append(Settled(pending=pending, product_id=product_id or 0, values=desired))
                continue
            if product_id is not None:
                payload["id"] = product_id
            operations.append(Operation(pending=pending, product_id=product_id, desired=desired, payload=payload))
        return operations, unchanged

    def _send(self, batch: Batch) -> Any:
        """One `/products/batch` request (on a pipeline thread: no database work here)."""
        return self.client.batch_products(create=[op.payload for op in batch.work if op.product_id is None],
                                          update=[op.payload for op in batch.work if op.product_id is not None])

    def _settle_batch(self, batch: Batch, result: Any, report: FlushReport, tell: Callable[[], None]) -> Outcome:
        report.requests += 1
        self.metrics.observe("woo_writer_batch_items", len(batch.work))
        answered = match_answers(batch.work, result)
        retry_later = [f for f in answered.failed if f[1] is not None and f[1].retryable]
        report.retry_later += len(retry_later)
        report.failed += self._settle(settled=answered.ok, refused=[f for f in answered.failed if f not in retry_later])
        report.created += answered.created
        report.updated += answered.updated
        self.metrics.inc("woo_writer_changes", answered.created, outcome="created")
        self.metrics.inc("woo_writer_changes", answered.updated, outcome="updated")
        tell()
        # The shop is refusing for now: nothing more is sent, the rest waits for the next flush.
        return Outcome(stop=bool(retry_later), pressure=any(is_pressure(error) for _, error in answered.failed))

    def _prime_products(self) -> bool:
        """Fills the product cache from the shop while it is empty (the first flush ever); True if it did."""
        if self.store.has_products():
            return False
        self.store.store_known([KnownProduct(sku=product["sku"], product_id=int(product["id"]),
                                             written=shop_values(product))
                                for product in self.client.iter_products(params={"status": "any"})
                                if product.get("sku")])
        return True

    def _settle(self, *, settled: list[Settled], refused: list[tuple[PendingChange, Any]]) -> int:
        """Records written values and clears pending rows; counts attempts of refused items.
        Returns how many SKUs were marked failed for good."""
        refusals = []
        for pending, error in refused:
            attempts = pending.attempts + 1
            give_up = attempts >= self.max_item_attempts
            message = f"{type(error).__name__}: {error}" if error is not None else "no answer from the shop"
            if give_up:
                log.error("woo-writer: SKU %s failed for good after %d attempt(s): %s", pending.sku, attempts,
                          message, extra={"sku": pending.sku, "attempt": attempts, "outcome": "failed"})
            # Growing pauses, so a refused item is not hammered every time the queue idles.
            refusals.append(Refusal(sku=pending.sku, attempts=attempts, give_up=give_up, error=message,
                                    retry_at=time.time() + self.item_retry_seconds * 2 ** (attempts - 1),
                                    forget_product=getattr(error, "code", None) == _INVALID_ID))
        self.store.settle(settled=settled, refused=refusals)
        gave_up = sum(refusal.give_up for refusal in refusals)
        if gave_up:
            self.metrics.inc("woo_writer_changes", gave_up, outcome="failed")
            log.error("woo-writer: %d SKU(s) failed for good; see the woo_pending table", gave_up)
        return gave_up

    def close(self) -> None:
        close_source = getattr(self.free_stock, "close", None)
        if close_source is not None:
            close_source()
        self.client.close()
        self.database.close()
