"""Fixtures for the order pipeline: a seeded company, a consumer over it, realistic order bodies."""

import copy
import decimal

import pytest

from exsync.consumers.orders import OrdersConsumer
from exsync.exchequer import adjust_stock, connect, init_schema, seed
from exsync.schemas.config import validate_config

SMALL_SEED = {"items": 20, "locations": 1, "boms": 0, "accounts": 10}


class RecordingPublisher:
    """Collects what the consumer publishes (the bus itself is tested with RabbitMQ elsewhere)."""

    def __init__(self):
        self.published = []

    def publish(self, *, exchange, routing_key, event, headers=None):
        self.published.append((exchange, routing_key, event))

    def keys(self):
        return [key for _, key, _ in self.published]

    def close(self):
        pass


def company(dsn):
    """An initialised, seeded company; returns the stock codes of its products (type P)."""
    with connect(dsn) as database:
        init_schema(database)
        seed(database, **SMALL_SEED)
        with database.transaction(write=False) as cursor:
            codes = [row[0] for row in cursor.run("SELECT {stock.code} FROM {stock} WHERE {stock.type} = 'P' "
                                                  "ORDER BY {stock.code}").fetchall()]
        for code in codes[:4]:
            adjust_stock(database, stock_code=code, location="MAI", qty=500)
    return codes


def config(**orders):
    loaded, problems = validate_config({"orders": orders})
    assert problems == []
    return loaded


@pytest.fixture
def sqlite_company(tmp_path):
    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    return dsn, company(dsn)


@pytest.fixture
def make_consumer():
    made = []

    def make(dsn, **orders):
        publisher = RecordingPublisher()
        consumer = OrdersConsumer(exchequer_dsn=dsn, config=config(**orders), publisher=publisher)
        made.append(consumer)
        return consumer, publisher

    yield make
    for consumer in made:
        consumer.close()


def order_body(order_id=101, *, lines, status="processing", customer_id=0, modified="2026-11-27T10:00:00",
               email="guest@example.test", shipping=("flat_rate", "1", "Standard delivery", "4.95", "0.99"),
               fees=(), payment_method="bacs", meta=(), prices_include_tax=False, total=None, tax_class=""):
    """A REST order body as WooCommerce returns it; `lines` are (sku, qty, subtotal, total, total_tax)."""
    items = [{"id": 1000 + n, "name": f"Item {sku}", "product_id": 10 + n, "variation_id": 0, "quantity": qty,
              "tax_class": tax_class, "subtotal": subtotal, "subtotal_tax": tax, "total": line_total,
              "total_tax": tax, "taxes": [], "meta_data": [], "sku": sku, "price": float(line_total) / qty}
             for n, (sku, qty, subtotal, line_total, tax) in enumerate(lines)]
    shipping_lines = []
    if shipping:
        method_id, instance_id, title, cost, cost_tax = shipping
        shipping_lines = [{"id": 2000, "method_title": title, "method_id": method_id, "instance_id": instance_id,
                           "total": cost, "total_tax": cost_tax, "taxes": [], "meta_data": []}]
    fee_lines = [{"id": 3000 + n, "name": name, "tax_class": "", "tax_status": "taxable", "amount": amount,
                  "total": amount, "total_tax": tax, "taxes": [], "meta_data": []}
                 for n, (name, amount, tax) in enumerate(fees)]
    parts = items + shipping_lines + fee_lines
    net = sum(decimal.Decimal(p["total"]) for p in parts)
    tax = sum(decimal.Decimal(p["total_tax"]) for p in parts)
    computed = (net if prices_include_tax else net + tax).quantize(decimal.Decimal("0.01"))
    body = {
        "id": order_id, "parent_id": 0, "number": str(order_id), "status": status, "currency": "GBP",
        "date_created_gmt": "2026-11-27T09:59:00", "date_modified_gmt": modified,
        "prices_include_tax": prices_include_tax, "customer_id": customer_id,
        "total": total if total is not None else str(computed),
        "total_tax": str(tax),
        "billing": {"first_name": "Jo", "last_name": "Buyer", "company": "", "address_1": "1 Market Street",
                    "address_2": "", "city": "York", "state": "", "postcode": "YO1 7HH", "country": "GB",
                    "email": email, "phone": "01904 000000"},
        "shipping": {}, "payment_method": payment_method, "payment_method_title": payment_method,
        "meta_data": [{"id": n, "key": key, "value": value} for n, (key, value) in enumerate(meta)],
        "line_items": items, "shipping_lines": shipping_lines, "fee_lines": fee_lines, "coupon_lines": [],
        "tax_lines": [], "refunds": [],
    }
    return copy.deepcopy(body)


def event(body, topic="order.updated"):
    return {"specversion": "1.0", "id": f"e-{body['id']}-{topic}", "source": "https://shop.example/",
            "type": f"woo.{topic}", "time": "2026-11-27T10:00:00Z", "subject": str(body["id"]), "data": body}


@pytest.fixture
def sandbox_shop():
    """A sandbox shop over real HTTP with a catalogue and shipping zones; (shop, client, credentials)."""
    from exsync.sandbox import SandboxServer, SandboxShop, seed_catalogue, seed_shipping
    from exsync.woo import WooClient

    shop = SandboxShop()
    credentials = shop.add_credentials()
    seed_catalogue(shop, count=3)
    seed_shipping(shop)
    with SandboxServer(shop=shop) as server, WooClient(
            url=server.url, consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
            requests_per_second=500, backoff_initial_seconds=0.01, backoff_max_seconds=0.05) as client:
        yield shop, client, credentials
