"""The sandbox's injected faults: a storm answers a share of requests with 429/503 and Retry-After."""

import time

import requests

from exsync.sandbox import Faults, SandboxServer, SandboxShop


def test_a_storm_answers_its_share_of_requests_with_retry_after_then_passes():
    faults = Faults()
    storm = faults.start_storm(rate=0.3, duration_seconds=60, retry_after_seconds=2, seed=7)
    taken = [faults.take("GET", "products") for _ in range(1000)]
    failed = [fault for fault in taken if fault is not None]
    assert 250 <= len(failed) <= 350
    assert {fault.status for fault in failed} == {429, 503}
    assert {fault.retry_after_seconds for fault in failed} == {2}
    assert storm.answered[429] + storm.answered[503] == len(failed)
    assert storm.answered["passed"] == 1000 - len(failed)

    # A request well after a fault, inside its Retry-After, is counted (a client that did not wait).
    faults.start_storm(rate=1.0, duration_seconds=60, retry_after_seconds=5)
    faults.take("GET", "products")
    time.sleep(0.15)
    faults.take("GET", "products")
    assert faults.storm.answered["inside_retry_after"] == 1

    faults.storm.started_at = time.monotonic() - 61
    assert all(faults.take("GET", "products") is None for _ in range(100))


def test_a_storm_reaches_the_client_over_http():
    shop = SandboxShop()
    credentials = shop.add_credentials()
    shop.faults.start_storm(rate=1.0, duration_seconds=60, statuses=(503,), retry_after_seconds=3,
                            route_prefix="products")
    with SandboxServer(shop=shop) as server:
        answer = requests.get(f"{server.url}/wp-json/wc/v3/products", auth=(credentials.consumer_key,
                                                                            credentials.consumer_secret), timeout=10)
        assert (answer.status_code, answer.headers["Retry-After"]) == (503, "3")
        other = requests.get(f"{server.url}/wp-json/wc/v3/orders", auth=(credentials.consumer_key,
                                                                         credentials.consumer_secret), timeout=10)
        assert other.status_code != 503
