"""Customers both ways end to end: sandbox shop → signed webhook → `exsync webhook` → RabbitMQ → customers
consumer → account on PostgreSQL (pyodbc); an account edit → capture → RabbitMQ → customers-export → the shop."""

import collections

import pytest

from exsync.bus import Publisher, Topology, Worker, declare_topology
from exsync.consumers.customer_accounts import customer_key
from exsync.consumers.customers import CustomersConsumer
from exsync.exchequer import ExchequerReader, SqlWriteBackend, connect, edit_account
from exsync.exchequer.account_capture import AccountCapture
from exsync.exchequer.writer import KIND_ACCOUNT
from exsync.metrics import Metrics
from exsync.sandbox import SandboxServer, SandboxShop
from exsync.woo import WooClient
from tests.consumers.conftest import company
from tests.consumers.test_customers import customers_config, register
from tests.e2e.test_orders_e2e import Running
from tests.e2e.test_webhook_process import SECRET, webhook_server  # noqa: F401 - the fixture
from tests.support.rabbit import queue_depth
from tests.support.waiting import wait_for


class Outcomes(Metrics):
    """Counts the consumer's sync outcomes by (source, outcome)."""

    def __init__(self):
        self.counts = collections.Counter()

    def inc(self, name, amount=1, **labels):
        if name == "customer_syncs":
            self.counts[(labels["source"], labels["outcome"])] += amount


@pytest.mark.slow
def test_a_registration_becomes_an_account_and_an_account_edit_reaches_the_shop_once(
        amqp_url, pg_odbc_dsn, webhook_server):  # noqa: F811
    company(pg_odbc_dsn)
    topology = Topology()
    declare_topology(amqp_url, topology)
    shop = SandboxShop()
    credentials = shop.add_credentials()
    outcomes = Outcomes()
    running = Running()
    with SandboxServer(shop=shop) as server, WooClient(
            url=server.url, consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
            requests_per_second=200) as client, connect(pg_odbc_dsn) as database:
        for topic in ("customer.created", "customer.updated", "customer.deleted"):
            shop.create_webhook({"name": f"exsync {topic}", "topic": topic, "secret": SECRET,
                                 "delivery_url": f"{webhook_server}/webhooks/woocommerce"})
        consumers = [CustomersConsumer(exchequer_dsn=pg_odbc_dsn, config=customers_config(export_accounts="all"), client=client,
                                       metrics=outcomes) for _ in range(2)]
        running.start(Worker(url=amqp_url, queue="customers.import", handler=consumers[0].handle, topology=topology))
        running.start(Worker(url=amqp_url, queue="customers.export", handler=consumers[1].handle, topology=topology))
        capture = AccountCapture(database=database, state_database=database,
                                 publisher=Publisher(url=amqp_url, topology=topology), company="ZZZZ01")
        try:
            customer = register(shop, email="e2e@example.test")
            # customer.created and customer.updated both arrive: one account, made once.
            wait_for(lambda: outcomes.counts[("shop", "created")] + outcomes.counts[("shop", "unchanged")] == 2,
                     "both registration webhooks to be handled")
            assert outcomes.counts[("shop", "created")] == 1
            code = SqlWriteBackend(database=database).existing_reference(KIND_ACCOUNT, customer_key(customer["id"]))
            made = ExchequerReader(database=database).account(code)
            assert (made.contact, made.email, made.post_code) == ("Jane Smith", "e2e@example.test", "YO1 1AA")

            # The first capture publishes every account: the seeded ones become shop customers, ours is unchanged.
            seeded = [a for a in ExchequerReader(database=database).iter_accounts() if a.code != code]
            published = capture.run_once()
            assert published == len(seeded) + 1
            with_email = [a for a in seeded if a.email]
            # An account whose new shop customer's webhook is being handled meanwhile is retried, so
            # outcomes are counted once or more, but each customer is created once.
            wait_for(lambda: outcomes.counts[("exchequer", "created")] == len(with_email),
                     "every account with an e-mail to become a shop customer")
            shop_emails = {c["email"] for c in shop.list_customers({"role": "all"})}
            assert {a.email.lower() for a in with_email} <= shop_emails
            assert len(shop_emails) == len(with_email) + 2  # and the registration and the shop's admin
            assert outcomes.counts[("exchequer", "unchanged")] >= 1

            # An edit in Exchequer reaches the shop; the shop's webhook for that write changes nothing.
            before = dict(outcomes.counts)
            edit_account(database, code, phone="01904 999999", company="E2E Trading Ltd")
            assert capture.run_once() == 1
            wait_for(lambda: shop.get_customer(customer["id"])["billing"]["phone"] == "01904 999999",
                     "the account edit to reach the shop")
            assert shop.get_customer(customer["id"])["billing"]["company"] == "E2E Trading Ltd"
            wait_for(lambda: outcomes.counts[("shop", "unchanged")] > before.get(("shop", "unchanged"), 0),
                     "the shop's webhook for our write")
            wait_for(lambda: outcomes.counts[("exchequer", "updated")] == 1, "the export to be counted")
            assert capture.run_once() == 0
            assert queue_depth(amqp_url, "customers.import.dead") == 0
            assert queue_depth(amqp_url, "customers.export.dead") == 0
        finally:
            running.stop()
            capture.publisher.close()
            for consumer in consumers:
                consumer._per_thread.close()
