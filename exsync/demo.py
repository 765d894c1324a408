"""`make demo`: the whole pipeline on the embedded default, narrated.

The demo Exchequer company (SQLite under var/demo), the sandbox shop (a real HTTP server in this
process), the local RabbitMQ, and exsync's own processes as they run in production: the webhook
receiver under gunicorn, the orders, write-back, woo-writer and customers consumers, and the change
capture. It exports the catalogue, places orders in the shop, syncs customers both ways, changes
stock and dispatches an order in Exchequer, cuts the webhooks, and prints what each part did.
"""

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import requests

from exsync import wiring
from exsync.bus import declare_topology
from exsync.config import Settings, child_environment, load_settings, read_config_file
from exsync.consumers.customer_accounts import customer_key
from exsync.demo_support import DEMO_DIR, Observer, expect, exsync_process, purge, say, step
from exsync.errors import ConfigError
from exsync.exchequer import (
    Account,
    Database,
    ExchequerReader,
    SqlWriteBackend,
    adjust_stock,
    dispatch_order,
    edit_account,
    init_schema,
    recalculated_allocations,
    seed,
)
from exsync.exchequer.capture import iter_exports
from exsync.exchequer.runs import RECONCILE, RunLog
from exsync.exchequer.writer import KIND_ACCOUNT
from exsync.logs import configure_logging
from exsync.netutil import LOCALHOST, free_port, wait_for_port, wait_until
from exsync.sandbox import SandboxServer, SandboxShop, php_json_dumps, place_order, seed_customers, seed_shipping
from exsync.state.orders import OrderStore, ensure_order_tables
from exsync.webhooks import compute_signature
from exsync.woo import Reconciler, WebhookRegistrar, WooClient
from exsync.woo.state import MemoryStore

__all__ = ["main"]

DEMO_SECRET = "demo-webhook-secret"
# The demo names its broker itself (EXSYNC_AMQP_URL overrides); outside the demo nothing is assumed.
DEMO_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CAPTURE_INTERVAL_SECONDS = 2
STOCK_CHECK_DELAY_SECONDS = 1
DEMO_CONFIG = f"""\
capture:
  interval_seconds: {CAPTURE_INTERVAL_SECONDS}
shop:
  requests_per_second: 50
products:
  stock_check_delay_seconds: {STOCK_CHECK_DELAY_SECONDS}
orders:
  rules:
    - name: wholesale orders wait as quotations
      when: {{role: [wholesale_customer]}}
      action: SQU
    - name: cheque orders ship what is in stock, quote the rest
      when: {{payment_method: [cheque]}}
      action: split
    - name: everything else is a sales order
      when: {{}}
      action: SOR
  shipping:
    methods: {{flat_rate: {{description: "Carriage - standard"}}}}
customers:
  export_accounts: all
"""


def show_order(client: WooClient, store: OrderStore, order_id: int, label: str) -> None:
    tracked = store.get(order_id)
    order = client.get_order(order_id)
    notes = sorted(client.list_order_notes(order_id), key=lambda note: note["id"])
    refs = ", ".join(tracked.refs) if tracked and tracked.refs else "-"
    state = tracked.import_state if tracked else "not seen"
    reason = f" ({tracked.reason})" if tracked and tracked.reason else ""
    say(f"   order {order_id} {label:34} {state:9}{reason} -> {refs}; shop status {order['status']}")
    for note in notes:
        who = "customer" if note.get("customer_note") else "private "
        say(f"       note ({who}): {note['note']}")


def show_totals(client: WooClient, reader: ExchequerReader, store: OrderStore, order_id: int) -> None:
    """The shop's total beside the Exchequer documents' net + VAT: equal to the penny."""
    tracked = store.get(order_id)
    if not tracked or not tracked.refs:
        return
    order = client.get_order(order_id)
    headers = [reader.document(ref).header for ref in tracked.refs]
    net = sum(header.net_value for header in headers)
    vat = sum(header.total_vat for header in headers)
    say(f"       shop total {order['total']} (VAT {order['total_tax']}, "
        f"{', '.join(line['rate_code'] for line in order['tax_lines']) or 'no tax lines'}) = Exchequer net "
        f"{net:.2f} + VAT {vat:.2f}")


def enable_taxes(client: WooClient) -> Any:
    """Taxes on as a shop manager turns them on: the setting, then GB VAT at 20 %, shipping too."""
    client.request("PUT", "settings/general/woocommerce_calc_taxes", json={"value": "yes"})
    return client.request("POST", "taxes", json={"country": "GB", "rate": "20.0000", "name": "VAT", "priority": 1,
                                                 "shipping": True, "class": "standard"}).body


def show_customers(client: WooClient, database: Database, shop: SandboxShop, settings: Settings,
                   seeded: list[Account]) -> None:
    """Accounts become shop customers, a registration becomes an account, edits go both ways."""
    reader = ExchequerReader(database=database)
    with_email = [account for account in seeded if account.email and account.cust_supp == "C"]
    wanted = {account.email.lower() for account in with_email}
    wait_until(lambda: wanted <= {c["email"] for c in client.iter_customers()}, timeout_seconds=30)
    shop_customers = {c["email"]: c for c in client.iter_customers()}
    wholesale = [a for a in with_email if a.price_band == settings.config.customers.wholesale_band]
    say(f"   the demo company's {len(with_email)} accounts with an e-mail are shop customers now, "
        f"{len(wholesale)} of them (price band B) with role wholesale_customer:")
    for account in (wholesale or with_email)[:1] + [a for a in with_email if a not in wholesale][:1]:
        customer = shop_customers[account.email.lower()]
        say(f"   account {account.code} {account.contact:20} band {account.price_band} -> shop customer "
            f"{customer['id']} {customer['email']} role {customer['role']}")

    registered = shop.create_customer({
        "email": "ada.lovelace@demo.test", "first_name": "Ada", "last_name": "Lovelace",
        "billing": {"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines",
                    "address_1": "12 St James's Square", "city": "London", "postcode": "SW1Y 4JH",
                    "country": "GB", "email": "ada.lovelace@demo.test", "phone": "020 7946 0000"}})
    backend = SqlWriteBackend(database=database)
    code = expect(wait_until(lambda: backend.existing_reference(KIND_ACCOUNT, customer_key(registered["id"]))),
                  "the shop registration becoming an account")
    account = reader.account(code)
    say(f"   registered in the shop: customer {registered['id']} {registered['email']} -> account {code} "
        f"({account.company}, {account.contact}, {account.post_code})")

    started = time.monotonic()
    edit_account(database, code, phone="020 7946 1234", price_band="B")
    customer = expect(wait_until(
        lambda: (c := client.get_customer(registered["id"]))["role"] == "wholesale_customer" and c,
        timeout_seconds=CAPTURE_INTERVAL_SECONDS + 20), "the account edit reaching the shop")
    say(f"   account {code} edited in Exchequer (phone, price band B) -> in the shop after "
        f"{time.monotonic() - started:.1f} s: phone {customer['billing']['phone']}, role {customer['role']}")

    client.update_customer(registered["id"], {"billing": {"postcode": "SW1Y 4LE"}})
    def edited_account() -> Account | None:
        account = reader.account(code)
        return account if account.post_code == "SW1Y 4LE" else None

    account = expect(wait_until(edited_account), "the shop's edit reaching the account")
    say(f"   post code changed in the shop -> account {code} post code {account.post_code}; "
        "our own writes came back as 'unchanged', nothing echoed")


def _settled(store: OrderStore, order_id: int) -> bool:
    """The order was imported or parked: the order consumer is done with it."""
    tracked = store.get(order_id)
    return tracked is not None and tracked.import_state in ("imported", "parked")


def _exchequer_quantity(database: Database, code: str) -> Any:
    return next(export.quantity for export in iter_exports(ExchequerReader(database=database)) if export.sku == code)


def show_cancelled_after_import(client: WooClient, shop: SandboxShop, store: OrderStore, database: Database,
                                code: str) -> None:
    """An order paid, imported (its SOR allocates the stock), then cancelled in the shop, which puts its
    stock back while the SOR stays: the woo-writer hears the cancellation and corrects the shop."""
    shop_quantity = lambda: client.products_by_sku([code])[code]["stock_quantity"]  # noqa: E731
    order = place_order(shop, lines=[(code, 3)])
    wait_until(lambda: (t := store.get(order["id"])) and t.import_state == "imported", timeout_seconds=20)
    settled = _exchequer_quantity(database, code)
    wait_until(lambda: shop_quantity() == settled, timeout_seconds=CAPTURE_INTERVAL_SECONDS + 10)
    sor = expect(store.get(order["id"]), f"order {order['id']}'s tracking").refs[0]
    say(f"   order {order['id']} for 3 x {code} imported as {sor}: the shop shows "
        f"{shop_quantity()}, Exchequer's free stock {settled}")
    client.update_order_status(order["id"], "cancelled")
    cancelled_at = time.monotonic()
    say(f"   cancelled in the shop, which put its stock back: the shop shows {shop_quantity()}; the SOR stays in "
        f"Exchequer (free stock {_exchequer_quantity(database, code)})")
    corrected = wait_until(lambda: shop_quantity() == settled, timeout_seconds=CAPTURE_INTERVAL_SECONDS + 20,
                           interval_seconds=0.05)
    elapsed = time.monotonic() - cancelled_at
    say(f"   the woo-writer checked {code} after the order event and set it back: the shop shows "
        f"{shop_quantity()} {'' if corrected else '(not yet!) '}{elapsed:.1f} s after the cancellation "
        f"(a {STOCK_CHECK_DELAY_SECONDS} s settling delay, the webhook's delivery, one read, one write)")


def run(settings: Settings) -> int:
    if os.path.exists(DEMO_DIR):
        shutil.rmtree(DEMO_DIR)
    os.makedirs(DEMO_DIR)
    config_path = os.path.join(DEMO_DIR, "exsync.yaml")
    with open(config_path, "w", encoding="utf-8") as handle:
        handle.write(DEMO_CONFIG)
    config, problems = read_config_file(config_path)
    if problems:
        raise ConfigError(problems)
    dsn = f"sqlite:///{os.path.abspath(os.path.join(DEMO_DIR, 'exchequer.db'))}"
    amqp_url = settings.amqp_url or DEMO_AMQP_URL
    settings = settings.replace(exchequer_dsn=dsn, state_dsn=dsn, webhook_secrets=(DEMO_SECRET,),
                                amqp_url=amqp_url, config=config, config_path=config_path)

    step("1. The demo Exchequer company")
    database = wiring.company_database(settings)
    init_schema(database)
    summary = seed(database, items=40, locations=2, boms=4, accounts=12)
    say(f"   {summary.items} stock items over {summary.locations} locations, {summary.boms} bills of materials, "
        f"{summary.accounts} customer accounts")
    reader = ExchequerReader(database=database)
    seeded_accounts = list(reader.iter_accounts())
    items = [item for item in reader.iter_stock_items() if item.type == "P" and item.web_enabled]
    for item in items[:3]:
        say(f"   {item.code:16} {item.description[:28]:28} in stock {item.in_stock:5.0f} allocated "
            f"{item.allocated:4.0f}  band A {item.band_a_price:7.2f}  band B {item.band_b_price:7.2f}  "
            f"category {item.category}")

    step("2. RabbitMQ topology")
    topology = wiring.topology(settings)
    declare_topology(amqp_url, topology)
    say(f"   exchanges woo, exchequer; {len(topology.all_queue_names())} durable quorum queues "
        "(consumer queues, retry queues with growing delays, dead-letter queues)")
    purge(amqp_url, topology)
    observer = Observer(amqp_url)

    with contextlib.ExitStack() as stack:
        stack.callback(observer.close)
        step("3. The sandbox shop")
        shop = SandboxShop(home_url="http://shop.demo.test/")
        credentials = shop.add_credentials()
        # WordPress takes application passwords (a customer's role) over plain HTTP only on a local site.
        shop.environment_type = "local"
        wp_password = shop.add_application_password(username="admin")
        sandbox = stack.enter_context(SandboxServer(shop=shop))
        customers = seed_customers(shop, count=3, wholesale=1)
        seed_shipping(shop)
        settings = settings.replace(woo_url=sandbox.url, woo_consumer_key=credentials.consumer_key,
                                    woo_consumer_secret=credentials.consumer_secret)
        client = stack.enter_context(wiring.woo_client(settings))
        vat = enable_taxes(client)
        say(f"   sandbox shop at {sandbox.url}: no products yet, {len(customers)} customers "
            f"(one wholesale), shipping zones UK and Europe, taxes on: {vat['country']} {vat['name']} "
            f"{float(vat['rate']):g} % on goods and shipping, prices entered without tax")

        step("4. exsync export products: the first full export")
        report = wiring.export_products(settings)
        say(f"   {report.exported} web products exported: {report.flush}")
        product = client.products_by_sku([items[0].code])[items[0].code]
        say(f"   e.g. {product['sku']}: price {product['regular_price']}, stock {product['stock_quantity']}, "
            f"category {product['categories'][0]['name']}, wholesale "
            f"{next(m['value'] for m in product['meta_data'] if m['key'] == 'wholesale_customer_wholesale_price')}")

        step("5. exsync's processes")
        env = child_environment(
            EXSYNC_AMQP_URL=amqp_url, EXSYNC_WEBHOOK_SECRETS=DEMO_SECRET, EXSYNC_CONFIG=config_path,
            EXSYNC_EXCHEQUER_DSN=dsn, EXSYNC_STATE_DSN=dsn, EXSYNC_WOO_URL=sandbox.url,
            EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key, EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret,
            EXSYNC_WP_USERNAME="admin", EXSYNC_WP_APPLICATION_PASSWORD=wp_password, EXSYNC_LOG_LEVEL="INFO")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        subprocess.run([sys.executable, "-m", "exsync.cli", "shipping-methods"], env=env, check=True,
                       stdout=open(os.path.join(DEMO_DIR, "shipping-methods.log"), "wb"))
        say("   exsync shipping-methods: the shop's zones and method instances imported for the mapping")
        port, metrics_port = free_port(), free_port()
        # Only the receiver's gunicorn workers share a metrics directory; the others serve their own.
        metrics_dir = os.path.abspath(os.path.join(DEMO_DIR, "metrics"))
        log = lambda name: os.path.join(DEMO_DIR, f"{name}.log")  # noqa: E731
        stack.enter_context(exsync_process(["webhook"], env=dict(
            env, EXSYNC_BIND=f"127.0.0.1:{port}", EXSYNC_METRICS_BIND=f"127.0.0.1:{metrics_port}",
            PROMETHEUS_MULTIPROC_DIR=metrics_dir), log_path=log("webhook")))
        for name in ("orders", "orders-writeback", "woo-writer", "customers", "customers-export"):
            stack.enter_context(exsync_process(["consume", name], env=env, log_path=log(name)))
        stack.enter_context(exsync_process(["capture"], env=env, log_path=log("capture")))
        wait_for_port(LOCALHOST, port)
        receiver_url = f"http://127.0.0.1:{port}"
        say(f"   exsync webhook (gunicorn) at {receiver_url}; exsync consume orders, orders-writeback, "
            f"woo-writer, customers, customers-export; exsync capture every {CAPTURE_INTERVAL_SECONDS} s "
            f"(logs in {DEMO_DIR}/)")

        step("6. exsync register-webhooks: the shop's webhooks point at the receiver")
        registrar = WebhookRegistrar(client=client, delivery_url=f"{receiver_url}/webhooks/woocommerce",
                                     secret=DEMO_SECRET, topics=("order.created", "order.updated", "customer.created",
                                                                 "customer.updated", "customer.deleted"))
        for action in registrar.sync():
            say(f"   {action.action:10} webhook {action.webhook_id} for {action.topic}")
        shop.wait_for_deliveries(timeout_seconds=10)
        say(f"   pings answered: {', '.join(str(r.status_code) for r in shop.deliverer.records if r.kind == 'ping')}")

        step("7. Orders placed in the shop become Exchequer documents")
        observer.drain()
        flat_rate = {"method_id": "flat_rate", "instance_id": "1", "method_title": "Standard delivery",
                     "total": "4.95"}
        shop.create_product({"name": "Gift card (shop only)", "sku": "GIFT-CARD", "type": "simple",
                             "regular_price": "25.00"})
        wholesale = customers[-1]
        placed = [
            (place_order(shop, lines=[(items[0].code, 2), (items[1].code, 1)], customer_id=customers[0]["id"],
                         shipping_line=flat_rate), "registered customer, 2 lines + carriage"),
            (place_order(shop, lines=[(items[2].code, 1)]), "guest"),
            (shop.create_order({"customer_id": wholesale["id"], "status": "processing",
                                "billing": wholesale["billing"], "payment_method": "bacs",
                                "line_items": [{"sku": items[3].code, "quantity": 5}],
                                "meta_data": [{"key": "wwp_wholesale_role", "value": "wholesale_customer"}]},
                               created_via="checkout"), "wholesale customer (rule: SQU)"),
            (place_order(shop, lines=[(items[4].code, 1), ("GIFT-CARD", 1)]), "guest with an unknown SKU"),
        ]
        shop.wait_for_deliveries(timeout_seconds=10)
        state_db = stack.enter_context(wiring.state_database(settings))
        ensure_order_tables(state_db)
        store = OrderStore(database=state_db)
        for order, _ in placed:
            wait_until(functools.partial(_settled, store, order["id"]))
        wait_until(lambda: all(any(n["note"].startswith("Imported") for n in client.list_order_notes(o["id"]))
                               for o, _ in placed[:3]), timeout_seconds=20)
        reader = ExchequerReader(database=database)
        for order, label in placed:
            show_order(client, store, order["id"], label)
            show_totals(client, reader, store, order["id"])

        step("8. Customers both ways")
        show_customers(client, database, shop, settings, seeded_accounts)

        step("9. Stock changes in Exchequer reach the shop")
        observer.drain()
        code = items[5].code
        before = client.products_by_sku([code])[code]["stock_quantity"]
        adjust_stock(database, stock_code=code, location=items[5].locations[0].location, qty=25)
        changed_at = time.monotonic()
        after = wait_until(lambda: (q := client.products_by_sku([code])[code]["stock_quantity"]) != before and q,
                           timeout_seconds=CAPTURE_INTERVAL_SECONDS + 10, interval_seconds=0.05)
        elapsed = time.monotonic() - changed_at
        say(f"   {code}: 25 more in stock in Exchequer; the shop went from {before} to {after} in {elapsed:.1f} s "
            f"(capture interval {CAPTURE_INTERVAL_SECONDS} s + 1 s allowed)")
        for exchange, key, event in observer.take(timeout_seconds=1, where=lambda k: k.startswith("stock")):
            mine = [item for item in event["data"]["items"] if item["sku"] == code]
            if mine:
                say(f"   {exchange} {key}: {event['type']} with {len(event['data']['items'])} item(s), "
                    f"among them {mine[0]}")

        step("10. Exchequer dispatches the first order: the customer is told")
        first = placed[0][0]["id"]
        sor = expect(store.get(first), f"order {first}'s tracking").refs[0]
        sdn = dispatch_order(database, sor)
        say(f"   delivery note {sdn} raised against {sor} in Exchequer")
        by_item, by_location = recalculated_allocations(database)
        items = list(ExchequerReader(database=database).iter_stock_items())
        agree = sum(abs(item.allocated - by_item.get(item.code, 0.0)) < 1e-9 and all(
            abs(at.allocated - by_location.get((item.code, at.location), 0.0)) < 1e-9 for at in item.locations)
            for item in items)
        say(f"   allocations of {agree} of {len(items)} items (and their locations) are what Exchequer's "
            "esp_RecalculateStock would compute from the order lines")
        wait_until(lambda: client.get_order(first)["status"] == "completed", timeout_seconds=20)
        show_order(client, store, first, "after dispatch")

        step("11. A tampered delivery is refused")
        body = php_json_dumps(client.get_order(first))
        headers = {"Content-Type": "application/json", "X-WC-Webhook-Topic": "order.updated",
                   "X-WC-Webhook-Signature": compute_signature(body, DEMO_SECRET)}
        tampered = body.replace(b'"status":"completed"', b'"status":"cancelled"')
        answer = requests.post(f"{receiver_url}/webhooks/woocommerce", data=tampered, headers=headers, timeout=10)
        say(f"   tampered body -> HTTP {answer.status_code}")

        step("12. Webhooks disabled: the reconciler closes the gap")
        for hook in client.iter_webhooks():
            shop.set_webhook_status(hook["id"], "disabled")
        missed = place_order(shop, lines=[(items[6].code, 1)])
        shop.wait_for_deliveries(timeout_seconds=5)
        say(f"   order {missed['id']} placed while the webhooks were disabled: no delivery")
        publisher = stack.enter_context(wiring.publisher(settings))
        runs = RunLog(database=state_db).ensure()
        reconciler = Reconciler(client=client, publisher=publisher, store=MemoryStore(), registrar=registrar,
                                initial_lookback_seconds=3600,
                                on_pass=lambda ok, detail: runs.record(RECONCILE, ok=ok, detail=detail))
        reconciled = reconciler.run_once()
        say(f"   the reconciler published {reconciled.orders_published} orders and {reconciled.customers_published} "
            "customers modified since its watermark")
        for action in registrar.sync():
            say(f"   registrar: {action.action} webhook {action.webhook_id} ({action.topic})")
        wait_until(lambda: (t := store.get(missed["id"])) and t.import_state == "imported")
        show_order(client, store, missed["id"], "missed by the webhooks")

        step("13. An order cancelled in the shop after import: the shop shows Exchequer's free stock again")
        show_cancelled_after_import(client, shop, store, database, items[7].code)

        step("14. What the receiver counted")
        # /metrics is on the receiver's internal port, not the public one WooCommerce posts to.
        exposition = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        for line in exposition.splitlines():
            if line.startswith(("exsync_webhook_requests_total", "exsync_webhook_unauthorized_total",
                                "exsync_bus_messages_published_total")):
                say(f"   {line}")

        step("15. exsync status: what an operator sees (exit 1 while something needs a person)")
        # The real command, as a person would run it, while the processes are still up.
        status = subprocess.run([sys.executable, "-m", "exsync.cli", "status"], env=dict(env, EXSYNC_LOG_FORMAT="text"),
                                capture_output=True, text=True, timeout=60)
        for line in status.stdout.splitlines():
            say(f"   {line}")
        say(f"   (exit code {status.returncode})")
    say()
    say("demo finished")
    return 0


def main() -> int:
    configure_logging("WARNING")
    return run(load_settings())


if __name__ == "__main__":
    sys.exit(main())
