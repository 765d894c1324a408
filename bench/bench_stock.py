"""Asserting Exchequer's free stock over the shop's.

1. stock_audit_requests_per_100_skus: a 5,000-product company exported to the sandbox shop, then a
   stock audit with nothing to correct: the shop requests it made per 100 SKUs checked (the pages of
   100 products; goal <= 1.05).
2. stock_drift_repair_seconds: the whole path as production runs it. The sandbox shop delivers its
   signed webhooks to `exsync webhook` (gunicorn); `exsync consume orders` imports a paid order (its
   SOR allocates the stock), `exsync consume woo-writer` and `exsync capture` run with the default
   settings. The order is cancelled in the shop, which puts its stock back; the measure is the time
   from the cancellation until the shop shows Exchequer's free stock again (goal: the capture interval
   + 5 s).
"""

import json
import os
import subprocess
import sys
import time

from bench.results import record
from bench.support import BENCH_AMQP_URL, RequestCounter, bench_vhost, free_port, remove_sqlite, server, until
from exsync.bus import Topology
from exsync.consumers.product_export import WriterSink
from exsync.consumers.woo_writer import ExchequerFreeStock, WooWriter
from exsync.exchequer import ExchequerReader, connect, init_schema, mapping_for, seed
from exsync.exchequer.capture import CaptureState, ChangeCapture, iter_exports
from exsync.sandbox import SandboxServer, SandboxShop, place_order
from exsync.schemas.config import (
    DEFAULT_CAPTURE_INTERVAL_SECONDS,
    DEFAULT_STOCK_CHECK_DELAY_SECONDS,
    validate_config,
)
from exsync.state.orders import OrderStore, ensure_order_tables
from exsync.woo import WooClient

BENCH_DIR = os.path.join("var", "bench")
ITEMS = 5_250  # about 5,040 stocked products
AUDITED_AT_LEAST = 5_000
SECRET = "bench-stock-secret"
REPAIR_TIMEOUT_SECONDS = 120




def _fresh(name):
    path = os.path.join(BENCH_DIR, name)
    remove_sqlite(path)
    return f"sqlite:///{path}"


def _shop():
    shop = SandboxShop()
    credentials = shop.add_credentials()
    return shop, SandboxServer(shop=shop).start(), credentials


def _audit_requests():
    company_dsn, state_dsn = _fresh("stock_company.db"), _fresh("stock_state.db")
    shop, sandbox, credentials = _shop()
    counter = RequestCounter()
    with connect(company_dsn) as database, connect(state_dsn) as state_db, connect(state_dsn) as writer_db:
        init_schema(database)
        seed(database, items=ITEMS, locations=3, boms=0, accounts=10)
        with database.transaction() as cursor:
            cursor.run("UPDATE {stock} SET {stock.web_flag} = 'Y' WHERE {stock.type} = 'P'")
        client = WooClient(url=sandbox.url, consumer_key=credentials.consumer_key,
                           consumer_secret=credentials.consumer_secret, requests_per_second=100, metrics=counter)
        writer = WooWriter(database=writer_db, client=client, free_stock=ExchequerFreeStock(
            dsn=company_dsn, mapping=mapping_for(validate_config({})[0]), locations="all"))
        ChangeCapture(reader=ExchequerReader(database=database), state=CaptureState(
            database=state_db, company="BENCH1").ensure(), sink=WriterSink(writer=writer)).run_once()
        writer.flush()
        before = counter.requests
        started = time.perf_counter()
        report = writer.audit_stock()
        seconds = time.perf_counter() - started
        requests = counter.requests - before
        writer.close()
    sandbox.stop()
    if report.checked < AUDITED_AT_LEAST or report.drifted:
        raise RuntimeError(f"expected {AUDITED_AT_LEAST}+ products in step, the audit found {report}")
    record("stock_audit_requests_per_100_skus", value=round(requests / (report.checked / 100), 4),
           unit="requests/100 SKUs", goal="<= 1.05",
           conditions={"shop": "sandbox over HTTP, no latency", "products_checked": report.checked,
                       "requests": requests, "drifted": report.drifted, "seconds": round(seconds, 2),
                       "reads": "GET products, 100 a page, _fields=id,sku,manage_stock,stock_quantity"})


def _repair_seconds():
    company_dsn = _fresh("stock_repair.db")
    with connect(company_dsn) as database:
        init_schema(database)
        seed(database, items=60, locations=2, boms=3, accounts=5)
        exports = {e.sku: e for e in iter_exports(ExchequerReader(database=database))}
    code = next(sku for sku, export in sorted(exports.items()) if export.quantity >= 10)
    shop, sandbox, credentials = _shop()
    config_path = os.path.join(BENCH_DIR, "stock_repair.yaml")
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump({"shop": {"requests_per_second": 50}}, handle)  # everything else at its default
    port = free_port()
    env = {"EXSYNC_AMQP_URL": BENCH_AMQP_URL, "EXSYNC_WEBHOOK_SECRETS": SECRET, "EXSYNC_BIND": f"127.0.0.1:{port}",
           "EXSYNC_EXCHEQUER_DSN": company_dsn, "EXSYNC_STATE_DSN": company_dsn, "EXSYNC_CONFIG": config_path,
           "EXSYNC_WOO_URL": sandbox.url, "EXSYNC_WOO_CONSUMER_KEY": credentials.consumer_key,
           "EXSYNC_WOO_CONSUMER_SECRET": credentials.consumer_secret, "EXSYNC_LOG_LEVEL": "WARNING"}
    exsync = [sys.executable, "-m", "exsync.cli"]
    with bench_vhost(Topology()), server([*exsync, "webhook"], port=port, env=env):
        subprocess.run([*exsync, "export", "products"], env={**os.environ, **env}, check=True, capture_output=True)
        for topic in ("order.created", "order.updated"):
            shop.create_webhook({"name": f"exsync {topic}", "topic": topic, "secret": SECRET,
                                 "delivery_url": f"http://127.0.0.1:{port}/webhooks/woocommerce"})
        processes = [subprocess.Popen([*exsync, *args], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
                     for args in (["consume", "orders"], ["consume", "woo-writer"], ["capture"])]
        try:
            client = WooClient(url=sandbox.url, consumer_key=credentials.consumer_key,
                               consumer_secret=credentials.consumer_secret, requests_per_second=100)
            shop_quantity = lambda: client.products_by_sku([code])[code]["stock_quantity"]  # noqa: E731
            order = place_order(shop, lines=[(code, 3)])
            with connect(company_dsn) as database:
                ensure_order_tables(database)
                store = OrderStore(database=database)
                until(lambda: (t := store.get(order["id"])) and t.import_state == "imported", "the import",
                      timeout_seconds=REPAIR_TIMEOUT_SECONDS)
            exchequer = exports[code].quantity - 3
            until(lambda: shop_quantity() == exchequer, "the shop to settle after the import",
                  timeout_seconds=REPAIR_TIMEOUT_SECONDS)
            client.update_order_status(order["id"], "cancelled")
            cancelled_at = time.monotonic()
            put_back = shop_quantity()
            until(lambda: shop_quantity() == exchequer, "the shop to show Exchequer's figure again",
                  timeout_seconds=REPAIR_TIMEOUT_SECONDS, interval_seconds=0.05)
            seconds = time.monotonic() - cancelled_at
            client.close()
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
    sandbox.stop()
    goal = DEFAULT_CAPTURE_INTERVAL_SECONDS + 5
    record("stock_drift_repair_seconds", value=round(seconds, 2), unit="s", goal=f"<= {goal:g}",
           conditions={"path": "sandbox webhook -> exsync webhook (gunicorn) -> RabbitMQ -> exsync consume "
                               "woo-writer -> one read, one batch write", "capture_interval_seconds":
                       DEFAULT_CAPTURE_INTERVAL_SECONDS, "stock_check_delay_seconds": DEFAULT_STOCK_CHECK_DELAY_SECONDS,
                       "shop_after_cancellation": put_back, "exchequer_free_stock": exchequer,
                       "sandbox_delivery": "the sandbox's own delivery queue"})



def run():
    os.makedirs(BENCH_DIR, exist_ok=True)
    _audit_requests()
    _repair_seconds()
