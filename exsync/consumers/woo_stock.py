"""The woo-writer's stock checks: asserting Exchequer's free stock over the shop's.

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
"""

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from exsync.bus import PermanentError
from exsync.consumers.errors import ConsumerError
from exsync.consumers.woo_payloads import stock_status
from exsync.exchequer.errors import ExchequerError
from exsync.metrics import Metrics
from exsync.state.products import KnownProduct, WriterStore
from exsync.woo.client import MAX_BATCH_ITEMS, MAX_PER_PAGE

if TYPE_CHECKING:
    # Annotations only: ExchequerFreeStock imports the database layer on first use.
    from exsync.exchequer.db import Database
    from exsync.exchequer.mapping import Mapping

__all__ = [
    "DEFAULT_LEASE_WAIT_SECONDS",
    "ExchequerFreeStock",
    "STOCK_FIELDS",
    "StockAuditReport",
    "StockChecks",
    "stock_moved",
]

log = logging.getLogger(__name__)

# What a stock read asks of the shop (`_fields`): a tenth of a full product's JSON.
STOCK_FIELDS = "id,sku,manage_stock,stock_quantity"
# WooCommerce reduces stock when an order enters one of these and puts it back when it leaves for
# pending or cancelled (refunds and failures may restock too): a change of side moves stock.
STOCK_HELD_STATUSES = ("processing", "on-hold", "completed")
STOCK_RELEASED_STATUSES = ("pending", "cancelled", "refunded", "failed")
DEFAULT_STOCK_CHECK_SKUS = 1000
DEFAULT_STOCK_RETRY_SECONDS = 60.0
DEFAULT_WORST_SKUS = 10
DEFAULT_LEASE_WAIT_SECONDS = 0.0
_DONE = object()


def stock_moved(previous_held: bool | None, status: str) -> tuple[bool, bool | None]:
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

    def note_drift(self, sku: str, shop_quantity: int | None, exchequer_quantity: int,
                   keep: int = DEFAULT_WORST_SKUS) -> None:
        self.drifted += 1
        self.worst.append((sku, shop_quantity, exchequer_quantity))
        self.worst.sort(key=lambda entry: (-abs((entry[1] or 0) - entry[2]), entry[0]))
        del self.worst[keep:]


def _stock_of(product: dict) -> tuple[int, int | None]:
    quantity = product.get("stock_quantity") if product.get("manage_stock") else None
    return int(product["id"]), None if quantity is None else int(quantity)


class StockChecks:
    """The woo-writer's stock checks and audit (a part of `WooWriter`, which provides the store,
    the client, Exchequer's `free_stock` and the lease: `writing()` and `_renew()`)."""

    store: WriterStore
    client: Any
    metrics: Metrics
    free_stock: Callable[[], dict[str, int]] | None
    clock: Callable[[], float]
    stock_check_delay_seconds: float
    stock_audit_interval_seconds: float | None
    _audit: Iterator[None] | None
    _audit_report: StockAuditReport | None
    _audit_due_at: float

    def writing(self, *, wait_seconds: float = DEFAULT_LEASE_WAIT_SECONDS) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def _renew(self) -> None:
        raise NotImplementedError

    # -- order events: marking SKUs whose shop stock moved -----------------------------------------

    def note_order(self, order: Any) -> list[str]:
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
        marked = self.store.note_order(order_id, lambda previous: stock_moved(previous, status), skus=skus,
                                       due_at=self.clock() + self.stock_check_delay_seconds, reason=f"order {status}")
        if not marked:
            return []
        log.info("woo-writer: order %s went %s; shop stock of %s to be checked", order_id, status, ", ".join(skus))
        return skus

    def mark(self, skus: Any, *, due_at: float | None = None, reason: str = "marked") -> None:
        """Marks SKUs for a stock check from `due_at` (now by default)."""
        self.store.mark(sorted({str(sku) for sku in skus if sku}), due_at=self.clock() if due_at is None else due_at,
                        reason=reason)

    def marked(self) -> dict[str, float]:
        """sku -> due time of every SKU waiting for a stock check."""
        return self.store.marked()

    def check_marked(self, *, now: float | None = None) -> StockAuditReport | None:
        """Reads the shop's stock of the marked SKUs that are due and corrects what differs from
        Exchequer's free stock; returns the StockAuditReport (None when nothing was due)."""
        due = self.store.due_marks(now=self.clock() if now is None else now, limit=DEFAULT_STOCK_CHECK_SKUS)
        if not due or self.free_stock is None:
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
        # Only the marks read are cleared: one set again meanwhile stays for its own check.
        self.store.settle_marks(due, failed=failed, retry_at=self.clock() + DEFAULT_STOCK_RETRY_SECONDS)
        report.seconds = time.monotonic() - started
        report.finished = True
        if report.drifted:
            log.warning("woo-writer: %d of %d checked SKU(s) differed from Exchequer's free stock, %d corrected: %s",
                        report.drifted, report.checked, report.corrected,
                        ", ".join(f"{sku} shop {shop_q} Exchequer {exq_q}" for sku, shop_q, exq_q in report.worst))
        return report

    # -- reading the shop's stock and correcting it -----------------------------------------------

    def _shop_stock(self, skus: list[str], report: StockAuditReport) -> dict[str, tuple[int, int | None]]:
        """sku -> (product id, the shop's stock, None when it does not manage it) for the SKUs found;
        products the writer knows by id are listed by `include`, the rest by `sku`, 100 a request."""
        found = {}
        by_id = {known.product_id: sku for sku, known in self.store.known(skus).items()}
        ids = sorted(by_id)
        for start in range(0, len(ids), MAX_PER_PAGE):
            chunk = ids[start:start + MAX_PER_PAGE]
            page = self.client.list_products_page(per_page=MAX_PER_PAGE, params={
                "include": ",".join(str(i) for i in chunk), "status": "any", "_fields": STOCK_FIELDS})
            report.requests += 1
            for product in page.items:
                if product.get("sku") == by_id.get(int(product.get("id") or 0)):
                    found[product["sku"]] = _stock_of(product)
        rest = [sku for sku in skus if sku not in found]
        for start in range(0, len(rest), MAX_PER_PAGE):
            names = rest[start:start + MAX_PER_PAGE]
            page = self.client.list_products_page(per_page=MAX_PER_PAGE, params={
                "sku": ",".join(names), "status": "any", "_fields": STOCK_FIELDS})
            report.requests += 1
            for product in page.items:
                if product.get("sku") in names:
                    found[product["sku"]] = _stock_of(product)
        return found

    def _correct(self, drift: dict[str, tuple[int, int]], report: StockAuditReport) -> set[str]:
        """Writes Exchequer's figure over the shop's (sku -> (product id, quantity)) in batches, under
        the lease, and records it as written; returns the SKUs the shop refused."""
        failed: set[str] = set()
        if not drift:
            return failed
        with self.writing():
            self.store.store_known([KnownProduct(sku=sku, product_id=product_id, written={})
                                    for sku, (product_id, _) in drift.items()])
            written = self.store.known(list(drift))
            operations = sorted(drift.items())
            for start in range(0, len(operations), MAX_BATCH_ITEMS):
                chunk = operations[start:start + MAX_BATCH_ITEMS]
                self._renew()
                result = self.client.batch_products(update=[
                    {"id": product_id, "manage_stock": True, "stock_quantity": quantity,
                     "stock_status": stock_status(quantity)} for _, (product_id, quantity) in chunk])
                report.requests += 1
                ok = []
                for (sku, (product_id, quantity)), answer in zip(chunk, result.items, strict=False):
                    if answer.ok:
                        before = written[sku].written if sku in written else {}
                        ok.append(KnownProduct(sku=sku, product_id=product_id, written=dict(before, quantity=quantity)))
                    else:
                        failed.add(sku)
                        log.warning("woo-writer: the shop refused the stock of %s: %s", sku, answer.error)
                failed.update(sku for sku, _ in chunk[len(result.items):])
                self.store.record_written(ok)
                report.corrected += len(ok)
                self.metrics.inc("woo_writer_changes", len(ok), outcome="corrected")
        report.failed += len(failed)
        return failed

    # -- the stock audit --------------------------------------------------------------------------

    def last_audit(self) -> float | None:
        """When the last stock audit finished (epoch seconds), or None."""
        return self.store.last_audit()

    def audit_stock(self, *, wait_seconds: float = DEFAULT_LEASE_WAIT_SECONDS) -> StockAuditReport:
        """Audits every product's stock in the shop against Exchequer's free stock at once and
        corrects the differences (`exsync audit stock`); returns the StockAuditReport."""
        if self.free_stock is None:
            raise ConsumerError("the stock audit needs Exchequer's free stock (no company database given)")
        report = StockAuditReport()
        with self.writing(wait_seconds=wait_seconds):
            for _ in self._audit_pages(report):
                pass
        return report

    def _audit_step(self) -> None:
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
            assert report is not None
            log.info("woo-writer: stock audit: %d product(s) checked, %d differed from Exchequer, %d corrected, "
                     "%d failed, %d web product(s) not in the shop, %d request(s) in %.1f s%s",
                     report.checked, report.drifted, report.corrected, report.failed, report.missing,
                     report.requests, report.seconds,
                     "; worst: " + ", ".join(f"{sku} shop {shop_q} Exchequer {exq_q}"
                                             for sku, shop_q, exq_q in report.worst) if report.worst else "")

    def _audit_pages(self, report: StockAuditReport) -> Iterator[None]:
        """The audit as a generator, one shop page a step: Exchequer is read once at the start, each
        page of the shop's products (ids ascending, `_fields` trimmed) compared, the differences
        corrected in batches of up to 100."""
        assert self.free_stock is not None
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
                product_id, quantity = _stock_of(product)
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
        self.store.record_audit(finished_at=finished_at, checked=report.checked, drifted=report.drifted,
                                corrected=report.corrected)


class ExchequerFreeStock:
    """Exchequer's web quantity of every web product (sku -> int), read as change capture computes
    it (`iter_exports`: free stock over the configured locations, could-build for kits); callable,
    on a connection of its own, opened on first use and again after a failure."""

    def __init__(self, *, dsn: str, mapping: "Mapping", locations: str | Iterable[str]) -> None:
        self.dsn = dsn
        self.mapping = mapping
        self.locations = locations
        self._database: "Database | None" = None

    def __call__(self) -> dict[str, int]:
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

    def close(self) -> None:
        if self._database is not None:
            self._database.close()
            self._database = None
