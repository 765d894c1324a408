"""`make demo`: the whole pipeline on the embedded default, narrated.

The demo Exchequer company (SQLite under var/demo), the sandbox shop (a real HTTP server in this
process), the local RabbitMQ, and exsync's own processes: the webhook receiver under gunicorn,
the consumers and the change capture. It places orders in the shop, changes stock in Exchequer,
and prints what each part did.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pika

from exsync.bus import Publisher, Topology, declare_topology
from exsync.config import child_environment, load_settings
from exsync.exchequer import ExchequerReader, connect, init_schema, mapping_for, seed
from exsync.logs import configure_logging
from exsync.woo import Reconciler, WebhookRegistrar, WooClient
from exsync.woo.sandbox import SandboxServer, SandboxShop, place_order, seed_customers, seed_shipping
from exsync.woo.state import MemoryStore

__all__ = ["main"]

DEMO_DIR = os.path.join("var", "demo")
DEMO_SECRET = "demo-webhook-secret"
PROBE_QUEUE = "demo.observer"


def say(text=""):
    print(text, flush=True)


def step(title):
    say()
    say(f"== {title}")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port, timeout_seconds=30):
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}")


@contextlib.contextmanager
def webhook_receiver(settings, port):
    """`exsync webhook` as its own gunicorn process, as it runs in production."""
    env = child_environment(
        EXSYNC_AMQP_URL=settings.amqp_url,
        EXSYNC_WEBHOOK_SECRETS=DEMO_SECRET,
        EXSYNC_BIND=f"127.0.0.1:{port}",
        EXSYNC_WEBHOOK_WORKERS="2",
        EXSYNC_LOG_LEVEL="WARNING",
        PROMETHEUS_MULTIPROC_DIR=os.path.abspath(os.path.join(DEMO_DIR, "metrics")),
    )
    log = open(os.path.join(DEMO_DIR, "webhook.log"), "wb")
    process = subprocess.Popen([sys.executable, "-m", "exsync.cli", "webhook"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


class Observer:
    """A queue of the demo's own bound to every event, to show what went over the bus."""

    def __init__(self, url):
        self.url = url
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        channel.queue_declare(PROBE_QUEUE, durable=False, auto_delete=False)
        channel.queue_purge(PROBE_QUEUE)
        for exchange in ("woo", "exchequer"):
            channel.queue_bind(PROBE_QUEUE, exchange, routing_key="#")
        connection.close()

    def take(self, *, count, timeout_seconds=15):
        import json

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        channel = connection.channel()
        events, deadline = [], time.monotonic() + timeout_seconds
        while len(events) < count and time.monotonic() < deadline:
            method, _, body = channel.basic_get(PROBE_QUEUE, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            events.append((method.exchange, method.routing_key, json.loads(body)))
        connection.close()
        return events

    def close(self):
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        connection.channel().queue_delete(PROBE_QUEUE)
        connection.close()


def _purge(url, topology):
    """Empties the queues a previous demo run may have left messages on, so this run shows its own."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in topology.all_queue_names():
        channel.queue_purge(queue)
    connection.close()


def show_event(exchange, routing_key, event):
    data = event.get("data") or {}
    summary = f"status={data.get('status')}" if "status" in data else ""
    say(f"   {exchange:9} {routing_key:16} type={event['type']:24} subject={event['subject']:>5} "
        f"source={event['source']} {summary}")


def run(settings):
    if os.path.exists(DEMO_DIR):
        shutil.rmtree(DEMO_DIR)
    os.makedirs(DEMO_DIR)
    dsn = f"sqlite:///{os.path.abspath(os.path.join(DEMO_DIR, 'exchequer.db'))}"
    settings = settings.replace(exchequer_dsn=dsn, state_dsn=dsn, webhook_secrets=(DEMO_SECRET,))

    step("1. The demo Exchequer company")
    database = connect(dsn, mapping=mapping_for(settings.config))
    init_schema(database)
    summary = seed(database, items=40, locations=2, boms=4, accounts=12)
    say(f"   {summary}")
    reader = ExchequerReader(database=database)
    items = [item for item in reader.iter_stock_items() if item.type == "P" and item.web_enabled][:6]
    for item in items[:3]:
        say(f"   {item.code:16} {item.description[:30]:30} in stock {item.in_stock:6.0f}  "
            f"band A {item.band_a_price:8.2f}  band B {item.band_b_price:8.2f}")

    step("2. RabbitMQ topology")
    topology = Topology.from_config(settings.config)
    declare_topology(settings.amqp_url, topology)
    say(f"   exchanges woo, exchequer; {len(topology.all_queue_names())} durable quorum queues "
        "(consumer queues, retry queues with growing delays, dead-letter queues)")
    _purge(settings.amqp_url, topology)
    observer = Observer(settings.amqp_url)

    with contextlib.ExitStack() as stack:
        stack.callback(observer.close)
        step("3. The sandbox shop and the webhook receiver")
        shop = SandboxShop(home_url="http://shop.demo.test/")
        credentials = shop.add_credentials()
        sandbox = stack.enter_context(SandboxServer(shop=shop))
        for item in items:
            shop.create_product({"name": item.description, "sku": item.code, "type": "simple",
                                 "regular_price": f"{item.band_a_price:.2f}", "manage_stock": True,
                                 "stock_quantity": 50})
        customers = seed_customers(shop, count=3, wholesale=1)
        seed_shipping(shop)
        receiver_url = stack.enter_context(webhook_receiver(settings, _free_port()))
        say(f"   sandbox shop at {sandbox.url} ({len(items)} products, {len(customers)} customers)")
        say(f"   exsync webhook (gunicorn, 2 workers) at {receiver_url}")

        step("4. exsync register-webhooks: the shop's webhooks point at the receiver")
        client = WooClient(url=sandbox.url, consumer_key=credentials.consumer_key,
                           consumer_secret=credentials.consumer_secret, requests_per_second=50)
        registrar = WebhookRegistrar(client=client, delivery_url=f"{receiver_url}/webhooks/woocommerce",
                                     secret=DEMO_SECRET, topics=("order.created", "order.updated"))
        for action in registrar.sync():
            say(f"   {action.action:10} webhook {action.webhook_id} for {action.topic}")
        shop.wait_for_deliveries(timeout_seconds=10)
        pings = [r for r in shop.deliverer.records if r.kind == "ping"]
        say(f"   pings answered: {', '.join(str(r.status_code) for r in pings)}")

        step("5. A customer checks out: WooCommerce delivers signed webhooks")
        order = place_order(shop, lines=[(items[0].code, 2), (items[1].code, 1)], customer_id=customers[0]["id"])
        shop.wait_for_deliveries(timeout_seconds=10)
        for record in shop.deliverer.records:
            if record.kind == "delivery":
                say(f"   delivery {record.topic:14} -> HTTP {record.status_code}")
        for exchange, key, event in observer.take(count=2):
            show_event(exchange, key, event)
        say(f"   order {order['id']} is on queue orders.import, confirmed by the broker before the 200")

        step("6. A tampered delivery is refused")
        import requests

        from exsync.webhooks import compute_signature
        from exsync.woo.sandbox import php_json_dumps

        body = php_json_dumps(client.get_order(order["id"]))
        headers = {"Content-Type": "application/json", "X-WC-Webhook-Topic": "order.updated",
                   "X-WC-Webhook-Signature": compute_signature(body, DEMO_SECRET)}
        tampered = body.replace(b'"status":"processing"', b'"status":"completed"')
        answer = requests.post(f"{receiver_url}/webhooks/woocommerce", data=tampered, headers=headers, timeout=10)
        say(f"   tampered body -> HTTP {answer.status_code}; nothing published: "
            f"{observer.take(count=1, timeout_seconds=1) == []}")

        step("7. Webhooks disabled: the reconciler closes the gap")
        for hook in client.iter_webhooks():
            shop.set_webhook_status(hook["id"], "disabled")
        missed = [place_order(shop, lines=[(items[2].code, 1)]) for _ in range(3)]
        shop.wait_for_deliveries(timeout_seconds=5)
        publisher = stack.enter_context(Publisher(url=settings.amqp_url, topology=topology))
        reconciler = Reconciler(client=client, publisher=publisher, store=MemoryStore(), registrar=registrar,
                                initial_lookback_seconds=3600)
        report = reconciler.run_once()
        say(f"   {len(missed)} orders placed while the webhooks were disabled; the reconciler published "
            f"{report.orders_published} orders and {report.customers_published} customers")
        published = report.orders_published + report.customers_published
        for exchange, key, event in observer.take(count=published, timeout_seconds=5):
            show_event(exchange, key, event)
        for action in registrar.sync():
            say(f"   registrar: {action.action} webhook {action.webhook_id} ({action.topic})")
        say(f"   webhooks now: {', '.join(h['status'] for h in client.iter_webhooks())}")
        order = place_order(shop, lines=[(items[3].code, 1)])
        shop.wait_for_deliveries(timeout_seconds=10)
        say(f"   the next order, {order['id']}, arrives by webhook again:")
        for exchange, key, event in observer.take(count=2):
            show_event(exchange, key, event)

        step("8. Metrics of the receiver")
        exposition = requests.get(f"{receiver_url}/metrics", timeout=5).text
        for line in exposition.splitlines():
            if line.startswith(("exsync_webhook_requests_total", "exsync_webhook_unauthorized_total",
                                "exsync_bus_messages_published_total")):
                say(f"   {line}")
    say()
    say("demo finished")
    return 0


def main():
    settings = load_settings()
    configure_logging("WARNING")
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
