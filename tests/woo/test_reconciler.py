"""The reconciler closing the gap while webhooks are down, against the sandbox and a real RabbitMQ vhost."""

import threading
import time

import pytest

from exsync.bus import BrokerUnavailable, Publisher, Topology, declare_topology
from exsync.exchequer import StateValues, connect
from exsync.sandbox import place_order, seed_catalogue, seed_customers
from exsync.schemas.config import validate_config
from exsync.webhooks.signature import verify_signature
from exsync.woo import MemoryStore, Reconciler, WebhookRegistrar
from exsync.woo.dates import parse_wc_gmt
from tests.support.net import free_port
from tests.support.rabbit import bind_probe, read_messages

SECRET = "reconciler-secret"


@pytest.fixture
def bus(amqp_url):
    declare_topology(amqp_url, Topology.from_config(validate_config({})[0]))
    publisher = Publisher(url=amqp_url)
    yield amqp_url, publisher
    publisher.close()


def test_orders_missed_while_webhooks_were_disabled_are_published_then_webhooks_resume(
        client, shop, sandbox, receiver, bus, tmp_path, metrics):
    amqp_url, publisher = bus
    orders_probe = bind_probe(amqp_url, exchange="woo", routing_key="order.updated")
    registrar = WebhookRegistrar(client=client, delivery_url=receiver.url, secret=SECRET,
                                 topics=("order.created", "order.updated"), metrics=metrics)
    registrar.sync()
    seed_catalogue(shop, count=5)

    # The receiver is failing (say, its broker is down): WooCommerce disables the webhooks.
    receiver.status = 503
    placed = [place_order(shop, lines=[(f"SKU-000{n % 5 + 1}", 1)]) for n in range(50)]
    assert shop.wait_for_deliveries(timeout_seconds=20)
    assert {h["status"] for h in client.iter_webhooks()} == {"disabled"}
    assert len(receiver.deliveries) == 14  # 7 failures per webhook, then nothing

    # The reconciler runs on its interval, re-publishing the gap and repairing the webhooks each pass.
    state_dsn = f"sqlite:///{tmp_path / 'state.db'}"
    state_db = connect(state_dsn)
    store = StateValues(database=state_db).ensure()
    reconciler = Reconciler(client=client, publisher=publisher, store=store, registrar=registrar, metrics=metrics)
    stop = threading.Event()
    loop = threading.Thread(target=reconciler.run_forever, kwargs={"interval_seconds": 0.2, "stop": stop})
    loop.start()
    try:
        messages = read_messages(amqp_url, orders_probe, count=50, timeout_seconds=30)
        deadline = time.monotonic() + 10
        while {h["status"] for h in client.iter_webhooks()} != {"active"} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert sorted(int(m["subject"]) for m, _ in messages) == sorted(o["id"] for o in placed)
    envelope, properties = messages[0]
    assert envelope["type"] == "woo.order.updated" and properties.delivery_mode == 2
    assert envelope["source"] == f"exsync-reconciler:{sandbox.url}"
    assert envelope["data"] == client.get_order(int(envelope["subject"]))
    newest = max(parse_wc_gmt(o["date_modified_gmt"]) for o in placed)
    assert reconciler.watermark("orders") == newest
    state_db.close()
    with connect(state_dsn) as database:
        assert StateValues(database=database).get(f"woo.reconciler.orders:{sandbox.url}") == newest.isoformat()
    assert metrics.count("woo_reconciler_published", resource="order") >= 50

    # The registrar re-activated them, and the next order arrives by webhook.
    assert {h["status"] for h in client.iter_webhooks()} == {"active"}
    receiver.status = 200
    receiver.requests.clear()
    order = place_order(shop, lines=[("SKU-0001", 1)])
    assert shop.wait_for_deliveries(timeout_seconds=10)
    delivered = {h["X-WC-Webhook-Topic"]: (h, body) for h, body in receiver.deliveries}
    assert set(delivered) == {"order.created", "order.updated"}
    headers, body = delivered["order.updated"]
    assert verify_signature(body, headers["X-WC-Webhook-Signature"], [SECRET])
    assert f'"id":{order["id"]},'.encode() in body


def test_the_watermark_moves_only_after_the_broker_confirmed(client, shop, bus):
    amqp_url, publisher = bus
    seed_catalogue(shop, count=1)
    first = place_order(shop, lines=[("SKU-0001", 1)])
    store = MemoryStore()
    down = Publisher(url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    passes = []
    with pytest.raises(BrokerUnavailable):
        Reconciler(client=client, publisher=down, store=store,
                   on_pass=lambda ok, detail: passes.append((ok, detail))).run_once()
    assert store.get(f"woo.reconciler.orders:{client.url}") is None
    [(ok, detail)] = passes
    assert not ok and detail.startswith("BrokerUnavailable: ")  # what exsync status shows

    probe = bind_probe(amqp_url, exchange="woo", routing_key="order.updated")
    reconciler = Reconciler(client=client, publisher=publisher, store=store, overlap_seconds=0,
                            on_pass=lambda ok, detail: passes.append((ok, detail)))
    assert reconciler.run_once().orders_published == 1
    assert passes[-1] == (True, "")
    assert reconciler.watermark("orders") == parse_wc_gmt(first["date_modified_gmt"])
    # Without overlap, a second pass finds nothing newer than the watermark.
    assert reconciler.run_once().orders_published == 0
    assert len(read_messages(amqp_url, probe, count=1)) == 1


def test_customers_are_published_by_role_since_their_watermark(client, shop, bus):
    amqp_url, publisher = bus
    probe = bind_probe(amqp_url, exchange="woo", routing_key="customer.updated")
    customers = seed_customers(shop, count=4, wholesale=1)
    reconciler = Reconciler(client=client, publisher=publisher, store=MemoryStore(), overlap_seconds=0)
    assert reconciler.run_once().customers_published == 4
    messages = read_messages(amqp_url, probe, count=4)
    assert sorted(int(m["subject"]) for m, _ in messages) == sorted(c["id"] for c in customers)
    assert {m["type"] for m, _ in messages} == {"woo.customer.updated"}
    assert reconciler.run_once().customers_published == 0
