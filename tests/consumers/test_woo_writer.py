"""The woo-writer against the sandbox shop over real HTTP: coalescing, staleness, batches, per-item errors."""

import threading
import time

import pytest

from exsync.bus import Message, PermanentError
from exsync.consumers.woo_writer import (
    WHOLESALE_DISCOUNT_META,
    WHOLESALE_FLAG_META,
    WHOLESALE_PRICE_META,
    WooWriter,
    WriterBusyError,
)
from exsync.exchequer import connect
from tests.support.products import CountingMetrics, sandbox_shop


def product(sku, sequence, *, description=None, price="10.00", wholesale="8.00", category="Widgets"):
    return {"sku": sku, "description": description or f"Item {sku}", "regular_price": price,
            "wholesale_price": wholesale, "category": category, "sequence": sequence}


def stock(sku, sequence, quantity):
    return {"sku": sku, "quantity": quantity, "sequence": sequence}


@pytest.fixture
def shop_and_writer(tmp_path):
    metrics = CountingMetrics()
    with sandbox_shop(metrics=metrics) as (shop, _, client, _), \
            connect(f"sqlite:///{tmp_path}/state.db") as database:
        writer = WooWriter(database=database, client=client, metrics=metrics, max_item_attempts=2,
                           item_retry_seconds=0)
        yield shop, writer, metrics


def by_sku(shop):
    return {p["sku"]: shop.product_json(p) for p in shop.products.values()}


def meta(product, key):
    return next((m["value"] for m in product["meta_data"] if m["key"] == key), None)


def requests(metrics):
    return metrics.count("woo_requests")


def test_creates_missing_products_and_categories_in_one_batch(shop_and_writer):
    shop, writer, metrics = shop_and_writer
    writer.accept(products=[product(f"SKU-{n}", n, category="Widgets" if n % 2 else "Gadgets") for n in range(1, 6)],
                  stock=[stock(f"SKU-{n}", n, n - 1) for n in range(1, 6)])
    report = writer.flush()
    assert (report.created, report.updated, report.failed) == (5, 0, 0)
    assert metrics.count("woo_requests", endpoint="products/batch") == 1
    shop_products = by_sku(shop)
    assert shop_products["SKU-3"]["manage_stock"] is True and shop_products["SKU-3"]["stock_quantity"] == 2
    assert shop_products["SKU-1"]["stock_status"] == "outofstock"
    assert shop_products["SKU-3"]["stock_status"] == "instock"
    assert [c["name"] for c in shop_products["SKU-2"]["categories"]] == ["Gadgets"]
    assert meta(shop_products["SKU-1"], WHOLESALE_PRICE_META) == "8.00"
    assert meta(shop_products["SKU-1"], WHOLESALE_FLAG_META) == "yes"
    assert sorted(c["name"] for c in shop.categories.values()) == ["Gadgets", "Uncategorized", "Widgets"]
    assert writer.pending_count() == 0


def test_no_request_is_sent_when_nothing_changed(shop_and_writer):
    shop, writer, metrics = shop_and_writer
    writer.accept(products=[product("SKU-1", 1)], stock=[stock("SKU-1", 1, 5)])
    writer.flush()
    before = requests(metrics)
    writer.accept(products=[product("SKU-1", 2)], stock=[stock("SKU-1", 2, 5)])
    report = writer.flush()
    assert (report.unchanged, report.requests, requests(metrics)) == (1, 0, before)
    assert writer.pending_count() == 0


def test_only_changed_fields_are_sent_and_existing_shop_products_are_found_by_sku(shop_and_writer):
    shop, writer, metrics = shop_and_writer
    existing = shop.create_product({"name": "Old name", "sku": "SKU-9", "regular_price": "5.00", "manage_stock": True,
                                    "stock_quantity": 3, "meta_data": [{"key": WHOLESALE_DISCOUNT_META,
                                                                        "value": "10"}]})
    writer.accept(stock=[stock("SKU-9", 4, 11)])
    report = writer.flush()
    assert (report.created, report.updated) == (0, 1)
    after = shop.product_json(shop.products[existing["id"]])
    assert after["stock_quantity"] == 11 and after["name"] == "Old name" and after["regular_price"] == "5"
    writer.accept(products=[product("SKU-9", 5, description="Old name", price="5.00", wholesale="4.00")])
    writer.flush()
    after = shop.product_json(shop.products[existing["id"]])
    assert meta(after, WHOLESALE_PRICE_META) == "4.00"
    assert meta(after, WHOLESALE_DISCOUNT_META) is None
    assert len(shop.products) == 1


def test_a_product_added_to_the_shop_later_is_found_by_sku_not_created_twice(shop_and_writer):
    shop, writer, metrics = shop_and_writer
    writer.accept(stock=[stock("SKU-1", 1, 1)])
    writer.flush()
    added = shop.create_product({"name": "Added by hand", "sku": "SKU-2", "manage_stock": True, "stock_quantity": 1})
    writer.accept(stock=[stock("SKU-2", 2, 6)])
    report = writer.flush()
    assert (report.created, report.updated) == (0, 1)
    assert metrics.count("woo_requests", endpoint="products", method="GET") >= 2  # the priming page, then ?sku=
    assert shop.product_json(shop.products[added["id"]])["stock_quantity"] == 6 and len(shop.products) == 2


def test_categories_are_matched_by_unescaped_name_and_by_taken_slug(shop_and_writer):
    shop, writer, _ = shop_and_writer
    nuts = shop.create_category({"name": "Nuts &amp; Bolts"})
    sale = shop.create_category({"name": "Clearance"})
    writer.accept(products=[product("SKU-1", 1, category="Nuts & Bolts"), product("SKU-2", 2, category="CLEARANCE")])
    assert writer.flush().created == 2
    shop_products = by_sku(shop)
    assert [c["id"] for c in shop_products["SKU-1"]["categories"]] == [nuts["id"]]
    assert [c["id"] for c in shop_products["SKU-2"]["categories"]] == [sale["id"]]
    assert len(shop.categories) == 3


def test_a_stale_sequence_never_overwrites_a_newer_one(shop_and_writer):
    shop, writer, _ = shop_and_writer
    assert writer.accept(stock=[stock("SKU-1", 10, 7)]) == (1, 0)
    assert writer.accept(stock=[stock("SKU-1", 9, 1)]) == (0, 1)
    writer.flush()
    assert by_sku(shop)["SKU-1"]["stock_quantity"] == 7
    # Once written, an older change (a redelivery) still loses.
    assert writer.accept(stock=[stock("SKU-1", 8, 2)]) == (0, 1)
    assert writer.pending_count() == 0
    assert writer.accept(stock=[stock("SKU-1", 11, 2)]) == (1, 0)
    writer.flush()
    assert by_sku(shop)["SKU-1"]["stock_quantity"] == 2
    # Each kind keeps its own newest sequence: a stock change does not let an old price back in.
    writer.accept(products=[product("SKU-1", 20, price="3.00")])
    writer.flush()
    writer.accept(stock=[stock("SKU-1", 21, 9)])
    writer.flush()
    assert writer.accept(products=[product("SKU-1", 15, price="1.00")]) == (0, 1)
    assert by_sku(shop)["SKU-1"]["regular_price"] == "3"


def test_an_item_the_shop_refuses_is_marked_failed_visibly_while_the_rest_are_written(tmp_path):
    with sandbox_shop() as (shop, _, client, _), connect(f"sqlite:///{tmp_path}/state.db") as database:
        writer = WooWriter(database=database, client=client, max_item_attempts=1)
        writer.accept(stock=[stock(f"SKU-{n}", n, 1) for n in range(1, 4)])
        writer.flush()
        shop.delete_product(by_sku(shop)["SKU-2"]["id"], force=True)  # the cache still has its id
        writer.accept(stock=[stock(f"SKU-{n}", 10 + n, 20 + n) for n in range(1, 4)])
        report = writer.flush()
        assert (report.updated, report.failed) == (2, 1)
        [(sku, attempts, error)] = writer.failures()
        assert (sku, attempts) == ("SKU-2", 1) and "Invalid ID" in error
        assert writer.pending_count() == 0
        shop_products = by_sku(shop)
        assert shop_products["SKU-1"]["stock_quantity"] == 21 and shop_products["SKU-3"]["stock_quantity"] == 23
        assert "SKU-2" not in shop_products
        # A newer change gives the failed SKU a fresh start: the product is made again.
        writer.accept(stock=[stock("SKU-2", 50, 5)])
        assert writer.flush().created == 1 and by_sku(shop)["SKU-2"]["stock_quantity"] == 5
        assert writer.failures() == []


def test_a_refused_item_stays_pending_and_is_tried_again(shop_and_writer):
    shop, writer, _ = shop_and_writer
    writer.accept(stock=[stock(f"SKU-{n}", n, 1) for n in range(1, 4)])
    writer.flush()
    shop.delete_product(by_sku(shop)["SKU-2"]["id"], force=True)
    writer.accept(stock=[stock(f"SKU-{n}", 10 + n, 20 + n) for n in range(1, 4)])
    first = writer.flush()
    assert (first.updated, first.failed) == (2, 0)
    assert writer.pending_count() == 1 and writer.failures() == []
    second = writer.flush()
    assert (second.created, writer.pending_count()) == (1, 0)
    assert by_sku(shop)["SKU-2"]["stock_quantity"] == 22


def test_a_shop_outage_keeps_changes_pending_without_counting_attempts(shop_and_writer):
    shop, writer, _ = shop_and_writer
    writer.accept(stock=[stock("SKU-1", 1, 3)])
    writer.flush()
    writer.accept(stock=[stock("SKU-1", 2, 4)])
    shop.faults.inject(status=503, count=2, route_prefix="products/batch")
    report = writer.flush()
    assert report.retry_later == 1 and writer.pending_count() == 1 and writer.failures() == []
    writer.flush()
    assert by_sku(shop)["SKU-1"]["stock_quantity"] == 4 and writer.pending_count() == 0


def test_batches_hold_at_most_100_items(shop_and_writer):
    shop, writer, metrics = shop_and_writer
    writer.accept(products=[product(f"SKU-{n:03d}", n) for n in range(1, 251)],
                  stock=[stock(f"SKU-{n:03d}", n, 1) for n in range(1, 251)])
    report = writer.flush()
    assert report.created == 250 and report.requests == 3
    assert sorted(metrics.observations["woo_writer_batch_items"]) == [50, 100, 100]
    assert len(shop.products) == 250


def _message(event):
    return Message(queue="woo.write", routing_key="stock.changed", body=b"", headers={}, properties=None,
                   delivery_tag=1, redelivered=False, event=event)


def test_handle_stores_then_flushes_once_enough_is_pending(shop_and_writer):
    shop, writer, _ = shop_and_writer
    writer.flush_items = 3
    event = {"type": "exchequer.stock.changed", "data": {"items": [stock("A", 1, 1), stock("B", 2, 2)]}}
    writer.handle(_message(event))
    assert writer.pending_count() == 2 and shop.products == {}
    writer.handle(_message({"type": "exchequer.stock.changed", "data": {"items": [stock("C", 3, 3)]}}))
    assert writer.pending_count() == 0 and sorted(by_sku(shop)) == ["A", "B", "C"]


def test_handle_parks_what_is_not_a_change_event(shop_and_writer):
    _, writer, _ = shop_and_writer
    with pytest.raises(PermanentError):
        writer.handle(_message({"type": "woo.order.created", "data": {}}))
    with pytest.raises(PermanentError):
        writer.handle(_message({"type": "exchequer.stock.changed", "data": {"items": [{"sku": "A"}]}}))
    assert writer.pending_count() == 0


def test_pending_changes_keep_the_newest_sequence_on_postgresql(pg_odbc_dsn):
    with sandbox_shop() as (shop, _, client, _), connect(pg_odbc_dsn) as database:
        writer = WooWriter(database=database, client=client)
        writer.accept(products=[product("SKU-1", 5)], stock=[stock("SKU-1", 5, 9)])
        assert writer.accept(stock=[stock("SKU-1", 4, 1)]) == (0, 1)
        assert writer.flush().created == 1
        assert by_sku(shop)["SKU-1"]["stock_quantity"] == 9
        assert writer.accept(products=[product("SKU-1", 3, price="1.00")]) == (0, 1)


def test_a_category_another_writer_stored_first_is_taken_not_a_crash(pg_odbc_dsn):
    """The race of issue 12: two writers both miss "Bearings" in their cache and both store it."""
    with sandbox_shop() as (shop, _, client, _), connect(pg_odbc_dsn) as first_db, connect(pg_odbc_dsn) as second_db:
        first = WooWriter(database=first_db, client=client)
        second = WooWriter(database=second_db, client=client)
        second._category_id("Widgets")  # loads its cache of categories (without Bearings)
        made = first._category_id("Bearings")
        assert second._category_id("Bearings") == made  # found in the shop, stored meanwhile: the same one
        assert [c["name"] for c in shop.categories.values()].count("Bearings") == 1


def test_a_pending_row_another_process_stored_first_is_updated_not_a_crash(pg_odbc_dsn):
    """Two processes store the same SKU at once (an export and the consumer): the second's INSERT meets
    the first's committed row, and its transaction runs again as an update."""
    with sandbox_shop() as (_, _, client, _), connect(pg_odbc_dsn) as first_db, connect(pg_odbc_dsn) as second_db:
        first = WooWriter(database=first_db, client=client)
        second = WooWriter(database=second_db, client=client)
        original, raced = second.store._select_in, []

        def select_then_race(cursor, sql_prefix, skus):
            rows = original(cursor, sql_prefix, skus)
            if not raced and "woo_pending" in sql_prefix:
                # The other process commits the same SKU between this one's read and its insert.
                raced.append(first.accept(stock=[stock("SKU-1", 1, 5)]))
            return rows

        second.store._select_in = select_then_race
        assert second.accept(stock=[stock("SKU-1", 2, 6)]) == (1, 0)
        assert raced == [(1, 0)] and second.pending_count() == 1
        assert second.flush().created == 1
        assert client.products_by_sku(["SKU-1"])["SKU-1"]["stock_quantity"] == 6


def test_one_writer_at_a_time_the_other_waits_for_the_lease(tmp_path):
    with sandbox_shop() as (shop, _, client, _), connect(f"sqlite:///{tmp_path}/state.db") as first_db, \
            connect(f"sqlite:///{tmp_path}/state.db") as second_db:
        first = WooWriter(database=first_db, client=client)
        second = WooWriter(database=second_db, client=client)
        second.accept(stock=[stock("SKU-1", 1, 5)])
        held, release = threading.Event(), threading.Event()

        def hold():
            with first.writing():
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(10)
        with pytest.raises(WriterBusyError):
            second.flush()
        assert shop.products == {} and second.pending_count() == 1
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        assert second.flush(wait_seconds=10).created == 1
        assert time.monotonic() - started >= 0.2
        holder.join(10)


def test_order_events_on_the_writer_queue_mark_the_skus_whose_shop_stock_moved(shop_and_writer):
    _, writer, _ = shop_and_writer
    order = {"id": 77, "status": "pending", "line_items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2},
                                                           {"sku": "", "quantity": 1}]}
    writer.handle(_message({"type": "woo.order.created", "data": order}))
    assert writer.marked() == {}  # a new pending order has moved nothing
    writer.handle(_message({"type": "woo.order.updated", "data": dict(order, status="processing")}))
    assert sorted(writer.marked()) == ["A", "B"]
    assert writer.pending_count() == 0  # order events store no product changes
    writer.handle(_message({"type": "woo.order.deleted", "data": {"id": 77}}))  # no status: nothing to mark
    with pytest.raises(PermanentError):
        writer.handle(_message({"type": "woo.order.updated", "data": {"id": "seventy"}}))
