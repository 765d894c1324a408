"""The order pipeline end to end: sandbox shop → signed webhook → `exsync webhook` (gunicorn) → RabbitMQ →
orders consumer → SOR in Exchequer on PostgreSQL (pyodbc) → write-back consumer → note and status in the shop."""

import decimal
import threading

import pytest

from exsync.bus import Publisher, Topology, Worker, declare_topology
from exsync.consumers.order_writeback import OrderWritebackConsumer
from exsync.consumers.orders import OrdersConsumer
from exsync.exchequer import ExchequerReader, connect, dispatch_order
from exsync.exchequer.progress import OrderProgressCapture
from exsync.sandbox import SandboxServer, SandboxShop, place_order, seed_shipping, seed_taxes
from exsync.woo import WooClient
from tests.consumers.conftest import company, config
from tests.e2e.test_webhook_process import SECRET, webhook_server  # noqa: F401 - the fixture
from tests.support.waiting import wait_for


class Running:
    """Workers on threads, stopped and joined at the end."""

    def __init__(self):
        self.workers = []

    def start(self, worker):
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.workers.append((worker, thread))

    def stop(self):
        for worker, thread in self.workers:
            worker.stop()
            thread.join(timeout=10)


@pytest.mark.slow
def test_a_checkout_becomes_a_sales_order_and_the_shop_hears_back(amqp_url, pg_odbc_dsn, webhook_server):  # noqa: F811
    codes = company(pg_odbc_dsn)
    declare_topology(amqp_url, Topology())
    shop = SandboxShop()
    seed_taxes(shop)  # GB VAT 20 % on goods and shipping, as the real shop had it
    credentials = shop.add_credentials()
    for code in codes[:2]:
        shop.create_product({"name": f"Product {code}", "sku": code, "type": "simple", "regular_price": "12.50",
                             "manage_stock": True, "stock_quantity": 50})
    uk_zone = seed_shipping(shop)[0]
    settings = config(complete_on_dispatch=True)
    running = Running()
    with SandboxServer(shop=shop) as server, WooClient(
            url=server.url, consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
            requests_per_second=200) as client:
        for topic in ("order.created", "order.updated", "order.deleted"):
            shop.create_webhook({"name": f"exsync {topic}", "topic": topic, "secret": SECRET,
                                 "delivery_url": f"{webhook_server}/webhooks/woocommerce"})
        orders = OrdersConsumer(exchequer_dsn=pg_odbc_dsn, config=settings,
                                publisher=Publisher(url=amqp_url, topology=Topology()))
        writeback = OrderWritebackConsumer(state_dsn=pg_odbc_dsn, config=settings, client=client)
        running.start(Worker(url=amqp_url, queue="orders.import", handler=orders.handle, topology=Topology(),
                             on_idle=orders.on_idle))
        running.start(Worker(url=amqp_url, queue="orders.writeback", handler=writeback.handle, topology=Topology()))
        try:
            method = shop.list_zone_methods(uk_zone["id"])[0]
            order = place_order(shop, lines=[(codes[0], 2), (codes[1], 1)], shipping_line={
                "method_id": method["method_id"], "instance_id": str(method["instance_id"]),
                "method_title": method["title"], "total": "4.95"})

            tracked = wait_for(lambda: (row := orders._connections().orders.get(order["id"])) and row.refs and row,
                               "the order to be imported")
            [reference] = tracked.refs
            document = ExchequerReader(database=connect(pg_odbc_dsn)).document(reference)
            assert reference.startswith("SOR")
            assert [line.stock_code for line in document.lines if line.stock_code] == codes[:2]
            assert order["total_tax"] == "8.49" and order["tax_lines"][0]["rate_code"] == "GB-VAT-1"
            net, vat = (decimal.Decimal(str(round(value, 2))) for value in (document.header.net_value,
                                                                             document.header.total_vat))
            assert (net, vat) == (decimal.Decimal(order["total"]) - decimal.Decimal(order["total_tax"]),
                                  decimal.Decimal(order["total_tax"]))
            wait_for(lambda: shop.notes[order["id"]], "the import note")
            assert [n["note"] for n in shop.notes[order["id"]]] == [f"Imported into Exchequer as {reference}."]

            database = connect(pg_odbc_dsn)
            delivery = dispatch_order(database, reference)
            with Publisher(url=amqp_url, topology=Topology()) as publisher:
                assert OrderProgressCapture(database=database, publisher=publisher).run_once() == 1
            wait_for(lambda: shop.get_order(order["id"])["status"] == "completed", "the order to be completed")
            customer_notes = [n["note"] for n in shop.notes[order["id"]] if n["customer_note"]]
            assert customer_notes == [f"Your order has been dispatched (delivery note {delivery})."]
            # Our own status change comes back as order.updated: tracked, never a second document.
            wait_for(lambda: orders._connections().orders.get(order["id"]).status == "completed",
                     "the completed version to come back")
            with database.transaction(write=False) as cursor:
                # one SOR besides the seed's open orders (which carry its allocations)
                assert cursor.scalar("SELECT COUNT(*) FROM {documents} WHERE {documents.doc_type} = 8 "
                                     "AND {documents.your_ref} NOT LIKE 'BACKLOG%'") == 1
            database.close()

            # A second order, cancelled in the shop after import: recorded, noted, its SOR kept.
            second = place_order(shop, lines=[(codes[1], 1)])
            wait_for(lambda: orders._connections().orders.get(second["id"]) and
                     orders._connections().orders.get(second["id"]).refs, "the second import")
            shop.update_order(second["id"], {"status": "cancelled"})
            wait_for(lambda: any(n["note"].startswith("Order cancelled in the shop after it was paid")
                                 for n in shop.notes[second["id"]]), "the cancellation note")
            tracked = orders._connections().orders.get(second["id"])
            assert (tracked.status, tracked.import_state, tracked.cancel_published) == ("cancelled", "imported", True)
        finally:
            running.stop()
            orders.close()
            writeback._notes().database.close()
