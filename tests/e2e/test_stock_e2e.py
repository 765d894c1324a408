"""Exchequer -> shop end to end: capture publishes to RabbitMQ, the woo-writer consumes and writes the
sandbox shop over real HTTP. A stock movement, a price change, a BOM component shortage and a
category change in the demo company each reach the shop."""

import os
import signal
import subprocess
import sys

from exsync.bus import Topology, declare_topology
from exsync.config import Settings
from exsync.consumers.product_export import start_writer_thread
from exsync.exchequer import ExchequerReader, adjust_stock, change_price, connect
from exsync.exchequer.capture import CaptureState, build_capture
from exsync.schemas.config import validate_config
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
