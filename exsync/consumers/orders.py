"""The orders consumer: every paid shop order in Exchequer exactly once, tracked from first sight.

Each `woo.order.*` envelope (webhook or reconciler) is first held in order tracking, unless an
older version than the one held (stale bodies never overwrite newer data). Whether the version
proves the order paid (see order_lifecycle) is recorded whichever version wins, and an order
once paid and not yet imported is imported from the newest body held, in whatever order its
states arrive: completed before processing, or only ever cancelled-after-payment. An order never
paid that leaves the lifecycle (cancelled, failed...) is recorded and never imported.

An order becomes a sales order, a quotation, or both (the rules decide), written through the
Exchequer layer with the order's external key, so redeliveries and concurrent deliveries give one
document. An order that cannot be imported yet (an unknown SKU) is parked in tracking with its
reason, the message is acknowledged, and `release_parked()` tries it again on idle ticks. After
import the consumer publishes `exchequer.order.imported`; an end in the shop after import
(cancelled, refunded, failed, trash) and refunds are published for the write-back consumer to
note. Exchequer documents are never deleted. Every announcement's CloudEvent id is derived from
what it announces, so a repeat (a concurrent duplicate, a redelivery after a crash) carries the
same id and consumers can drop it.
"""

import datetime
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from exsync.bus import EXCHEQUER_EXCHANGE, WOO_EXCHANGE, PermanentError, QueueSpec
from exsync.bus.consumer import Message
from exsync.bus.events import publish_event
from exsync.bus.protocols import ClosingEventPublisher
from exsync.consumers.connections import ExchequerConnections, fresh_after_failure
from exsync.consumers.customer_mapping import AccountFitter
from exsync.consumers.errors import OrderDataError
from exsync.consumers.order_documents import OrderDocuments, Parked, ShopRoles, order_key
from exsync.consumers.order_lifecycle import EXIT_STATUSES, Lifecycle
from exsync.consumers.order_mapping import OrderMapping, money, order_id_of
from exsync.errors import ExsyncError
from exsync.exchequer import (
    InvalidDocumentError,
    UnknownAccountError,
    UnknownStockItemError,
    mapping_for,
    options_for,
)
from exsync.exchequer.rules import StockRules
from exsync.metrics import Metrics
from exsync.schemas.sections import Config
from exsync.state.links import LinkStore
from exsync.state.orders import OrderStore, ShippingMethodStore, TrackedOrder, ensure_order_tables
from exsync.threads import PerThread
from exsync.woo import WooClient

__all__ = [
    "CANCELLED_STATUSES",
    "EVENT_ID_NAMESPACE",
    "EVENT_SOURCE",
    "OrdersConsumer",
    "QUEUE",
    "event_id",
    "order_key",
]

log = logging.getLogger(__name__)

EVENT_SOURCE = "exsync/orders"
# the shop's order events, as the receiver and the reconciler publish them
QUEUE = QueueSpec(name="orders.import", exchange=WOO_EXCHANGE, binding_keys=("order.*",))
# The shop statuses that end an order: after import each is announced once as order.cancelled.
CANCELLED_STATUSES = EXIT_STATUSES
DEFAULT_PARKED_BATCH = 100
# A shop customer's role read over REST is kept this long (no webhook fires for a role change).
DEFAULT_ROLE_CACHE_SECONDS = 300.0
# Fixed forever: changing it would change every announcement's id.
EVENT_ID_NAMESPACE = uuid.UUID("5d0f6a3e-2b9c-5c1e-9f7a-0e6b0c1d2a40")


def event_id(event_type: str, order_id: int, references: Iterable[str], *extra: object) -> str:
    """The CloudEvent id of an announcement, derived from what it announces (a UUID 5), so every
    repeat of one announcement carries the same id and its consumers can deduplicate."""
    name = "|".join([event_type, str(int(order_id)), ",".join(references), *(str(part) for part in extra)])
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))

class _Connections(ExchequerConnections):
    """One thread's connections, with the order pipeline's stores and caches over them."""

    def __init__(self, **connections: Any) -> None:
        super().__init__(**connections)
        self.orders = OrderStore(database=self.state)
        self.shipping = ShippingMethodStore(database=self.state)
        self.links = LinkStore(database=self.state)
        self.stock_rules: StockRules | None = None
        # (when read, titles by shipping method instance id)
        self.shipping_titles: tuple[float, dict[str, str]] | None = None
        self.guest_account: str | None = None

class OrdersConsumer:
    """Handles `woo.order.*` envelopes; safe to call from several threads (each gets its connections).

    `shop` (a WooClient, optional) is read for a customer's role when neither the order nor the
    customer sync's link says it.
    """

    thread_safe = True

    def __init__(self, *, exchequer_dsn: str, config: Config, publisher: ClosingEventPublisher,
                 state_dsn: str | None = None, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.monotonic, shop: WooClient | None = None,
                 role_cache_seconds: float = DEFAULT_ROLE_CACHE_SECONDS) -> None:
        self.exchequer_dsn = exchequer_dsn
        self.state_dsn = state_dsn
        self.options = config.orders
        self.lifecycle = Lifecycle(import_statuses=self.options.import_statuses)
        self.exchequer_options = options_for(config)
        self.names_mapping = mapping_for(config)
        self._fit = AccountFitter(mapping=self.names_mapping)
        self.match_by_email = config.customers.match_by_email
        self.wholesale_role = config.customers.wholesale_role
        self.wholesale_band = config.customers.wholesale_band
        self.mapping = OrderMapping(vat=self.options.vat, shipping=self.options.shipping,
                                    rounding=self.options.rounding, vat_rates=self.exchequer_options.vat_codes)
        self.publisher = publisher
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._per_thread = PerThread(
            make=lambda: _Connections(exchequer_dsn=exchequer_dsn, state_dsn=state_dsn, mapping=self.names_mapping,
                                      options=self.exchequer_options, metrics=self.metrics),
            close=_Connections.close)
        self._last_release = clock()
        self.shop = shop
        self._roles = ShopRoles(client=shop, wholesale_role=self.wholesale_role, cache_seconds=role_cache_seconds,
                                clock=clock)
        self._builder = OrderDocuments(
            options=self.options, mapping=self.mapping, exchequer_options=self.exchequer_options, fit=self._fit,
            roles=self._roles, clock=clock, match_by_email=self.match_by_email,
            wholesale_role=self.wholesale_role, wholesale_band=self.wholesale_band)
        if self.options.credit_note_on_refund:
            log.warning("orders.credit_note_on_refund: the Exchequer write layer cannot create credit notes "
                        "(SCR); refunds are recorded and noted in the shop only")
        ensure_order_tables(self._connections().state)

    # --- connections

    def _connections(self) -> _Connections:
        return self._per_thread.get()

    def close(self) -> None:
        self._per_thread.close()
        self.publisher.close()
        if self.shop is not None:
            self.shop.close()

    # --- the consumer interface

    def handle(self, message: Message) -> None:
        with fresh_after_failure(self._per_thread):
            assert message.event is not None  # the Worker parks a body that is not a JSON object
            self.handle_event(message.event)

    def on_idle(self) -> None:
        """Retries parked orders every `orders.parked_retry_seconds` while the queue is quiet."""
        if self.clock() - self._last_release >= self.options.parked_retry_seconds:
            self._last_release = self.clock()
            try:
                self.release_parked()
            except ExsyncError as error:
                # The consume loop must outlive a database outage; the next idle tick tries again.
                log.warning("retrying parked orders failed: %s", error)
                self._per_thread.discard()

    def handle_event(self, event: dict[str, Any]) -> str:
        """Applies one `woo.order.*` envelope; returns what became of it (for logs and tests)."""
        data = event.get("data")
        if not isinstance(data, dict) or "id" not in data:
            raise PermanentError("an order event needs a data object with an id")
        # OrderDataError is permanent: a body with no usable id goes to the dead queue at once.
        order_id = order_id_of(data)
        if event.get("type") == "woo.order.deleted" or set(data) == {"id"}:
            return self._deleted(order_id)
        outcome = self.process(data)
        if outcome == "imported":
            self._observe_lag(event)
        return outcome

    def _observe_lag(self, event: dict[str, Any]) -> None:
        """Webhook (the envelope's time, set when the delivery was stored) to sales order in Exchequer."""
        try:
            received = datetime.datetime.fromisoformat(str(event.get("time")))
        except ValueError:
            return
        if received.tzinfo is not None:
            lag_seconds = datetime.datetime.now(datetime.timezone.utc).timestamp() - received.timestamp()
            self.metrics.observe("order_import_lag_seconds", max(0.0, lag_seconds))

    # --- the work

    def _count(self, outcome: str) -> str:
        self.metrics.inc("orders_processed", outcome=outcome)
        return outcome

    def _deleted(self, order_id: int) -> str:
        self._connections().orders.record_deleted(order_id)
        return self._count("deleted")

    def process(self, order: dict[str, Any]) -> str:
        """Tracks one order body and imports the order once it has been paid (see the module's text)."""
        connections = self._connections()
        row, accepted = connections.orders.record_version(order, paid=self.lifecycle.shows_payment(order))
        if row.refs:
            if not accepted:
                return self._stale(row, order)
            self._after_import(connections, row, order)
            return self._count("already_imported")
        if not accepted:
            # Older than the body held, so it changes nothing held; but if it (or any version) proved
            # the order paid, the order is imported from the newest body held. A parked order waits
            # for its retry; a deleted one is gone from the shop.
            if not row.paid_at or row.import_state in ("parked", "deleted") or row.body is None:
                return self._stale(row, order)
            log.info("order %s: an older version (%s) shows it paid; importing the newest held (%s)",
                     row.order_id, order.get("date_modified_gmt"), row.date_modified_gmt)
            return self._import(connections, row.order_id, row.body)
        status = str(order.get("status") or "")
        if row.paid_at:
            return self._import(connections, row.order_id, order)
        if self.lifecycle.ends(status):
            connections.orders.mark(row.order_id, "cancelled", f"{status} in the shop before payment; not imported")
            return self._count("not_imported")
        connections.orders.mark(row.order_id, "received", f"status {status!r} is not paid yet; not imported")
        return self._count("waiting")

    def _stale(self, row: TrackedOrder, order: dict[str, Any]) -> str:
        log.info("order %s: version %s is older than %s held; ignored", row.order_id,
                 order.get("date_modified_gmt"), row.date_modified_gmt)
        return self._count("stale")

    def _import(self, connections: _Connections, order_id: int, order: dict[str, Any]) -> str:
        # the import's duration is observed for imports only: a parked order is not timed
        with self.metrics.timed("order_import_duration_seconds", observe_errors=False) as timing:
            try:
                documents = self._builder.documents(connections, order_id, order)
                references = [connections.backend.create_sales_document(document).reference
                              for document in documents]
            except UnknownStockItemError as error:
                timing.skip()
                # The writer (or a free-stock read) met an item that is not there: name the SKUs.
                unknown = self._builder.unknown_skus(connections, order)
                return self._park(connections, order_id,
                                  f"unknown SKU {', '.join(unknown)}" if unknown else str(error))
            except (InvalidDocumentError, UnknownAccountError, OrderDataError) as error:
                timing.skip()
                # OrderDataError: the body or its money is refused (permanently); parked with the reason.
                return self._park(connections, order_id, str(error))
            except Parked as parked:
                timing.skip()
                return self._park(connections, order_id, str(parked))
            # Published before it is recorded: a crash in between finds the documents by their keys
            # and publishes again, with the same event id (the write-back writes each note once).
            self._publish("order.imported", order_id, references, {
                "woo_order_id": order_id, "number": str(order.get("number") or order_id), "references": references})
            connections.orders.mark_imported(order_id, references)
        log.info("order %s imported as %s", order_id, ", ".join(references),
                 extra={"order_id": order_id, "outcome": "imported"})
        if order.get("refunds") or str(order.get("status") or "") in CANCELLED_STATUSES:
            tracked = connections.orders.get(order_id)
            if tracked is not None:  # always: the row was just marked imported, and tracked rows stay
                self._after_import(connections, tracked, order)
        return self._count("imported")

    def _park(self, connections: _Connections, order_id: int, reason: str) -> str:
        connections.orders.mark(order_id, "parked", reason)
        log.warning("order %s parked: %s", order_id, reason, extra={"order_id": order_id, "outcome": "parked"})
        return self._count("parked")

    def _after_import(self, connections: _Connections, row: TrackedOrder, order: dict[str, Any]) -> None:
        """Publishes what the write-back consumer has not been told yet: the order's end in the shop
        (cancelled, refunded, failed, trash: its documents stay for a person), new refunds."""
        status = str(order.get("status") or "")
        if status in CANCELLED_STATUSES and not row.cancel_published:
            self._publish("order.cancelled", row.order_id, row.refs, {
                "woo_order_id": row.order_id, "status": status, "references": list(row.refs)})
            if connections.orders.mark_cancel_published(row.order_id):
                self.metrics.inc("orders_cancelled_after_import")
                log.warning("order %s %s in the shop after import; %s kept for review", row.order_id, status,
                            ", ".join(row.refs))
        refunds = [refund for refund in order.get("refunds") or []
                   if isinstance(refund, dict) and str(refund.get("id")) not in row.refund_ids]
        if refunds:
            ids = sorted(str(refund.get("id")) for refund in refunds)
            self._publish("order.refunded", row.order_id, row.refs, {
                "woo_order_id": row.order_id, "references": list(row.refs),
                "credit_note": False if self.options.credit_note_on_refund else None,
                "refunds": [{"id": refund.get("id"), "reason": str(refund.get("reason") or ""),
                             "amount": str(-money(refund.get("total")))} for refund in refunds]}, *ids)
            connections.orders.add_refund_ids(row.order_id, [refund.get("id") for refund in refunds])

    def _publish(self, routing_key: str, order_id: int, references: Iterable[str], data: dict[str, Any],
                 *extra: object) -> None:
        event_type = f"exchequer.{routing_key}"
        publish_event(self.publisher, exchange=EXCHEQUER_EXCHANGE, routing_key=routing_key, type=event_type,
                      source=EVENT_SOURCE, subject=str(order_id), data=data,
                      id=event_id(event_type, order_id, references, *extra))

    # --- parked orders

    def release_parked(self, limit: int = DEFAULT_PARKED_BATCH) -> int:
        """Tries every parked order again from the body held; returns how many were imported."""
        connections = self._connections()
        imported = 0
        for row in connections.orders.parked(limit):
            if row.body is None:
                continue
            try:
                outcome = self._import(connections, row.order_id, row.body)
            except OrderDataError as error:
                log.warning("order %s stays parked: %s", row.order_id, error,
                            extra={"order_id": row.order_id, "outcome": "parked"})
                continue
            imported += outcome == "imported"
        return imported
