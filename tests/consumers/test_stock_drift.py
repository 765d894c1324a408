"""The woo-writer asserts Exchequer's free stock over the shop's: the sandbox moves its own stock when an
order is paid or cancelled (as WooCommerce does), order events mark SKUs for a check, and the stock
audit pages through every product. Against the sandbox over HTTP, Exchequer and the state on
PostgreSQL through pyodbc (and on SQLite for the audit's paging)."""

import math
import os
import subprocess
import sys

import pytest

from exsync.consumers.orders import OrdersConsumer
from exsync.consumers.woo_writer import STOCK_FIELDS, WRITER_LEASE, ExchequerFreeStock, WooWriter, stock_moved
from exsync.exchequer import ExchequerReader, connect, mapping_for
from exsync.exchequer.capture import CaptureState, iter_exports
from exsync.sandbox import place_order
from exsync.schemas.config import validate_config
from tests.consumers.conftest import RecordingPublisher, company, config, event
from tests.support.products import CountingMetrics, demo_company, sandbox_shop

FAR_FUTURE = 1e12


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def free_stock_of(dsn):
    with connect(dsn) as database:
        return {export.sku: export.quantity for export in iter_exports(ExchequerReader(database=database))}


def exported_writer(dsn, state_database, client, **options):
    """A writer over `state_database` whose shop has every web product of the company at `dsn`."""
    free_stock = ExchequerFreeStock(dsn=dsn, mapping=mapping_for(validate_config({})[0]), locations="all")
    writer = WooWriter(database=state_database, client=client, free_stock=free_stock, **options)
    with connect(dsn) as database:
        exports = list(iter_exports(ExchequerReader(database=database)))
    writer.accept(products=[e.product_item(1) for e in exports], stock=[e.stock_item(1) for e in exports])
    assert writer.flush().failed == 0
    return writer


def shop_stock(shop):
    with shop.lock:
        return {p["sku"]: (p["stock_quantity"] if p["manage_stock"] else None) for p in shop.products.values()}


@pytest.mark.parametrize(("previous", "status", "expected"), [
    (None, "pending", (False, False)),        # a new order has moved nothing
    (None, "processing", (True, True)),       # paid before we heard of it: the shop reduced its stock
    (None, "cancelled", (True, False)),       # paid and cancelled between two deliveries
    (True, "completed", (False, True)),       # still held: nothing moved
    (True, "cancelled", (True, False)),
    (True, "refunded", (True, False)),
    (True, "failed", (True, False)),
    (True, "pending", (True, False)),         # back to pending: WooCommerce puts the stock back
    (False, "on-hold", (True, True)),
    (False, "cancelled", (False, False)),
    (True, "checkout-draft", (False, True)),  # neither side: remembered as it was
    (None, "trash", (False, None)),
])
def test_which_status_changes_move_the_shops_stock(previous, status, expected):
    assert stock_moved(previous, status) == expected


def test_a_cancelled_order_after_import_shows_exchequers_lower_figure_on_postgresql(pg_odbc_dsn):
    codes = company(pg_odbc_dsn)
    metrics = CountingMetrics()
    clock = Clock()
    with sandbox_shop(metrics=metrics) as (shop, server, client, _), connect(pg_odbc_dsn) as state:
        writer = exported_writer(pg_odbc_dsn, state, client, metrics=metrics, clock=clock,
                                 stock_check_delay_seconds=5)
        exchequer = free_stock_of(pg_odbc_dsn)
        code = next(code for code in codes if exchequer.get(code, 0) >= 10)
        assert shop_stock(shop)[code] == exchequer[code]

        # Paid: the sandbox shop reduces its own stock, as WooCommerce does.
        order = place_order(shop, lines=[(code, 2)])
        assert order["status"] == "processing" and shop_stock(shop)[code] == exchequer[code] - 2
        assert writer.note_order(order) == [code]
        assert writer.note_order(client.get_order(order["id"])) == []  # seen on that side already
        orders = OrdersConsumer(exchequer_dsn=pg_odbc_dsn, config=config(), publisher=RecordingPublisher())
        try:
            assert orders.handle_event(event(client.get_order(order["id"]))) == "imported"
        finally:
            orders.close()
        allocated = free_stock_of(pg_odbc_dsn)[code]
        assert allocated == exchequer[code] - 2  # the SOR allocates what the shop sold
        assert writer.check_marked(now=clock.now) is None  # not due before the order had time to import
        checked = writer.check_marked(now=FAR_FUTURE)
        assert (checked.checked, checked.drifted, checked.requests) == (1, 0, 1)

        # Cancelled in the shop: WooCommerce puts the stock back; the SOR stays in Exchequer.
        client.update_order_status(order["id"], "cancelled")
        assert shop_stock(shop)[code] == exchequer[code]
        assert writer.note_order(client.get_order(order["id"])) == [code]
        assert list(writer.marked()) == [code]
        report = writer.check_marked(now=FAR_FUTURE)
        assert (report.checked, report.drifted, report.corrected, report.failed) == (1, 1, 1, 0)
        assert report.worst == [(code, exchequer[code], allocated)]
        assert shop_stock(shop)[code] == allocated == free_stock_of(pg_odbc_dsn)[code]
        assert writer.marked() == {}
        assert metrics.count("stock_drift_found", source="order") == 1
        assert metrics.count("woo_writer_changes", outcome="corrected") == 1
        # The product was listed by id, trimmed to what a stock check reads, and corrected in a batch.
        read, write = server.request_log[-2:]
        assert (read.method, read.route, write.method, write.route) == ("GET", "products", "POST", "products/batch")
        assert read.args["include"] == str(next(p["id"] for p in shop.products.values() if p["sku"] == code))
        assert (read.args["_fields"], read.args["per_page"]) == (STOCK_FIELDS, "100")
        writer.close()


def test_the_stock_audit_corrects_what_an_admin_typed_in_and_reports_the_worst(tmp_path):
    dsn = demo_company(tmp_path / "exchequer.db")
    metrics = CountingMetrics()
    with sandbox_shop(metrics=metrics) as (shop, _, client, _), connect(f"sqlite:///{tmp_path}/state.db") as state:
        writer = exported_writer(dsn, state, client, metrics=metrics)
        exchequer = free_stock_of(dsn)
        skus = sorted(exchequer)
        by_sku = {p["sku"]: p["id"] for p in shop.products.values()}
        shop.update_product(by_sku[skus[0]], {"stock_quantity": exchequer[skus[0]] + 40})
        shop.update_product(by_sku[skus[1]], {"stock_quantity": exchequer[skus[1]] + 3})
        shop.update_product(by_sku[skus[2]], {"manage_stock": False})
        shop.create_product({"name": "Not in Exchequer", "sku": "SHOP-ONLY", "manage_stock": True,
                             "stock_quantity": 7})
        before = metrics.count("woo_requests")

        report = writer.audit_stock()
        assert (report.checked, report.drifted, report.corrected, report.failed, report.missing) == (
            len(exchequer), 3, 3, 0, 0)
        expected = [(skus[0], exchequer[skus[0]] + 40, exchequer[skus[0]]),
                    (skus[1], exchequer[skus[1]] + 3, exchequer[skus[1]]), (skus[2], None, exchequer[skus[2]])]
        # Largest difference first (a product not managing its stock counts as showing none).
        assert report.worst == sorted(expected, key=lambda e: -abs((e[1] or 0) - e[2]))
        assert {sku: q for sku, q in shop_stock(shop).items() if sku in exchequer} == exchequer
        assert shop_stock(shop)["SHOP-ONLY"] == 7  # not a web product of Exchequer's: not ours to set
        pages = math.ceil(len(shop.products) / 100)
        assert metrics.count("woo_requests") - before == report.requests == pages + 1  # one correcting batch
        assert metrics.count("stock_drift_found", source="audit") == 3
        assert writer.last_audit() is not None

        before = metrics.count("woo_requests")
        again = writer.audit_stock()
        assert (again.drifted, again.corrected, again.requests) == (0, 0, pages)
        assert metrics.count("woo_requests") - before == pages
        writer.close()


def test_the_scheduled_audit_reads_a_page_a_tick_and_keeps_its_schedule(tmp_path):
    dsn = demo_company(tmp_path / "exchequer.db")
    clock = Clock()
    state_dsn = f"sqlite:///{tmp_path}/state.db"
    with sandbox_shop() as (shop, server, client, _), connect(state_dsn) as state:
        writer = exported_writer(dsn, state, client, clock=clock, stock_audit_interval_seconds=60, tick_seconds=0)
        for n in range(230):  # products the shop has and Exchequer does not: three pages in all
            shop.create_product({"name": f"Other {n}", "sku": f"OTHER-{n:03}"})
        drifted = sorted(free_stock_of(dsn))[0]
        product_id = next(p["id"] for p in shop.products.values() if p["sku"] == drifted)
        shop.update_product(product_id, {"stock_quantity": 999})
        writer.on_idle()
        assert writer.last_audit() is None and shop_stock(shop)[drifted] == 999  # not due yet
        clock.now += 61
        writer.on_idle()
        # Another process (an export) takes the writer's lease: the audit's next page waits for it.
        other = CaptureState(database=state, company=WRITER_LEASE)
        assert other.acquire()
        pages_before = len(server.request_log)
        writer.on_idle()
        assert len(server.request_log) == pages_before and writer.last_audit() is None
        other.release()
        writer.on_idle()
        assert writer.last_audit() is None  # two pages read, one to go
        writer.on_idle()
        assert writer.last_audit() == clock.now and shop_stock(shop)[drifted] == free_stock_of(dsn)[drifted]

        # A shop outage mid-audit ends that audit, not the consumer; the next one comes an interval later.
        clock.now += 61
        writer.on_idle()
        shop.faults.inject(status=500, count=10)
        writer.on_idle()
        shop.faults.clear()
        assert writer._audit is None and writer.last_audit() == clock.now - 61
        writer.close()
    with sandbox_shop() as (_, _, client, _), connect(state_dsn) as state:
        restarted = WooWriter(database=state, client=client, free_stock=lambda: {}, clock=clock,
                              stock_audit_interval_seconds=60)
        assert restarted._audit_due_at == restarted.last_audit() + 60  # the schedule survives a restart
        restarted.close()


def test_without_an_interval_there_is_no_scheduled_audit(tmp_path):
    dsn = demo_company(tmp_path / "exchequer.db", items=10, boms=0)
    clock = Clock()
    with sandbox_shop() as (shop, _, client, _), connect(f"sqlite:///{tmp_path}/state.db") as state:
        writer = exported_writer(dsn, state, client, clock=clock, stock_audit_interval_seconds=None, tick_seconds=0)
        clock.now += 10 ** 6
        writer.on_idle()
        assert writer.last_audit() is None
        assert validate_config({"products": {"stock_audit_interval_seconds": None}})[0]["products"][
            "stock_audit_interval_seconds"] is None
        assert validate_config({})[0]["products"]["stock_audit_interval_seconds"] == 900
        writer.close()


def test_exsync_audit_stock_as_a_command(tmp_path):
    dsn = demo_company(tmp_path / "exchequer.db", items=12, boms=0)
    with sandbox_shop() as (shop, server, client, credentials), connect(f"sqlite:///{tmp_path}/state.db") as state:
        exported_writer(dsn, state, client).close()
        drifted = sorted(free_stock_of(dsn))[0]
        product_id = next(p["id"] for p in shop.products.values() if p["sku"] == drifted)
        shop.update_product(product_id, {"stock_quantity": 500})
        env = {key: value for key, value in os.environ.items() if not key.startswith("EXSYNC_")}
        env.update(EXSYNC_EXCHEQUER_DSN=dsn, EXSYNC_STATE_DSN=f"sqlite:///{tmp_path}/state.db",
                   EXSYNC_WOO_URL=server.url, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
                   EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret)
        done = subprocess.run([sys.executable, "-m", "exsync.cli", "audit", "stock"], env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        checked = len(free_stock_of(dsn))
        assert f"{checked} products checked in the shop: 1 differed from Exchequer's free stock, 1 corrected, " \
               "0 failed; 0 web product(s) not in the shop" in done.stdout
        assert f"  {drifted}: the shop showed 500, Exchequer {free_stock_of(dsn)[drifted]}" in done.stdout
        assert shop_stock(shop)[drifted] == free_stock_of(dsn)[drifted]
