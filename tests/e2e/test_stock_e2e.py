"""Exchequer -> shop end to end: capture publishes to RabbitMQ, the woo-writer consumes and writes the
sandbox shop over real HTTP. A stock movement, a price change, a BOM component shortage and a
category change in the demo company each reach the shop."""

import json
import os
import signal
import subprocess
import sys

from exsync.bus import Publisher, Topology, declare_topology, new_event
from exsync.config import Settings, load_settings
from exsync.consumers.orders import OrdersConsumer
from exsync.consumers.product_export import export_products, start_writer_thread
from exsync.exchequer import ExchequerReader, adjust_stock, change_price, connect
from exsync.exchequer.capture import CaptureState, build_capture, iter_exports
from exsync.sandbox import place_order
from exsync.schemas.config import validate_config
from tests.consumers.conftest import RecordingPublisher, company, event
from tests.support.products import demo_company, empty_component_stock, sandbox_shop, set_category, web_products
from tests.support.rabbit import bind_probe, read_messages
from tests.support.waiting import wait_for

WAIT_SECONDS = 30



def shop_products(shop):
    with shop.lock:
        return {p["sku"]: shop.product_json(p) for p in shop.products.values()}


def test_exchequer_changes_reach_the_shop_through_the_bus(tmp_path, amqp_url):
    dsn = demo_company(tmp_path / "exchequer.db")
    state_dsn = f"sqlite:///{tmp_path}/state.db"
    declare_topology(amqp_url, Topology())
    with sandbox_shop() as (shop, server, _, credentials), connect(dsn) as database:
        settings = Settings(amqp_url=amqp_url, exchequer_dsn=dsn, state_dsn=state_dsn, woo_url=server.url,
                            woo_consumer_key=credentials.consumer_key,
                            woo_consumer_secret=credentials.consumer_secret,
                            config=validate_config({"shop": {"requests_per_second": 100}})[0])
        worker = start_writer_thread(settings)
        capture, close = build_capture(settings)
        try:
            web = web_products(database)
            capture.run_once()
            wait_for(lambda: set(shop_products(shop)) == set(web), "every web product")

            boms = ExchequerReader(database=database).bom_components()
            kit, parts = next((code, parts) for code, parts in boms.items()
                              if all(part.component_code not in boms for part in parts)
                              and shop_products(shop)[code]["stock_quantity"] > 0)
            component = next(part.component_code for part in parts if part.component_type == "P")
            simple = [code for code, item in web.items() if item.type == "P"
                      and all(code != part.component_code for group in boms.values() for part in group)]
            moved, repriced, recategorised = simple[:3]
            before = shop_products(shop)

            adjust_stock(database, stock_code=moved, location="MAI", qty=5)
            change_price(database, stock_code=repriced, band="A", price=19.99)
            change_price(database, stock_code=repriced, band="B", price=15.5)
            set_category(database, recategorised, "Clearance")
            empty_component_stock(database, component)
            report = capture.run_once()
            assert (report.products_changed, report.stock_changed) >= (2, 2)

            def settled():
                now = shop_products(shop)
                wholesale = {m["key"]: m["value"] for m in now[repriced]["meta_data"]}
                return (now[moved]["stock_quantity"] == before[moved]["stock_quantity"] + 5
                        and now[repriced]["regular_price"] == "19.99"
                        and wholesale.get("wholesale_customer_wholesale_price") == "15.50"
                        and [c["name"] for c in now[recategorised]["categories"]] == ["Clearance"]
                        and now[kit]["stock_quantity"] == 0 and now[kit]["stock_status"] == "outofstock")

            wait_for(settled, "the four changes")
            assert capture.run_once().stock_changed == 0
        finally:
            close()
            worker.stop()


def test_capture_runs_on_its_interval_as_a_process_and_gives_its_lease_back(tmp_path, amqp_url):
    dsn = demo_company(tmp_path / "exchequer.db", items=10, boms=0)
    state_dsn = f"sqlite:///{tmp_path}/state.db"
    declare_topology(amqp_url, Topology())
    probe = bind_probe(amqp_url, exchange="exchequer", routing_key="stock.changed")
    env = {**os.environ, "EXSYNC_EXCHEQUER_DSN": dsn, "EXSYNC_STATE_DSN": state_dsn, "EXSYNC_AMQP_URL": amqp_url}
    process = subprocess.Popen([sys.executable, "-m", "exsync.cli", "capture", "--interval-seconds", "0.3"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        [(first, _)] = read_messages(amqp_url, probe, count=1, timeout_seconds=WAIT_SECONDS)
        code = first["data"]["items"][0]["sku"]
        with connect(dsn) as database:
            adjust_stock(database, stock_code=code, location="MAI", qty=3)
        [(second, _)] = read_messages(amqp_url, probe, count=1, timeout_seconds=WAIT_SECONDS)
        assert [item["sku"] for item in second["data"]["items"]] == [code]
        assert second["data"]["items"][0]["sequence"] > first["data"]["items"][-1]["sequence"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    with connect(state_dsn) as state_database:
        assert CaptureState(database=state_database, company="ZZZZ01").acquire() is True


def _writer_env(tmp_path, *, dsn, amqp_url, server, credentials, products=None):
    config = tmp_path / "exsync.yaml"
    config.write_text(json.dumps({"shop": {"requests_per_second": 100},
                                  "products": {"stock_check_delay_seconds": 0.5, **(products or {})}}))
    return {**os.environ, "EXSYNC_EXCHEQUER_DSN": dsn, "EXSYNC_STATE_DSN": dsn, "EXSYNC_AMQP_URL": amqp_url,
            "EXSYNC_WOO_URL": server.url, "EXSYNC_WOO_CONSUMER_KEY": credentials.consumer_key,
            "EXSYNC_WOO_CONSUMER_SECRET": credentials.consumer_secret, "EXSYNC_CONFIG": str(config)}


def _stop(process):
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return stderr.decode(errors="replace")


def test_a_cancellation_in_the_shop_is_corrected_by_the_writer_process_on_postgresql(tmp_path, amqp_url,
                                                                                      pg_odbc_dsn):
    codes = company(pg_odbc_dsn)
    declare_topology(amqp_url, Topology())
    with sandbox_shop() as (shop, server, client, credentials):
        env = _writer_env(tmp_path, dsn=pg_odbc_dsn, amqp_url=amqp_url, server=server, credentials=credentials)
        settings = load_settings(env)
        assert export_products(settings).flush.failed == 0
        with connect(pg_odbc_dsn) as database:
            free = {e.sku: e.quantity for e in iter_exports(ExchequerReader(database=database))}
        code = next(code for code in codes if free.get(code, 0) >= 10)
        writer = subprocess.Popen([sys.executable, "-m", "exsync.cli", "consume", "woo-writer"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            order = place_order(shop, lines=[(code, 3)])
            orders = OrdersConsumer(exchequer_dsn=pg_odbc_dsn, config=settings.config, publisher=RecordingPublisher())
            try:
                assert orders.handle_event(event(client.get_order(order["id"]))) == "imported"
            finally:
                orders.close()
            client.update_order_status(order["id"], "cancelled")
            assert shop_products(shop)[code]["stock_quantity"] == free[code]  # the shop put its 3 back
            with Publisher(url=amqp_url, topology=Topology()) as publisher:
                cancelled = client.get_order(order["id"])
                publisher.publish(exchange="woo", routing_key="order.updated", event=new_event(
                    type="woo.order.updated", source=server.url, subject=str(order["id"]), data=cancelled))
            # The SOR still allocates the 3: the shop must show Exchequer's lower figure.
            wait_for(lambda: shop_products(shop)[code]["stock_quantity"] == free[code] - 3,
                     "the shop to show Exchequer's free stock again")
        finally:
            stderr = _stop(writer)
        assert writer.returncode == 0, stderr


def test_two_writers_meet_without_a_crash_on_postgresql(tmp_path, amqp_url, pg_odbc_dsn):
    """`exsync consume woo-writer` flushing what capture published while `exsync export products` flushes the
    same rows: one writes at a time (the lease), categories are made once, nobody dies."""
    company(pg_odbc_dsn)
    declare_topology(amqp_url, Topology())
    with sandbox_shop(item_latency_seconds=0.002) as (shop, server, _, credentials):
        env = _writer_env(tmp_path, dsn=pg_odbc_dsn, amqp_url=amqp_url, server=server, credentials=credentials,
                          products={"flush_items": 1})
        settings = load_settings(env)
        writer = subprocess.Popen([sys.executable, "-m", "exsync.cli", "consume", "woo-writer"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            capture, close = build_capture(settings)
            try:
                capture.run_once(force=True)
                capture.state.release()
            finally:
                close()
            exporter = subprocess.run([sys.executable, "-m", "exsync.cli", "export", "products"], env=env,
                                      capture_output=True, timeout=120)
            assert exporter.returncode == 0, exporter.stderr.decode(errors="replace")
            with connect(pg_odbc_dsn) as database:
                web = {e.sku: e for e in iter_exports(ExchequerReader(database=database))}

            def written():
                now = shop_products(shop)
                return set(now) == set(web) and all(now[sku]["stock_quantity"] == web[sku].quantity for sku in web)

            wait_for(written, "every web product in the shop")
            assert writer.poll() is None  # the consumer is alive
            names = sorted(c["name"] for c in shop.categories.values())
            assert len(names) == len(set(names))  # each category made once
            assert {c["name"] for p in shop_products(shop).values() for c in p["categories"]} == {
                e.category for e in web.values()}
        finally:
            stderr = _stop(writer)
        assert writer.returncode == 0, stderr
        assert "Traceback" not in stderr
