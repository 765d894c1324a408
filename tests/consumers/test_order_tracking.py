"""What order tracking tells a person and an alert: exact counts, overdue orders, orders cancelled after
import, one event id per announcement, 64-bit order ids, and the customer's role without Wholesale Suite."""

import dataclasses
import threading
import time

import prometheus_client
import pytest

from exsync.cli import main
from exsync.config import load_settings
from exsync.consumers.orders import build, event_id
from exsync.exchequer import ExchequerReader, connect
from exsync.metrics import PrometheusMetrics
from exsync.state.links import Link
from exsync.state.orders import OrderStore, ensure_order_tables
from exsync.woo import WooClient
from tests.consumers.conftest import RecordingPublisher, company, config, event, order_body
from tests.consumers.test_orders import documents_of
from tests.support.net import free_port


def scraped(dsn, monkeypatch, **orders):
    """A Prometheus registry with the orders consumer `exsync consume orders` builds over `dsn`."""
    monkeypatch.setenv("EXSYNC_EXCHEQUER_DSN", dsn)
    monkeypatch.setenv("EXSYNC_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")  # nothing is published here
    settings = load_settings()
    settings = dataclasses.replace(settings, config=config(**orders))
    registry = prometheus_client.CollectorRegistry()
    consumer = build(settings, metrics=PrometheusMetrics(registry=registry))
    consumer.publisher.close()  # what it publishes is recorded instead (the bus is tested elsewhere)
    consumer.publisher = RecordingPublisher()
    return registry, consumer


def lines(codes):
    return [(codes[0], 1, "5.00", "5.00", "1.00")]


def paid_minutes_ago(dsn, order_id, minutes):
    """Moves the moment exsync first saw the order paid back in time (instead of waiting)."""
    with connect(dsn) as database, database.transaction() as cursor:
        cursor.execute(f'UPDATE {database.names.state_table("order_tracking")} SET "paid_at" = ? '
                       'WHERE "order_id" = ?', (time.time() - minutes * 60, order_id))


def test_status_counts_exactly_and_lists_overdue_parked_and_cancelled_after_import(sqlite_company, monkeypatch,
                                                                                  capsys):
    dsn, codes = sqlite_company
    registry, consumer = scraped(dsn, monkeypatch)
    publisher = consumer.publisher
    orders = consumer._connections().orders
    consumer.handle_event(event(order_body(201, lines=lines(codes))))  # imported
    consumer.handle_event(event(order_body(202, lines=[("MISSING-1", 1, "5.00", "5.00", "1.00")])))  # parked
    for order_id in (203, 204, 205):  # received: pending, not paid
        consumer.handle_event(event(order_body(order_id, lines=lines(codes), status="pending")))
    # Seen, and the process died before deciding (blank state): in progress, never "received".
    orders.record_version(order_body(206, lines=lines(codes)), paid=True)
    orders.record_version(order_body(207, lines=lines(codes), status="pending"))
    cancelled = dict(order_body(201, lines=lines(codes)), status="cancelled", date_modified_gmt="2026-11-27T11:00:00")
    consumer.handle_event(event(cancelled))  # cancelled after import
    paid_minutes_ago(dsn, 202, 40)
    paid_minutes_ago(dsn, 206, 20)

    assert orders.counts() == {"imported": 1, "parked": 1, "received": 3, "in progress": 2}
    assert registry.get_sample_value("exsync_orders_overdue") == 2
    assert registry.get_sample_value("exsync_orders_parked") == 1
    assert registry.get_sample_value("exsync_orders_cancelled_after_import_total") == 1
    assert publisher.keys() == ["order.imported", "order.cancelled"]
    consumer.close()

    assert main(["orders", "status"]) == 0
    output = capsys.readouterr().out.splitlines()
    [reference] = documents_of(dsn, 201)
    assert output == [
        "imported: 1", "in progress: 2", "parked: 1", "received: 3",
        "overdue (paid, not imported after 900 s): 2",
        "cancelled after import: 1",
        "overdue order 202 (#202, processing), paid 40 min ago, parked: unknown SKU MISSING-1",
        "overdue order 206 (#206, processing), paid 20 min ago, in progress",
        "parked order 202 (#202, processing): unknown SKU MISSING-1",
        f"cancelled after import: order 201 (#201, cancelled) kept as {reference}",
    ]


def test_overdue_follows_the_configured_time(sqlite_company, tmp_path, monkeypatch, capsys):
    dsn, codes = sqlite_company
    registry, consumer = scraped(dsn, monkeypatch, overdue_after_seconds=3600)
    consumer.handle_event(event(order_body(301, lines=[("MISSING-2", 1, "5.00", "5.00", "1.00")])))
    paid_minutes_ago(dsn, 301, 40)
    assert registry.get_sample_value("exsync_orders_overdue") == 0
    paid_minutes_ago(dsn, 301, 61)
    # Time alone makes an order overdue: read at each scrape, no message or tick needed.
    assert registry.get_sample_value("exsync_orders_overdue") == 1
    consumer.close()
    config_file = tmp_path / "exsync.yaml"
    config_file.write_text("orders:\n  overdue_after_seconds: 7200\n")
    monkeypatch.setenv("EXSYNC_EXCHEQUER_DSN", dsn)
    monkeypatch.setenv("EXSYNC_CONFIG", str(config_file))
    assert main(["orders", "status"]) == 0
    assert "overdue (paid, not imported after 7200 s): 0" in capsys.readouterr().out


def test_concurrent_duplicates_and_a_crash_before_tracking_announce_one_event_id(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    body = order_body(401, lines=lines(codes), customer_id=5, email="five@x.test")
    barrier = threading.Barrier(5)

    def deliver():
        barrier.wait()
        consumer.handle_event(event(body))

    workers = [threading.Thread(target=deliver) for _ in range(5)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    [reference] = documents_of(dsn, 401)
    ids = {sent["id"] for _, key, sent in publisher.published if key == "order.imported"}
    assert ids == {event_id("exchequer.order.imported", 401, [reference])}

    # kill -9 between the announcement and tracking's record of it: the redelivery repeats the same event.
    second = order_body(402, lines=lines(codes))
    store = consumer._connections().orders
    real = store.mark_imported

    def killed(*args):
        raise SystemExit("killed")

    store.mark_imported = killed
    with pytest.raises(SystemExit):
        consumer.handle_event(event(second))
    store.mark_imported = real
    assert consumer.handle_event(event(second)) == "imported"
    announced = [sent for _, key, sent in publisher.published if key == "order.imported"
                 and sent["data"]["woo_order_id"] == 402]
    assert len(announced) == 2 and announced[0]["id"] == announced[1]["id"]
    assert announced[0]["id"] != next(iter(ids))


def test_refund_and_cancellation_announcements_have_ids_from_what_they_announce(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    body = order_body(501, lines=lines(codes), modified="2026-11-27T10:00:00")
    consumer.handle_event(event(body))
    refunded = dict(body, status="refunded", date_modified_gmt="2026-11-27T10:10:00",
                    refunds=[{"id": 77, "reason": "", "total": "-6.00"}])
    consumer.handle_event(event(refunded))
    [reference] = documents_of(dsn, 501)
    by_key = {key: sent for _, key, sent in publisher.published}
    assert by_key["order.refunded"]["id"] == event_id("exchequer.order.refunded", 501, [reference], "77")
    # Refunded in full is an end after import: announced for a person like a cancellation.
    assert by_key["order.cancelled"]["data"]["status"] == "refunded"
    assert by_key["order.cancelled"]["id"] == event_id("exchequer.order.cancelled", 501, [reference])
    assert len({sent["id"] for _, _, sent in publisher.published}) == 3


@pytest.mark.slow
def test_order_ids_beyond_32_bits_are_tracked_and_an_older_table_is_upgraded(pg_odbc_dsn, make_consumer):
    codes = company(pg_odbc_dsn)
    with connect(pg_odbc_dsn) as database:
        table = database.names.state_table("order_tracking")
        with database.transaction() as cursor:
            # The table as an earlier exsync made it: a 32-bit id and no paid_at.
            cursor.execute('CREATE SCHEMA IF NOT EXISTS "exsync"')
            cursor.execute(f'CREATE TABLE {table} ("order_id" INTEGER NOT NULL DEFAULT 0, '
                           '"number" VARCHAR(32) NOT NULL DEFAULT \'\', "status" VARCHAR(32) NOT NULL DEFAULT \'\', '
                           '"currency" VARCHAR(8) NOT NULL DEFAULT \'\', "total" VARCHAR(32) NOT NULL DEFAULT \'\', '
                           '"date_modified_gmt" VARCHAR(32) NOT NULL DEFAULT \'\', '
                           '"import_state" VARCHAR(16) NOT NULL DEFAULT \'\', '
                           '"reason" VARCHAR(255) NOT NULL DEFAULT \'\', "refs" VARCHAR(100) NOT NULL DEFAULT \'\', '
                           '"plan" VARCHAR(255) NOT NULL DEFAULT \'\', "cancel_published" INTEGER NOT NULL DEFAULT 0, '
                           '"refund_ids" VARCHAR(255) NOT NULL DEFAULT \'\', "body" TEXT NULL, '
                           '"first_seen_at" DOUBLE PRECISION NOT NULL DEFAULT 0, '
                           '"imported_at" DOUBLE PRECISION NOT NULL DEFAULT 0, '
                           '"updated_at" DOUBLE PRECISION NOT NULL DEFAULT 0)')
            cursor.execute(f'INSERT INTO {table} ("order_id", "status", "import_state") VALUES (7, \'pending\', '
                           '\'received\')')
        ensure_order_tables(database)
        ensure_order_tables(database)  # idempotent
        with database.transaction(write=False) as cursor:
            types = dict(cursor.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                                        "table_schema = 'exsync' AND table_name IN ('order_tracking', 'order_notes') "
                                        "AND column_name IN ('order_id', 'paid_at', 'note_id')").fetchall())
        assert types == {"order_id": "bigint", "paid_at": "double precision", "note_id": "bigint"}
        assert OrderStore(database=database).get(7).import_state == "received"
    consumer, _ = make_consumer(pg_odbc_dsn)
    big = 2**40 + 5
    assert consumer.handle_event(event(order_body(big, lines=lines(codes)))) == "imported"
    assert consumer._connections().orders.get(big).import_state == "imported"
    assert len(documents_of(pg_odbc_dsn, big)) == 1


# --- the customer's role without Wholesale Suite

SQU_FOR_WHOLESALE = [{"name": "trade", "when": {"role": ["wholesale_customer"]}, "action": "SQU"}]


def doc_type(dsn, order_id):
    [reference] = documents_of(dsn, order_id)
    return ExchequerReader(database=connect(dsn)).document(reference).header.doc_type


def test_the_role_comes_from_one_cached_read_of_the_shop_customer(sqlite_company, make_consumer, sandbox_shop):
    dsn, codes = sqlite_company
    shop, client, _ = sandbox_shop
    trade = shop.create_customer({"email": "trade@x.test", "first_name": "Tom", "last_name": "Trade"},
                                 role="wholesale_customer")
    retail = shop.create_customer({"email": "retail@x.test", "first_name": "Rita", "last_name": "Retail"})
    consumer, _ = make_consumer(dsn, rules=SQU_FOR_WHOLESALE)
    consumer._roles.client = client
    reads = []
    real = client.get_customer
    client.get_customer = lambda customer_id: reads.append(customer_id) or real(customer_id)
    for order_id, customer in ((601, trade), (602, trade), (603, retail)):
        body = order_body(order_id, lines=lines(codes), customer_id=customer["id"], email=customer["email"])
        assert consumer.handle_event(event(body)) == "imported"
    assert [doc_type(dsn, order_id) for order_id in (601, 602, 603)] == ["SQU", "SQU", "SOR"]
    assert reads == [trade["id"], retail["id"]]  # over HTTP once per customer, then from the cache
    # The new account of a wholesale customer is in the wholesale band, as with the plugin's meta.
    account = ExchequerReader(database=connect(dsn)).document(documents_of(dsn, 601)[0]).header.account_code
    assert ExchequerReader(database=connect(dsn)).account(account).price_band == "B"


def test_the_role_comes_from_the_customer_link_before_the_shop(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn, rules=SQU_FOR_WHOLESALE)
    links = consumer._connections().links
    # As the customer sync leaves it after making the customer wholesale_customer (no shop needed).
    links.claim(42, holder="test", now=time.time(), seconds=60)
    links.save(Link(woo_id=42, account_code="", snapshot={"wholesale": True}))
    body = order_body(701, lines=lines(codes), customer_id=42, email="linked@x.test")
    consumer.handle_event(event(body))
    assert doc_type(dsn, 701) == "SQU"
    # The order's own meta (Wholesale Suite) still comes first.
    body = order_body(702, lines=lines(codes), customer_id=42, email="linked@x.test",
                      meta=[("wwp_wholesale_role", "customer")])
    consumer.handle_event(event(body))
    assert doc_type(dsn, 702) == "SOR"


def test_an_unreachable_shop_parks_an_order_whose_role_is_unknown(sqlite_company, make_consumer, sandbox_shop):
    dsn, codes = sqlite_company
    _, client, credentials = sandbox_shop
    consumer, _ = make_consumer(dsn, rules=SQU_FOR_WHOLESALE)
    # Nothing listens on the port: every request fails as a shop that is down does.
    with WooClient(url=f"http://127.0.0.1:{free_port()}", consumer_key=credentials.consumer_key,
                   consumer_secret=credentials.consumer_secret, max_attempts=1) as down:
        consumer._roles.client = down
        body = order_body(801, lines=lines(codes), customer_id=9, email="nine@x.test")
        assert consumer.handle_event(event(body)) == "parked"
    assert consumer._connections().orders.get(801).reason.startswith("the role of shop customer 9 is unknown")
    consumer._roles.client = client  # the shop is back (customer 9 is not there: an ordinary customer)
    assert consumer.release_parked() == 1
    assert doc_type(dsn, 801) == "SOR"
