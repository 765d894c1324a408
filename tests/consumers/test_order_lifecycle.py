"""The order lifecycle: a paid order is imported whatever order its states arrive in, exactly once.

Every permutation of a lifecycle's states (each state delivered twice) goes through the real
consumer on SQLite; a shuffled set goes through RabbitMQ to the consumer on PostgreSQL (pyodbc).
"""

import itertools
import random
import threading

import pytest

from exsync import wiring
from exsync.bus import Publisher, SharedPublisher, Worker, declare_topology
from exsync.consumers.order_lifecycle import Lifecycle
from exsync.consumers.orders import OrdersConsumer, event_id
from tests.consumers.conftest import company, config, event, order_body
from tests.consumers.test_orders import count_documents, documents_of
from tests.support.rabbit import bind_probe, read_messages
from tests.support.waiting import wait_for

PAID_AT = "2026-11-27T10:01:00"


def version(order_id, lines, status, minute, *, paid=None):
    """One state of an order's life as the shop sends it: later states are modified later, and
    carry `date_paid` once the order reached processing (WooCommerce keeps it)."""
    body = order_body(order_id, lines=lines, status=status, modified=f"2026-11-27T10:{minute:02d}:00")
    reached_payment = status in ("processing", "completed", "refunded") if paid is None else paid
    body["date_paid"] = body["date_paid_gmt"] = PAID_AT if reached_payment else None
    return body


def lifecycle(order_id, lines, statuses, **paid):
    return [version(order_id, lines, status, minute, paid=paid.get(status)) for minute, status in
            enumerate(statuses)]


@pytest.mark.parametrize(("import_statuses", "body", "paid"), [
    (["processing"], {"status": "pending"}, False),
    (["processing"], {"status": "on-hold"}, False),
    (["processing"], {"status": "processing"}, True),
    (["processing"], {"status": "completed"}, True),
    (["processing"], {"status": "cancelled"}, False),  # created and cancelled within a second
    (["processing"], {"status": "cancelled", "date_paid_gmt": PAID_AT}, True),  # paid, then cancelled
    (["processing"], {"status": "failed"}, False),
    (["processing"], {"status": "refunded"}, True),  # a refund needs a payment
    (["processing"], {"status": "trash", "date_paid": PAID_AT}, True),
    (["processing"], {"status": "awaiting-pickup"}, False),  # a site's own status: no proof
    (["processing"], {"status": "awaiting-pickup", "date_paid_gmt": PAID_AT}, True),
    (["on-hold"], {"status": "on-hold"}, True),
    (["on-hold"], {"status": "processing"}, True),
    (["on-hold"], {"status": "pending"}, False),
    (["completed"], {"status": "processing", "date_paid_gmt": PAID_AT}, False),
    (["completed"], {"status": "completed"}, True),
    (["completed"], {"status": "cancelled", "date_paid_gmt": PAID_AT}, False),
    (["awaiting-pickup"], {"status": "awaiting-pickup"}, True),
    (["awaiting-pickup"], {"status": "completed"}, False),
    (["processing", "cancelled"], {"status": "cancelled"}, False),  # an exit listed is still no proof
])
def test_which_versions_prove_an_order_paid(import_statuses, body, paid):
    assert Lifecycle(import_statuses=import_statuses).shows_payment(body) is paid


def deliver_all(consumer, deliveries):
    for body in deliveries:
        consumer.handle_event(event(body))


def imported_ids(publisher):
    """{order id: the set of event ids its imported announcements carried}."""
    ids = {}
    for _, key, sent in publisher.published:
        if key == "order.imported":
            ids.setdefault(sent["data"]["woo_order_id"], set()).add(sent["id"])
    return ids


def test_every_permutation_of_a_paid_lifecycle_with_repeats_gives_exactly_one_document(sqlite_company,
                                                                                      make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    lines = [(codes[0], 1, "5.00", "5.00", "1.00")]
    states = ("pending", "processing", "completed")
    orders = {}
    # Each state delivered twice (webhook and reconciler, or two webhooks): 6!/(2!)^3 = 90 orders.
    for order_id, order in enumerate(sorted(set(itertools.permutations(range(6)))), start=1000):
        versions = lifecycle(order_id, lines, states)
        sequence = [versions[position % 3] for position in order]
        if tuple(body["status"] for body in sequence) in orders:
            continue
        orders[tuple(body["status"] for body in sequence)] = order_id
        deliver_all(consumer, sequence)
    assert len(orders) == 90
    for statuses, order_id in orders.items():
        assert len(documents_of(dsn, order_id)) == 1, statuses
        tracked = consumer._connections().orders.get(order_id)
        # The newest state is held whatever arrived last: a stale body never overwrites it.
        assert (tracked.import_state, tracked.status) == ("imported", "completed"), statuses
    assert count_documents(dsn) == 90
    # Every repeat of an announcement is recognisably the same event.
    assert all(len(ids) == 1 for ids in imported_ids(publisher).values())
    assert set(imported_ids(publisher)) == set(orders.values())


def test_completed_seen_first_then_processing_is_imported_at_once(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    pending, processing, completed = lifecycle(7, [(codes[0], 1, "5.00", "5.00", "1.00")],
                                               ("pending", "processing", "completed"))
    assert consumer.handle_event(event(completed)) == "imported"
    assert consumer.handle_event(event(processing)) == "stale"
    assert consumer.handle_event(event(pending)) == "stale"
    assert len(documents_of(dsn, 7)) == 1


def test_a_stale_processing_copy_proves_payment_of_an_order_held_as_cancelled(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    # The shop's cancelled copy lacks date_paid here (as a site with a payment plugin clearing it may send).
    processing, cancelled = lifecycle(8, [(codes[0], 1, "5.00", "5.00", "1.00")], ("processing", "cancelled"),
                                      cancelled=False)
    assert consumer.handle_event(event(cancelled)) == "not_imported"
    assert documents_of(dsn, 8) == []
    assert consumer.handle_event(event(processing)) == "imported"
    tracked = consumer._connections().orders.get(8)
    # Imported from the newest body held (cancelled), and its end announced for a person.
    assert (tracked.status, tracked.import_state, tracked.cancel_published) == ("cancelled", "imported", True)
    assert publisher.keys() == ["order.imported", "order.cancelled"]


@pytest.mark.parametrize("statuses", list(itertools.permutations(("pending", "processing", "cancelled"))))
def test_paid_then_cancelled_in_any_order_gives_one_document_and_one_cancellation(sqlite_company, make_consumer,
                                                                                  statuses):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    versions = {body["status"]: body for body in lifecycle(9, [(codes[0], 1, "5.00", "5.00", "1.00")],
                                                             ("pending", "processing", "cancelled"),
                                                             cancelled=True)}
    deliver_all(consumer, [versions[status] for status in statuses] * 2)
    assert len(documents_of(dsn, 9)) == 1
    assert sorted(set(publisher.keys())) == ["order.cancelled", "order.imported"]
    cancellations = {sent["id"] for _, key, sent in publisher.published if key == "order.cancelled"}
    assert len(cancellations) == 1
    tracked = consumer._connections().orders.get(9)
    assert (tracked.status, tracked.import_state) == ("cancelled", "imported")


def test_an_order_created_and_cancelled_within_a_second_is_never_imported(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    # WooCommerce collapses the second into one delivery of the last state: cancelled, never paid.
    [cancelled] = lifecycle(10, [(codes[0], 1, "5.00", "5.00", "1.00")], ("cancelled",))
    assert consumer.handle_event(event(cancelled, "order.created")) == "not_imported"
    assert consumer.handle_event(event(cancelled)) == "not_imported"
    tracked = consumer._connections().orders.get(10)
    assert (tracked.import_state, tracked.paid_at) == ("cancelled", 0.0)
    assert documents_of(dsn, 10) == []
    assert publisher.published == []


def test_a_paid_order_first_seen_cancelled_is_imported_and_its_end_announced(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    # Paid and cancelled within a second: only the cancelled copy, but it carries date_paid.
    [cancelled] = lifecycle(11, [(codes[0], 1, "5.00", "5.00", "1.00")], ("cancelled",), cancelled=True)
    assert consumer.handle_event(event(cancelled, "order.created")) == "imported"
    assert consumer.handle_event(event(cancelled)) == "already_imported"
    [reference] = documents_of(dsn, 11)
    assert publisher.keys() == ["order.imported", "order.cancelled"]
    announced = publisher.published[1][2]
    assert announced["data"] == {"woo_order_id": 11, "status": "cancelled", "references": [reference]}
    assert announced["id"] == event_id("exchequer.order.cancelled", 11, [reference])


def test_only_completed_orders_import_when_so_configured(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn, import_statuses=["completed"])
    processing, completed = lifecycle(12, [(codes[0], 1, "5.00", "5.00", "1.00")], ("processing", "completed"))
    assert consumer.handle_event(event(processing)) == "waiting"
    assert consumer.handle_event(event(completed)) == "imported"
    assert len(documents_of(dsn, 12)) == 1


def test_a_repeat_of_a_paid_version_finishes_an_import_a_crash_interrupted(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    processing, cancelled = lifecycle(13, [(codes[0], 1, "5.00", "5.00", "1.00")], ("processing", "cancelled"),
                                      cancelled=False)
    consumer.handle_event(event(cancelled))
    orders = consumer._connections().orders
    # As if the process died after tracking recorded the stale copy's proof and before the import.
    orders.record_version(processing, paid=True)
    assert orders.get(13).paid_at > 0 and orders.get(13).refs == ()
    assert consumer.handle_event(event(processing)) == "imported"  # the redelivery
    assert len(documents_of(dsn, 13)) == 1
    assert publisher.keys() == ["order.imported", "order.cancelled"]


class Running:
    def __init__(self):
        self.workers = []

    def start(self, worker):
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.workers.append((worker, thread))

    def stop(self):
        for worker, thread in self.workers:
            worker.stop()
            thread.join(timeout=30)


@pytest.mark.slow
def test_shuffled_lifecycles_through_rabbitmq_on_postgresql_give_one_document_each(amqp_url, pg_odbc_dsn):
    codes = company(pg_odbc_dsn)
    declare_topology(amqp_url, wiring.topology())
    probe = bind_probe(amqp_url, exchange="exchequer", routing_key="order.imported")
    lines = [(codes[0], 1, "5.00", "5.00", "1.00")]
    random.seed(11)
    deliveries, order_ids = [], list(range(5000, 5024))
    for order_id in order_ids:
        # Paid lifecycles, some ending cancelled after payment; each state twice, the whole set shuffled.
        statuses = ("pending", "processing", "completed") if order_id % 3 else ("pending", "processing", "cancelled")
        deliveries += lifecycle(order_id, lines, statuses, cancelled=True) * 2
    never_paid = lifecycle(5100, lines, ("pending", "cancelled"))
    deliveries += never_paid * 2
    random.shuffle(deliveries)
    # four handler threads share the consumer's publisher: the thread-safe one (a Publisher is one thread's)
    consumer = OrdersConsumer(exchequer_dsn=pg_odbc_dsn, config=config(),
                              publisher=SharedPublisher(url=amqp_url, topology=wiring.topology()))
    running = Running()
    running.start(Worker(url=amqp_url, queue="orders.import", handler=consumer.handle, topology=wiring.topology(),
                         concurrency=4, prefetch=16, on_idle=consumer.on_idle))
    try:
        with Publisher(url=amqp_url, topology=wiring.topology()) as publisher:
            for body in deliveries:
                publisher.publish(exchange="woo", routing_key="order.updated", event=event(body))
        wait_for(lambda: count_documents(pg_odbc_dsn) >= len(order_ids) and all(
            consumer._connections().orders.get(order_id).import_state == "imported" for order_id in order_ids),
            "every paid order to be imported", timeout_seconds=300)
        wait_for(lambda: consumer._connections().orders.get(5100).import_state == "cancelled", "the unpaid one")
    finally:
        running.stop()
        consumer.close()
    assert count_documents(pg_odbc_dsn) == len(order_ids)
    assert all(len(documents_of(pg_odbc_dsn, order_id)) == 1 for order_id in order_ids)
    assert documents_of(pg_odbc_dsn, 5100) == []
    announced = {}
    # Every announcement was confirmed before tracking recorded the import: all are queued by now.
    for sent, _ in read_messages(amqp_url, probe, timeout_seconds=60):
        announced.setdefault(sent["data"]["woo_order_id"], set()).add(sent["id"])
    # Repeats are allowed, but each order's announcements carry one id.
    assert sorted(announced) == order_ids
    assert all(len(ids) == 1 for ids in announced.values())
