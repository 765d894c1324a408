"""One shop, one request budget: a Retry-After pauses every request of the process to the shop, and
`shop.requests_per_second` holds for all processes together (shared through the state database),
measured against the sandbox's request log."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from exsync.exchequer.errors import ConnectError
from exsync.sandbox import SandboxServer, SandboxShop
from exsync.woo import WooClient
from exsync.woo.ratelimit import SharedTokenBucket, TokenBucket
from tests.support.products import CountingMetrics
from tests.support.waiting import wait_for

RETRY_AFTER_SECONDS = 1
# The log's clock (time.time) and the pause's (time.monotonic) may disagree by a hair.
CLOCK_SLACK_SECONDS = 0.05


@pytest.fixture
def served():
    shop = SandboxShop()
    credentials = shop.add_credentials()
    with SandboxServer(shop=shop) as server:
        yield shop, server, credentials


def client_for(server, credentials, **options):
    return WooClient(url=server.url, consumer_key=credentials.consumer_key,
                     consumer_secret=credentials.consumer_secret, requests_per_second=1000,
                     backoff_initial_seconds=0.01, **options)


def arrivals(server, route=None):
    return [entry for entry in server.request_log if route is None or entry.route == route]


def test_after_the_last_429_of_a_request_the_next_one_waits_for_retry_after(served):
    """Issue 11 §7: the request after a batch's fifth 429 went 0.05 s later."""
    shop, server, credentials = served
    shop.faults.inject(status=429, retry_after_seconds=RETRY_AFTER_SECONDS, count=2, route_prefix="products/batch")
    with client_for(server, credentials, max_attempts=2) as batching, client_for(server, credentials) as other:
        result = batching.batch_products(create=[{"name": "Widget", "sku": "W-1"}])
        assert not result.ok  # both attempts refused: the item is the caller's to retry
        other.list_products_page()  # another client of the same process, to the same shop
    refused = arrivals(server, "products/batch")[-1]
    following = arrivals(server, "products")[-1]
    assert following.at - refused.at >= RETRY_AFTER_SECONDS - CLOCK_SLACK_SECONDS


def test_a_retry_after_holds_the_other_threads_requests_too(served):
    shop, server, credentials = served
    shop.faults.inject(status=503, retry_after_seconds=RETRY_AFTER_SECONDS, count=1, route_prefix="orders")
    metrics = CountingMetrics()
    with client_for(server, credentials, metrics=metrics) as client:
        first = threading.Thread(target=client.get, args=("orders",))
        first.start()
        # Once the 503 is back (its retry is scheduled), the process is paused.
        wait_for(lambda: metrics.count("woo_request_retries"), "the 503 to come back", timeout_seconds=10)
        client.get("products")  # sent while the orders request waits out its Retry-After
        first.join(10)
    refused, retried = arrivals(server, "orders")
    [other] = arrivals(server, "products")
    assert other.at - refused.at >= RETRY_AFTER_SECONDS - CLOCK_SLACK_SECONDS
    assert retried.at - refused.at >= RETRY_AFTER_SECONDS - CLOCK_SLACK_SECONDS


def test_two_processes_together_keep_within_one_budget_on_postgresql(served, pg_odbc_dsn, tmp_path):
    _, server, credentials = served
    rate, per_process = 8.0, 16
    config = tmp_path / "exsync.yaml"
    config.write_text(json.dumps({"shop": {"requests_per_second": rate}}))
    env = {**os.environ, "EXSYNC_STATE_DSN": pg_odbc_dsn, "EXSYNC_EXCHEQUER_DSN": pg_odbc_dsn,
           "EXSYNC_WOO_URL": server.url, "EXSYNC_WOO_CONSUMER_KEY": credentials.consumer_key,
           "EXSYNC_WOO_CONSUMER_SECRET": credentials.consumer_secret, "EXSYNC_CONFIG": str(config)}
    start_at = time.time() + 3  # both processes imported and connected, then off together
    processes = [subprocess.Popen([sys.executable, "-m", "tests.woo.budget_process", str(start_at), str(per_process)],
                                  env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode(errors="replace")
    times = sorted(entry.at for entry in arrivals(server, "products"))
    assert len(times) == 2 * per_process
    burst = rate  # the bucket's default burst
    # Token-bucket conformance over every window: n requests in t seconds never exceed burst + rate * t
    # (one request of slack for the clocks). Two separate buckets would send 2 * burst at once.
    worst = max(j - i + 1 - rate * (times[j] - times[i]) for i in range(len(times)) for j in range(i, len(times)))
    assert worst <= burst + 1
    assert times[-1] - times[0] >= (2 * per_process - burst - 1) / rate


def test_the_budget_falls_back_to_the_process_when_the_state_database_is_away():
    def unreachable():
        raise ConnectError("no state database")

    fallback = TokenBucket(rate_per_second=1000)
    bucket = SharedTokenBucket(connect=unreachable, shop="http://shop.example", rate_per_second=5, fallback=fallback)
    assert bucket.acquire() == 0.0  # from the process's own bucket, not an error
    bucket.pause(1)  # nobody to tell: no error either
    bucket.close()


def test_the_shared_bucket_keeps_its_row_and_carries_a_pause(tmp_path):
    from exsync.exchequer import connect

    clock = [1000.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    dsn = f"sqlite:///{tmp_path}/state.db"
    first = SharedTokenBucket(connect=lambda: connect(dsn), shop="http://shop.example/", rate_per_second=2, burst=2,
                              clock=lambda: clock[0], sleep=sleep)
    second = SharedTokenBucket(connect=lambda: connect(dsn), shop="http://shop.example", rate_per_second=2, burst=2,
                               clock=lambda: clock[0], sleep=sleep)
    assert [first.acquire(), second.acquire()] == [0.0, 0.0]  # the burst, shared
    assert second.acquire() == pytest.approx(0.5)  # the third waits for the budget's refill
    first.pause(3)
    assert second.acquire() == pytest.approx(3.0)  # the other process's pause holds this one
    first.close()
    second.close()
