"""The sandbox's pool of PHP workers: K requests served at once over HTTP, the rest wait their turn."""

import concurrent.futures
import time

import pytest
import requests

from exsync.sandbox import Faults, SandboxServer, SandboxShop, WorkerPool
from exsync.woo import WooClient

ITEM_LATENCY_SECONDS = 0.2


def _post_products(server, credentials, count):
    """`count` single-product creates sent at once through the client; returns (seconds taken, products made)."""
    client = WooClient(url=server.url, consumer_key=credentials.consumer_key,
                       consumer_secret=credentials.consumer_secret, requests_per_second=100)
    started = time.monotonic()
    with client, concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        made = list(pool.map(lambda n: client.create_product({"name": f"P{n}", "sku": f"P-{n}"}), range(count)))
    return time.monotonic() - started, sorted(product["sku"] for product in made)


@pytest.mark.parametrize("workers", [1, 2])
def test_requests_beyond_the_workers_wait_their_turn(workers):
    shop = SandboxShop(faults=Faults(item_latency_seconds=ITEM_LATENCY_SECONDS))
    credentials = shop.add_credentials()
    with SandboxServer(shop=shop, workers=workers) as server:
        seconds, made = _post_products(server, credentials, 4)
    assert made == [f"P-{n}" for n in range(4)]
    assert server.workers.peak_busy == workers
    assert server.workers.waited >= 4 - workers
    # Four writes of 0.2 s on `workers` workers: at least 4 / workers rounds.
    assert seconds >= (4 // workers) * ITEM_LATENCY_SECONDS * 0.9


def test_without_a_limit_every_request_is_served_at_once():
    shop = SandboxShop(faults=Faults(item_latency_seconds=ITEM_LATENCY_SECONDS))
    credentials = shop.add_credentials()
    with SandboxServer(shop=shop) as server:
        _, made = _post_products(server, credentials, 4)
    assert len(made) == 4
    assert server.workers.workers is None and server.workers.waited == 0


def test_a_firewall_answer_takes_no_worker():
    shop = SandboxShop()
    shop.faults.inject(status=429, retry_after_seconds=1, count=1)
    with SandboxServer(shop=shop, workers=1) as server:
        with server.workers.serving():  # the only worker is busy
            answer = requests.get(f"{server.url}/wp-json/wc/v3/products", timeout=10)
        assert answer.status_code == 429


def test_a_pool_needs_a_worker():
    with pytest.raises(ValueError):
        WorkerPool(workers=0)
