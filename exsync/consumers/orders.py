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

import dataclasses
import datetime
import logging
import threading
import time
import uuid

from exsync.bus import EXCHEQUER_EXCHANGE, PermanentError, SharedPublisher, Topology
from exsync.bus.events import publish_event
from exsync.consumers.connections import ExchequerConnections, fresh_after_failure
from exsync.consumers.customer_accounts import account_for_shop_customer
from exsync.consumers.customer_mapping import AccountFitter, billing_details
from exsync.consumers.customers import LinkStore
from exsync.consumers.errors import OrderDataError
from exsync.consumers.gauges import track_state_gauges
from exsync.consumers.order_lifecycle import EXIT_STATUSES, Lifecycle
from exsync.consumers.order_mapping import PRODUCT, OrderMapping, money, order_id_of
from exsync.consumers.order_rules import CUSTOMER, OrderFacts, choose, customer_role, order_meta
from exsync.consumers.state import OrderStore, ShippingMethodStore, ensure_tables
from exsync.errors import ExsyncError
from exsync.exchequer import (
    AccountDetails,
    InvalidDocumentError,
    SalesDocument,
    UnknownAccountError,
    UnknownStockItemError,
    mapping_for,
    options_for,
)
from exsync.metrics import Metrics
from exsync.threads import PerThread
from exsync.woo import WooClient, WooError, WooNotFound

__all__ = [
    "CANCELLED_STATUSES",
    "EVENT_ID_NAMESPACE",
    "EVENT_SOURCE",
    "OrdersConsumer",
    "build",
    "event_id",
    "order_key",
]

log = logging.getLogger(__name__)

EVENT_SOURCE = "exsync/orders"
# The shop statuses that end an order: after import each is announced once as order.cancelled.
CANCELLED_STATUSES = EXIT_STATUSES
ORDER_KEY_PREFIX = "woo-order:"
QUOTE_KEY_SUFFIX = ":quote"
GUEST_ACCOUNT_COMPANY = "Web sales (guest orders)"
DEFAULT_PARKED_BATCH = 100
SHIPPING_TITLES_SECONDS = 60.0
# A shop customer's role read over REST is kept this long (no webhook fires for a role change).
DEFAULT_ROLE_CACHE_SECONDS = 300.0
DEFAULT_ROLE_CACHE_ENTRIES = 10_000
# Fixed forever: changing it would change every announcement's id.
EVENT_ID_NAMESPACE = uuid.UUID("5d0f6a3e-2b9c-5c1e-9f7a-0e6b0c1d2a40")


def order_key(order_id):
    """The external key of the document an order becomes (its quotation part adds `:quote`)."""
    return f"{ORDER_KEY_PREFIX}{int(order_id)}"


def event_id(event_type: str, order_id: int, references, *extra) -> str:
    """The CloudEvent id of an announcement, derived from what it announces (a UUID 5), so every
    repeat of one announcement carries the same id and its consumers can deduplicate."""
    name = "|".join([event_type, str(int(order_id)), ",".join(references), *(str(part) for part in extra)])
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


class _Parked(Exception):
    """The order cannot be imported yet; its reason goes in tracking (internal control flow)."""


class _Connections(ExchequerConnections):
    """One thread's connections, with the order pipeline's stores and caches over them."""

    def __init__(self, **connections):
        super().__init__(**connections)
        self.orders = OrderStore(database=self.state)
        self.shipping = ShippingMethodStore(database=self.state)
        self.links = LinkStore(database=self.state)
        self.stock_rules = None
        self.shipping_titles = None
        self.guest_account = None


class _ShopRoles:
    """A registered customer's role when the order's meta does not name it: as the customer sync
    last agreed it with the shop (the link's snapshot), else one read of the shop customer, kept
    `cache_seconds` (thread-safe)."""

    def __init__(self, *, client, wholesale_role, cache_seconds, clock, entries=DEFAULT_ROLE_CACHE_ENTRIES):
        self.client = client
        self.wholesale_role = wholesale_role
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.entries = entries
        self._cache = {}
        self._lock = threading.Lock()

    def role(self, links, customer_id):
        link = links.get(customer_id)
        if link is not None and link.snapshot and "wholesale" in link.snapshot:
            return self.wholesale_role if link.snapshot["wholesale"] else CUSTOMER
        if self.client is None:
            return CUSTOMER
        now = self.clock()
        with self._lock:
            cached = self._cache.get(customer_id)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        try:
            role = str(self.client.get_customer(customer_id).get("role") or CUSTOMER)
        except WooNotFound:
            role = CUSTOMER  # deleted in the shop: an ordinary customer as far as rules go
        except WooError as error:
            # A rule on the role cannot be decided: wait (parked, retried) rather than guess.
            raise _Parked(f"the role of shop customer {customer_id} is unknown: {error}") from error
        with self._lock:
            if len(self._cache) >= self.entries:
                self._cache.clear()
            self._cache[customer_id] = (role, now)
        return role


class OrdersConsumer:
    """Handles `woo.order.*` envelopes; safe to call from several threads (each gets its connections).

    `shop` (a WooClient, optional) is read for a customer's role when neither the order nor the
    customer sync's link says it.
    """

    thread_safe = True

    def __init__(self, *, exchequer_dsn, config, publisher, state_dsn=None, metrics=None, clock=time.monotonic,
                 shop=None, role_cache_seconds=DEFAULT_ROLE_CACHE_SECONDS):
        self.exchequer_dsn = exchequer_dsn
        self.state_dsn = state_dsn
        self.options = config["orders"]
        self.lifecycle = Lifecycle(import_statuses=self.options["import_statuses"])
        self.exchequer_options = options_for(config)
        self.names_mapping = mapping_for(config)
        self._fit = AccountFitter(mapping=self.names_mapping)
        self.match_by_email = config["customers"]["match_by_email"]
        self.wholesale_role = config["customers"]["wholesale_role"]
        self.wholesale_band = config["customers"]["wholesale_band"]
        self.mapping = OrderMapping(vat=self.options["vat"], shipping=self.options["shipping"],
                                    rounding=self.options["rounding"], vat_rates=self.exchequer_options.vat_codes)
        self.publisher = publisher
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._per_thread = PerThread(
            make=lambda: _Connections(exchequer_dsn=exchequer_dsn, state_dsn=state_dsn, mapping=self.names_mapping,
                                      options=self.exchequer_options, metrics=self.metrics),
            close=_Connections.close)
        self._last_release = clock()
        self.shop = shop
        self._roles = _ShopRoles(client=shop, wholesale_role=self.wholesale_role, cache_seconds=role_cache_seconds,
                                 clock=clock)
        if self.options["credit_note_on_refund"]:
            log.warning("orders.credit_note_on_refund: the Exchequer write layer cannot create credit notes "
                        "(SCR); refunds are recorded and noted in the shop only")
        ensure_tables(self._connections().state)

    # --- connections

    def _connections(self):
        return self._per_thread.get()

    def close(self):
        self._per_thread.close()
        self.publisher.close()
        if self.shop is not None:
            self.shop.close()

    # --- the consumer interface

    def handle(self, message):
        with fresh_after_failure(self._per_thread):
            self.handle_event(message.event)

    def on_idle(self):
        """Retries parked orders every `orders.parked_retry_seconds` while the queue is quiet."""
        if self.clock() - self._last_release >= self.options["parked_retry_seconds"]:
            self._last_release = self.clock()
            try:
                self.release_parked()
            except ExsyncError as error:
                # The consume loop must outlive a database outage; the next idle tick tries again.
                log.warning("retrying parked orders failed: %s", error)
                self._per_thread.discard()

    def handle_event(self, event):
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

    def _observe_lag(self, event):
        """Webhook (the envelope's time, set when the delivery was stored) to sales order in Exchequer."""
        try:
            received = datetime.datetime.fromisoformat(str(event.get("time")))
        except ValueError:
            return
        if received.tzinfo is not None:
            lag_seconds = datetime.datetime.now(datetime.timezone.utc).timestamp() - received.timestamp()
            self.metrics.observe("order_import_lag_seconds", max(0.0, lag_seconds))

    # --- the work

    def _count(self, outcome):
        self.metrics.inc("orders_processed", outcome=outcome)
        return outcome

    def _deleted(self, order_id):
        self._connections().orders.record_deleted(order_id)
        return self._count("deleted")

    def process(self, order):
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

    def _stale(self, row, order):
        log.info("order %s: version %s is older than %s held; ignored", row.order_id,
                 order.get("date_modified_gmt"), row.date_modified_gmt)
        return self._count("stale")

    def _import(self, connections, order_id, order):
        started = time.perf_counter()
        try:
            documents = self._documents(connections, order_id, order)
            references = [connections.backend.create_sales_document(document).reference for document in documents]
        except UnknownStockItemError as error:
            # The writer (or a free-stock read) met an item that is not there: name the SKUs.
            unknown = self._unknown_skus(connections, order)
            return self._park(connections, order_id, f"unknown SKU {', '.join(unknown)}" if unknown else str(error))
        except (InvalidDocumentError, UnknownAccountError, OrderDataError) as error:
            # OrderDataError: the body or its money is refused (permanently); parked with the reason.
            return self._park(connections, order_id, str(error))
        except _Parked as parked:
            return self._park(connections, order_id, str(parked))
        # Published before it is recorded: a crash in between finds the documents by their keys
        # and publishes again, with the same event id (the write-back writes each note once).
        self._publish("order.imported", order_id, references, {
            "woo_order_id": order_id, "number": str(order.get("number") or order_id), "references": references})
        connections.orders.mark_imported(order_id, references)
        self.metrics.observe("order_import_duration_seconds", time.perf_counter() - started)
        log.info("order %s imported as %s", order_id, ", ".join(references),
                 extra={"order_id": order_id, "outcome": "imported"})
        if order.get("refunds") or str(order.get("status") or "") in CANCELLED_STATUSES:
            self._after_import(connections, connections.orders.get(order_id), order)
        return self._count("imported")

    def _park(self, connections, order_id, reason):
        connections.orders.mark(order_id, "parked", reason)
        log.warning("order %s parked: %s", order_id, reason, extra={"order_id": order_id, "outcome": "parked"})
        return self._count("parked")

    def _after_import(self, connections, row, order):
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
                "credit_note": False if self.options["credit_note_on_refund"] else None,
                "refunds": [{"id": refund.get("id"), "reason": str(refund.get("reason") or ""),
                             "amount": str(-money(refund.get("total")))} for refund in refunds]}, *ids)
            connections.orders.add_refund_ids(row.order_id, [refund.get("id") for refund in refunds])

    def _publish(self, routing_key, order_id, references, data, *extra):
        event_type = f"exchequer.{routing_key}"
        publish_event(self.publisher, exchange=EXCHEQUER_EXCHANGE, routing_key=routing_key, type=event_type,
                      source=EVENT_SOURCE, subject=str(order_id), data=data,
                      id=event_id(event_type, order_id, references, *extra))

    # --- documents

    @staticmethod
    def _require_skus(mapped):
        """_Parked names the first product line without a SKU; whether each SKU is a stock item the
        writer checks inside its transaction (UnknownStockItemError), saving a read per order."""
        for number, line in enumerate(mapped, start=1):
            if line.kind == PRODUCT and not line.stock_code:
                raise _Parked(f"line {number} ({line.description}) has no SKU")

    def _unknown_skus(self, connections, order):
        """The order's SKUs that are no stock item, in line order."""
        codes = list(dict.fromkeys(str(item.get("sku") or "").strip() for item in order.get("line_items") or []))
        codes = [code for code in codes if code]
        if not codes:
            return []
        marks = ", ".join("?" for _ in codes)
        with connections.exchequer.transaction(write=False) as cursor:
            known = {row[0] for row in cursor.run(
                f"SELECT {{stock.code}} FROM {{stock}} WHERE {{stock.code}} IN ({marks})", codes).fetchall()}
        return [code for code in codes if code not in known]

    def _in_free_stock(self, connections, lines):
        """Whether each product line is covered by free stock, lines of one item counted together."""
        if connections.stock_rules is None:
            connections.stock_rules = connections.reader.stock_rules(self.exchequer_options.locations)
        left = {}
        for line in lines:
            if line.stock_code not in left:
                left[line.stock_code] = connections.stock_rules.free(connections.reader.stock_item(line.stock_code))
        covered = []
        for line in lines:
            enough = left[line.stock_code] >= float(line.qty)
            left[line.stock_code] -= float(line.qty)
            covered.append(enough)
        return covered

    def _plan(self, connections, order_id, order, mapped, role):
        """"SOR", "SQU", or "split:<indexes of product lines in free stock>".

        A plan that depended on stock is stored first (the first stored wins), so a retry after a
        crash writes the same documents even if stock has moved since.
        """
        products = [line for line in mapped if line.kind == PRODUCT]
        covered = None

        def all_in_stock():
            nonlocal covered
            if covered is None:
                covered = self._in_free_stock(connections, products)
            return all(covered)

        facts = OrderFacts(
            payment_method=str(order.get("payment_method") or ""),
            role=role,
            total=money(order.get("total")),
            shipping_methods=frozenset(str(value) for line in order.get("shipping_lines") or []
                                       for value in (line.get("method_id"), line.get("instance_id")) if value),
            status=str(order.get("status") or ""), meta=order_meta(order), all_in_stock=all_in_stock)
        decision = choose(self.options["rules"], facts)
        if decision.action != "split":
            plan = decision.action
        else:
            all_in_stock()
            plan = "split:" + ",".join(str(index) for index, ok in enumerate(covered) if ok)
        if covered is None:
            return plan
        return connections.orders.claim_plan(order_id, plan)

    def _documents(self, connections, order_id, order):
        mapped = self.mapping.lines(order, shipping_titles=self._shipping_titles(connections))
        if not mapped:
            raise _Parked("the order has no lines to import")
        self._require_skus(mapped)
        role = self._role(connections, order)
        plan = self._plan(connections, order_id, order, mapped, role)
        account = self._account(connections, order, role)
        products = [line for line in mapped if line.kind == PRODUCT]
        others = [line for line in mapped if line.kind != PRODUCT]
        if plan.startswith("split:"):
            chosen = {int(index) for index in plan[len("split:"):].split(",") if index}
            ordered = [line for index, line in enumerate(products) if index in chosen]
            quoted = [line for index, line in enumerate(products) if index not in chosen]
        elif plan == "SQU":
            ordered, quoted = [], products
        else:
            ordered, quoted = products, []
        # Carriage, fees and the rounding go with the sales order when there is one.
        parts = []
        if ordered or (not quoted and plan != "SQU"):
            parts.append(("SOR", order_key(order_id), ordered + others))
            if quoted:
                parts.append(("SQU", order_key(order_id) + QUOTE_KEY_SUFFIX, quoted))
        else:
            parts.append(("SQU", order_key(order_id), quoted + others))
        total = money(order.get("total"))
        documents = []
        head_lines = None
        for position, (doc_type, key, lines) in enumerate(parts):
            if position == 0:
                head_lines = lines
                continue
            document_lines = tuple(line.document_line() for line in lines)
            total -= self.mapping.total_of(document_lines)
            documents.append(self._document(order, doc_type=doc_type, key=key, account=account, lines=document_lines))
        head_type, head_key, _ = parts[0]
        documents.insert(0, self._document(order, doc_type=head_type, key=head_key, account=account,
                                           lines=self.mapping.document_lines(head_lines, target_total=total)))
        return documents

    def _shipping_titles(self, connections):
        """Imported shipping method titles by instance id, read again every SHIPPING_TITLES_SECONDS."""
        if connections.shipping_titles is None or self.clock() - connections.shipping_titles[0] >= \
                SHIPPING_TITLES_SECONDS:
            titles = {method.instance_id: method.title for method in connections.shipping.all()}
            connections.shipping_titles = (self.clock(), titles)
        return connections.shipping_titles[1]

    def _document(self, order, *, doc_type, key, account, lines):
        number = str(order.get("number") or order["id"])
        created = str(order.get("date_created_gmt") or "")[:10]
        try:
            date = datetime.date.fromisoformat(created)
        except ValueError:
            date = datetime.datetime.now(datetime.timezone.utc).date()
        if not lines:
            raise _Parked(f"the {doc_type} part has no lines")
        return SalesDocument(external_key=key, doc_type=doc_type, account_code=account, date=date,
                             lines=lines, your_ref=number[:10], long_your_ref=f"WOO-{number}"[:20])

    # --- accounts

    def _role(self, connections, order):
        """The customer's role for rules and a new account's band: the order's role meta (Wholesale
        Suite), else the role exsync knows (customer link, or a cached read of the shop customer)."""
        return customer_role(order, role_meta_key=self.options["role_meta_key"],
                             known=lambda customer_id: self._roles.role(connections.links, customer_id))

    def _account(self, connections, order, role):
        """The account the order goes on: the registered customer's (created when missing), a
        guest's by e-mail, or the configured guest account."""
        billing = order.get("billing") or {}
        customer_id = int(order.get("customer_id") or 0)
        if customer_id:
            details = billing_details(billing, self._fit)
            if role == self.wholesale_role:
                details = dataclasses.replace(details, price_band=self.wholesale_band)
            try:
                return account_for_shop_customer(
                    backend=connections.backend, reader=connections.reader, woo_id=customer_id,
                    details=details, match_by_email=self.match_by_email)[0]
            except InvalidDocumentError as error:
                raise _Parked(f"cannot create an account for customer {customer_id}: {error}") from error
        email = str(billing.get("email") or "").strip()
        if email:
            matches = [account for account in connections.reader.accounts_by_email(email) if account.cust_supp == "C"]
            if matches:
                return matches[0].code
        return self._guest_account(connections)

    def _guest_account(self, connections):
        if connections.guest_account is None:
            code = self.options["guest_account"].upper()
            try:
                connections.guest_account = connections.reader.account(code).code
            except UnknownAccountError:
                connections.guest_account = connections.backend.create_account(
                    external_key=f"guest-account:{code}", code=code,
                    details=AccountDetails(company=GUEST_ACCOUNT_COMPANY)).reference
        return connections.guest_account

    # --- parked orders

    def release_parked(self, limit=DEFAULT_PARKED_BATCH):
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


def build(settings, *, metrics):
    """The consumer `exsync consume orders` runs."""
    publisher = SharedPublisher(url=settings.amqp_url, topology=Topology.from_config(settings.config),
                                metrics=metrics)
    # This consumer owns order tracking: it alone exports the parked and overdue counts, read at each scrape.
    overdue_after_seconds = settings.config["orders"]["overdue_after_seconds"]
    track_state_gauges(metrics, dsn=settings.state_dsn, mapping=mapping_for(settings.config), gauges={
        "orders_parked": lambda database: OrderStore(database=database).counts().get("parked", 0),
        "orders_overdue": lambda database: OrderStore(database=database).overdue_count(
            paid_before=time.time() - overdue_after_seconds)})
    # Without shop credentials a role the order and the customer link do not give is "customer".
    shop = WooClient.from_settings(settings, metrics=metrics) if settings.woo_url else None
    return OrdersConsumer(exchequer_dsn=settings.exchequer_dsn, state_dsn=settings.state_dsn,
                          config=settings.config, publisher=publisher, metrics=metrics, shop=shop)
