"""Helpers for the product path's tests: a small demo company, a sandbox shop and a client for it."""

import collections
import contextlib

from exsync.exchequer import ExchequerReader, connect, init_schema, seed
from exsync.metrics import Metrics
from exsync.sandbox import SandboxServer, SandboxShop
from exsync.woo import WooClient

__all__ = ["CountingMetrics", "ListSink", "demo_company", "sandbox_shop", "set_category", "web_products",
           "empty_component_stock"]

SMALL_COMPANY = {"items": 40, "locations": 3, "boms": 4, "accounts": 5}


class CountingMetrics(Metrics):
    """Counts what was recorded, by name and labels, so a test can count shop requests."""

    def __init__(self):
        self.counters = collections.Counter()
        self.observations = collections.defaultdict(list)

    def inc(self, name, amount=1, **labels):
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name, value, **labels):
        self.observations[name].append(value)

    def count(self, name, **labels):
        wanted = set(labels.items())
        return sum(value for (metric, key), value in self.counters.items() if metric == name and wanted <= set(key))


class ListSink:
    """A capture sink keeping each chunk it was given; `fail` makes it raise instead (a broker outage)."""

    def __init__(self):
        self.chunks = []
        self.fail = None

    def send(self, *, products, stock):
        if self.fail is not None:
            raise self.fail
        self.chunks.append((products, stock))

    def products(self):
        return {item["sku"]: item for products, _ in self.chunks for item in products}

    def stock(self):
        return {item["sku"]: item for _, stock in self.chunks for item in stock}


def demo_company(path, **counts):
    """A seeded SQLite company at `path`; returns its DSN."""
    dsn = f"sqlite:///{path}"
    with connect(dsn) as database:
        init_schema(database)
        seed(database, **{**SMALL_COMPANY, **counts})
    return dsn


def web_products(database):
    """The web-enabled stock items, by code."""
    return {item.code: item for item in ExchequerReader(database=database).iter_stock_items() if item.web_enabled}


def set_category(database, code, category):
    with database.transaction() as cursor:
        cursor.run("UPDATE {stock} SET {stock.category} = ? WHERE {stock.code} = ?", (category, code))


def empty_component_stock(database, code):
    """Takes all of an item's stock out, at every location (a shortage)."""
    from exsync.exchequer import adjust_stock

    for location in ExchequerReader(database=database).stock_item(code).locations:
        if location.in_stock:
            adjust_stock(database, stock_code=code, location=location.location, qty=-location.in_stock)


@contextlib.contextmanager
def sandbox_shop(*, item_latency_seconds=0.0, metrics=None, max_attempts=2):
    """A sandbox shop over real HTTP and a client for it: yields (shop, server, client, credentials)."""
    from exsync.sandbox import Faults

    shop = SandboxShop(faults=Faults(item_latency_seconds=item_latency_seconds))
    credentials = shop.add_credentials()
    server = SandboxServer(shop=shop).start()
    client = WooClient(url=server.url, consumer_key=credentials.consumer_key,
                       consumer_secret=credentials.consumer_secret, requests_per_second=1000,
                       max_attempts=max_attempts, backoff_initial_seconds=0.01, metrics=metrics)
    try:
        yield shop, server, client, credentials
    finally:
        client.close()
        server.stop()
