"""`exsync webhook` as a real gunicorn process against a broker that stalls, and bodies too large to read.

A stalled broker keeps its TCP connection open and sends no byte (a partition, a blocked broker):
deliveries wait at most webhook.delivery_timeout_seconds and are answered 503 ("may or may not be
stored"), probes keep answering within a second, /readyz turns 503 while confirms are overdue and
200 again after recovery.
"""

import concurrent.futures
import threading
import time

import pytest
import requests

from exsync import wiring
from exsync.bus import declare_topology
from tests.e2e.test_webhook_process import SECRET, running_webhook
from tests.support.proxy import proxy_in_front_of
from tests.support.rabbit import queue_depth
from tests.support.waiting import wait_until
from tests.support.woo import delivery_headers, fixture, woo_json

DELIVERY_TIMEOUT_SECONDS = 2.0
PROBE_BUDGET_SECONDS = 1.0
DELIVERY_CLIENTS = 32


def _config(tmp_path, **webhook):
    path = tmp_path / "exsync.yaml"
    path.write_text("webhook:\n" + "".join(f"  {key}: {value}\n" for key, value in webhook.items()))
    return str(path)


class Probes:
    """Asks /healthz and /readyz over fresh connections every 0.2 s, as a kubelet does; records
    each answer's status and how long it took (a timeout counts as the budget passed)."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.answers = []  # (path, status or None, seconds, at)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for path in ("/healthz", "/readyz"):
                started = time.monotonic()
                try:
                    status = requests.get(self.base_url + path, timeout=PROBE_BUDGET_SECONDS * 3).status_code
                except requests.RequestException:
                    status = None
                self.answers.append((path, status, time.monotonic() - started, started))
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def readyz_since(self, moment):
        return [status for path, status, _, at in self.answers if path == "/readyz" and at >= moment]


@pytest.mark.slow
def test_a_stalled_broker_never_starves_probes_and_readyz_follows_the_confirms(amqp_url, tmp_path):
    declare_topology(amqp_url, wiring.topology())
    proxy, proxied = proxy_in_front_of(amqp_url)
    body = woo_json(fixture("order_727.json"))
    headers = delivery_headers(body, secret=SECRET, topic="order.created")
    config = _config(tmp_path, delivery_timeout_seconds=DELIVERY_TIMEOUT_SECONDS)
    try:
        with running_webhook(proxied, tmp_path, EXSYNC_CONFIG=config) as base_url:
            url = f"{base_url}/webhooks/woocommerce"
            assert wait_until(lambda: requests.get(f"{base_url}/readyz", timeout=5).status_code == 200)
            assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200

            stalled = threading.Event()
            deliveries = []  # (status or None, seconds, during the stall)

            def deliver_while_stalled():
                session = requests.Session()  # keeps its connection when the server lets it
                while stalled.is_set():
                    started = time.monotonic()
                    try:
                        status = session.post(url, data=body, headers=headers, timeout=30).status_code
                    except requests.RequestException:
                        status = None
                    deliveries.append((status, time.monotonic() - started))

            with Probes(base_url) as probes, concurrent.futures.ThreadPoolExecutor(DELIVERY_CLIENTS) as clients:
                time.sleep(1.0)
                proxy.stall()
                stall_started = time.monotonic()
                stalled.set()
                for _ in range(DELIVERY_CLIENTS):
                    clients.submit(deliver_while_stalled)
                assert wait_until(lambda: 503 in probes.readyz_since(stall_started), timeout_seconds=15), \
                    "readyz never said the confirms were overdue"
                time.sleep(DELIVERY_TIMEOUT_SECONDS * 2)
                stalled.clear()
                clients.shutdown(wait=True)
                proxy.resume()
                resumed = time.monotonic()
                assert wait_until(lambda: 200 in probes.readyz_since(resumed), timeout_seconds=15), \
                    "readyz did not recover after the broker did"
                time.sleep(0.5)

            slowest = max(seconds for _, _, seconds, _ in probes.answers)
            unanswered = [answer for answer in probes.answers if answer[1] is None]
            assert unanswered == [] and slowest < PROBE_BUDGET_SECONDS, (slowest, unanswered)
            assert all(status == 200 for path, status, _, _ in probes.answers if path == "/healthz")
            # Each delivery was answered, none waited past the delivery timeout (plus scheduling slack),
            # and while the broker stalled none was answered 200 (nothing confirmed it).
            assert deliveries and all(status in (503,) for status, _ in deliveries), \
                sorted({status for status, _ in deliveries}, key=str)
            assert max(seconds for _, seconds in deliveries) < DELIVERY_TIMEOUT_SECONDS + 2.0
            assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
    finally:
        proxy.cut()
    # At least once: the two answered 200 are stored; some answered 503 may be stored too.
    assert queue_depth(amqp_url, "orders.import") >= 2


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_is_413_not_a_truncated_401(amqp_url, tmp_path):
    declare_topology(amqp_url, wiring.topology())
    limit_bytes = 64 * 1024
    config = _config(tmp_path, max_body_bytes=limit_bytes)
    order = {**fixture("order_727.json"), "customer_note": "x" * (limit_bytes + 10_000)}
    body = woo_json(order)
    headers = delivery_headers(body, secret=SECRET, topic="order.created")

    def chunks():
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    with running_webhook(amqp_url, tmp_path, EXSYNC_CONFIG=config) as base_url:
        url = f"{base_url}/webhooks/woocommerce"
        # A generator body goes out with Transfer-Encoding: chunked and no Content-Length.
        response = requests.post(url, data=chunks(), headers=headers, timeout=30)
        assert response.status_code == 413
        small = woo_json(fixture("order_727.json"))
        response = requests.post(url, data=iter([small]),
                                 headers=delivery_headers(small, secret=SECRET, topic="order.created"), timeout=30)
        assert response.status_code == 200
    assert queue_depth(amqp_url, "orders.import") == 1
