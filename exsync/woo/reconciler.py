"""The order reconciler: polls what changed on the shop and publishes it as the webhook receiver would.

WooCommerce never retries a failed delivery and disables webhooks that keep failing, so a receiver
outage loses events. Every `interval_seconds` this lists orders modified since a watermark (minus an
overlap, since WooCommerce's times have one-second resolution and saves can commit late) and
customers likewise, and publishes each on exchange `woo` as `order.updated` / `customer.updated`
with the REST body as data; consumers deduplicate on id plus `date_modified_gmt`, so repeats are
harmless. The watermark only moves after the broker confirmed everything up to it.

wc/v3 has no `modified_after` for customers, so the customer pass reads every customer (`role=all`)
and keeps those modified since the watermark.
"""

import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from exsync.bus import WOO_EXCHANGE
from exsync.bus.events import woo_event
from exsync.bus.protocols import EventPublisher
from exsync.errors import ExsyncError
from exsync.metrics import Metrics
from exsync.schemas.config import DEFAULT_CUSTOMER_ROLES
from exsync.schemas.config import DEFAULT_RECONCILE_INITIAL_LOOKBACK_SECONDS as DEFAULT_INITIAL_LOOKBACK_SECONDS
from exsync.schemas.config import DEFAULT_RECONCILE_INTERVAL_SECONDS as DEFAULT_INTERVAL_SECONDS
from exsync.schemas.config import DEFAULT_RECONCILE_OVERLAP_SECONDS as DEFAULT_OVERLAP_SECONDS
from exsync.woo.client import WooClient
from exsync.woo.dates import parse_wc_gmt, utc_now
from exsync.woo.errors import WooError
from exsync.woo.registrar import WebhookRegistrar

__all__ = [
    "DEFAULT_CUSTOMER_ROLES",
    "DEFAULT_INITIAL_LOOKBACK_SECONDS",
    "DEFAULT_INTERVAL_SECONDS",
    "DEFAULT_OVERLAP_SECONDS",
    "ReconcileReport",
    "Reconciler",
]

log = logging.getLogger(__name__)

# Webhooks are never sent for orders in draft states, so neither does the reconciler publish them.
UNDELIVERED_ORDER_STATUSES = ("checkout-draft", "auto-draft")


class _Watermarks(Protocol):
    """Where the watermarks are kept: a StateStore, or exsync.state's StateValues (the state database)."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReconcileReport:
    """What one pass published, and the watermarks it left (ISO UTC, or None before the first)."""

    orders_published: int
    customers_published: int
    parked: int
    orders_watermark: str | None
    customers_watermark: str | None


class Reconciler:
    """Publishes orders and customers modified since its stored watermarks."""

    def __init__(self, *, client: WooClient, publisher: EventPublisher, store: _Watermarks,
                 overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
                 initial_lookback_seconds: float = DEFAULT_INITIAL_LOOKBACK_SECONDS,
                 customer_roles: Iterable[str] = DEFAULT_CUSTOMER_ROLES, registrar: WebhookRegistrar | None = None,
                 metrics: Metrics | None = None, clock: Callable[[], datetime.datetime] = utc_now,
                 on_pass: Callable[[bool, str], object] | None = None) -> None:
        self.client = client
        # on_pass(ok, detail) after every pass: where `exsync status` learns of it (a RunLog's record).
        self.on_pass = on_pass
        self.publisher = publisher
        self.store = store
        self.overlap = datetime.timedelta(seconds=overlap_seconds)
        self.initial_lookback = datetime.timedelta(seconds=initial_lookback_seconds)
        self.customer_roles = tuple(customer_roles)
        self.registrar = registrar
        self.metrics = metrics or Metrics()
        self._clock = clock
        self.source = f"exsync-reconciler:{client.url}"

    def _key(self, resource: str) -> str:
        return f"woo.reconciler.{resource}:{self.client.url}"

    def watermark(self, resource: str) -> datetime.datetime | None:
        """The newest `date_modified_gmt` confirmed on the bus for `orders` or `customers`."""
        stored = self.store.get(self._key(resource))
        return parse_wc_gmt(stored) if stored else None

    def _save_watermark(self, resource: str, value: datetime.datetime) -> None:
        self.store.set(self._key(resource), value.isoformat())
        self.metrics.set("woo_reconciler_watermark_timestamp_seconds", value.timestamp(), resource=resource)

    def _since(self, watermark: datetime.datetime | None) -> datetime.datetime:
        if watermark is None:
            return self._clock() - self.initial_lookback
        return watermark - self.overlap

    def _publish(self, resource: str, body: dict[str, Any]) -> bool:
        """Publishes one REST body the way the webhook receiver publishes a delivery; True if parked."""
        routed = woo_event(topic=f"{resource}.updated", payload=body, source=self.source)
        if routed.parked:
            log.warning("%s %s from the shop failed its schema, parked: %s", resource, body.get("id"), routed.errors)
        self.publisher.publish(exchange=WOO_EXCHANGE, routing_key=routed.routing_key, event=routed.event)
        if routed.parked:
            return True
        self.metrics.inc("woo_reconciler_published", resource=resource)
        return False

    def reconcile_orders(self) -> tuple[int, int]:
        """Publishes orders modified since the watermark; returns (published, parked)."""
        newest = self.watermark("orders")
        published = parked = 0
        for batch in self.client.iter_modified_orders(modified_after=self._since(newest)):
            for order in batch:
                if order.get("status") in UNDELIVERED_ORDER_STATUSES:
                    continue
                parked += self._publish("order", order)
                published += 1
                modified = parse_wc_gmt(order.get("date_modified_gmt"))
                if modified is not None and (newest is None or modified > newest):
                    newest = modified
            # Oldest first, so everything up to `newest` is confirmed once the batch is done.
            if newest is not None and newest != self.watermark("orders"):
                self._save_watermark("orders", newest)
        return published - parked, parked

    def reconcile_customers(self) -> tuple[int, int]:
        """Publishes customers modified since the watermark (read in full: wc/v3 cannot filter them)."""
        watermark = self.watermark("customers")
        since = self._since(watermark)
        newest = watermark
        published = parked = 0
        for customer in self.client.iter_customers(role="all", params={"orderby": "id", "order": "asc"}):
            if self.customer_roles and customer.get("role") not in self.customer_roles:
                continue
            modified = parse_wc_gmt(customer.get("date_modified_gmt") or customer.get("date_created_gmt"))
            if modified is None or modified <= since:
                continue
            parked += self._publish("customer", customer)
            published += 1
            if newest is None or modified > newest:
                newest = modified
        if newest is not None and newest != watermark:
            self._save_watermark("customers", newest)
        return published - parked, parked

    def run_once(self) -> ReconcileReport:
        """One pass over orders then customers; raises WooError, BusError or the store's error and keeps
        the watermark."""
        started = time.monotonic()
        outcome, detail = "error", ""
        try:
            orders, orders_parked = self.reconcile_orders()
            customers, customers_parked = self.reconcile_customers()
            outcome = "ok"
            self.metrics.set("reconcile_last_success_timestamp_seconds", time.time())
        except Exception as error:
            detail = f"{type(error).__name__}: {error}"
            raise
        finally:
            self.metrics.observe("woo_reconciler_run_duration_seconds", time.monotonic() - started, outcome=outcome)
            self._passed(outcome == "ok", detail)
        report = ReconcileReport(
            orders_published=orders, customers_published=customers, parked=orders_parked + customers_parked,
            orders_watermark=self.store.get(self._key("orders")),
            customers_watermark=self.store.get(self._key("customers")))
        log.info("reconciled: %d order(s), %d customer(s) published, %d parked", report.orders_published,
                 report.customers_published, report.parked)
        return report

    def _passed(self, ok: bool, detail: str) -> None:
        if self.on_pass is None:
            return
        try:
            self.on_pass(ok, detail)
        except ExsyncError as error:
            log.warning("reconciler: cannot record the pass: %s", error)

    def run_forever(self, *, interval_seconds: float = DEFAULT_INTERVAL_SECONDS, stop: threading.Event | None = None,
                    heartbeat: Callable[..., None] | None = None) -> None:
        """Reconciles (and repairs the webhooks, with a registrar) every interval until `stop` is set.

        `heartbeat` (an `exsync.health.Liveness.beat`) hears of each pass's start and each wait."""
        stop = stop or threading.Event()
        heartbeat = heartbeat or (lambda **_: None)
        while not stop.is_set():
            heartbeat()
            try:
                self.run_once()
            except ExsyncError as error:  # the shop, the broker or the state database: try again next pass
                log.error("reconcile pass failed, watermark kept: %s", error)
            if self.registrar is not None:
                try:
                    self.registrar.sync()
                except WooError as error:
                    log.error("webhook registrar failed: %s", error)
            heartbeat(waiting_seconds=interval_seconds)
            stop.wait(interval_seconds)
