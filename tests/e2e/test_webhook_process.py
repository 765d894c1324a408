"""`exsync webhook` as a real gunicorn process: WooCommerce's documented order, signed, lands on the bus."""

import concurrent.futures
import contextlib
import os
import time

import pytest
import requests

from exsync import wiring
from exsync.bus import declare_topology
from exsync.bus.shared_publisher import DEFAULT_RECONNECT_PAUSE_SECONDS
from exsync.demo import exsync_process
from tests.support.net import free_port, wait_for_port
from tests.support.proxy import proxy_in_front_of
from tests.support.rabbit import bind_probe, queue_depth, read_messages
from tests.support.waiting import wait_until
from tests.support.woo import delivery_headers, fixture, woo_json

SECRET = "e2e-secret&amp;rotated"


@contextlib.contextmanager
def running_webhook(amqp_url, tmp_path, **extra_env):
    """`exsync webhook` (2 gevent workers) against `amqp_url`; yields its base URL, stops it with SIGTERM."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "EXSYNC_AMQP_URL": amqp_url,
        "EXSYNC_WEBHOOK_SECRETS": f"older-secret,{SECRET}",
        "EXSYNC_BIND": f"127.0.0.1:{port}",
        "EXSYNC_WEBHOOK_WORKERS": "2",
        "EXSYNC_WEBHOOK_CONNECTIONS": "16",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **extra_env,
    }
    with exsync_process(["webhook"], env=env, log_path=tmp_path / "gunicorn.log"):
        wait_for_port("127.0.0.1", port, timeout_seconds=30)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def webhook_server(amqp_url, tmp_path):
    with running_webhook(amqp_url, tmp_path) as base_url:
        yield base_url


@pytest.mark.slow
def test_documented_order_signed_and_delivered_arrives_on_a_bound_queue(amqp_url, webhook_server):
    declare_topology(amqp_url, wiring.topology())
    probe = bind_probe(amqp_url, exchange="woo", routing_key="order.created")
    order = fixture("order_727.json")
    body = woo_json(order)
    # The stored secret is HTML-escaped; WooCommerce signs with the decoded one.
    headers = delivery_headers(body, secret=SECRET, topic="order.created")

    response = requests.post(f"{webhook_server}/webhooks/woocommerce", data=body, headers=headers, timeout=10)
    assert response.status_code == 200
    [(event, _)] = read_messages(amqp_url, probe, count=1)
    assert event["type"] == "woo.order.created"
    assert event["data"]["id"] == 727
    assert event["data"] == order

    tampered = body.replace(b'"total":"29.35"', b'"total":"0.01"')
    assert tampered != body
    response = requests.post(f"{webhook_server}/webhooks/woocommerce", data=tampered, headers=headers, timeout=10)
    assert response.status_code == 401

    ping = requests.post(f"{webhook_server}/webhooks/woocommerce", data="webhook_id=3",
                         headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert ping.status_code == 200
    assert read_messages(amqp_url, probe, timeout_seconds=1) == []

    assert requests.get(f"{webhook_server}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{webhook_server}/readyz", timeout=5).status_code == 200
    # Several requests so both workers are likely to serve some; the counts are summed across them.
    for _ in range(6):
        requests.post(f"{webhook_server}/webhooks/woocommerce", data=body, headers=headers, timeout=10)
    exposition = requests.get(f"{webhook_server}/metrics", timeout=5).text
    assert 'exsync_webhook_requests_total{outcome="accepted",topic="order.created"} 7.0' in exposition
    assert 'exsync_webhook_unauthorized_total{reason="bad_signature"} 1.0' in exposition
    assert len(read_messages(amqp_url, probe, count=6)) == 6


@pytest.mark.slow
def test_concurrent_deliveries_are_each_stored_once(amqp_url, webhook_server):
    declare_topology(amqp_url, wiring.topology())
    bodies = [woo_json({**fixture("order_727.json"), "id": 1000 + n}) for n in range(60)]

    def deliver(body):
        headers = delivery_headers(body, secret=SECRET, topic="order.created")
        return requests.post(f"{webhook_server}/webhooks/woocommerce", data=body, headers=headers, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = [response.status_code for response in pool.map(deliver, bodies)]
    assert statuses == [200] * 60
    assert queue_depth(amqp_url, "orders.import") == 60
    stored = read_messages(amqp_url, "orders.import", count=60)
    assert sorted(event["data"]["id"] for event, _ in stored) == list(range(1000, 1060))


@pytest.mark.slow
def test_a_broker_outage_gives_503_then_deliveries_are_stored_again(amqp_url, tmp_path):
    declare_topology(amqp_url, wiring.topology())
    proxy, proxied = proxy_in_front_of(amqp_url)
    body = woo_json(fixture("order_727.json"))
    headers = delivery_headers(body, secret=SECRET, topic="order.created")
    try:
        with running_webhook(proxied, tmp_path) as base_url:
            post = lambda: requests.post(f"{base_url}/webhooks/woocommerce", data=body, headers=headers,  # noqa: E731
                                         timeout=60)
            assert post().status_code == 200
            proxy.cut()
            # Unstored deliveries are refused, so WooCommerce delivers them again later.
            assert post().status_code == 503
            assert requests.get(f"{base_url}/readyz", timeout=60).status_code == 503
            proxy.restore()
            # Each worker waits out its reconnect pause after a failed connect before trying again.
            assert wait_until(lambda: requests.get(f"{base_url}/readyz", timeout=60).status_code == 200)
            time.sleep(DEFAULT_RECONNECT_PAUSE_SECONDS)
            statuses = [post().status_code for _ in range(4)]
            assert statuses == [200] * 4
    finally:
        proxy.cut()
    assert queue_depth(amqp_url, "orders.import") == 5


@pytest.mark.slow
def test_a_metrics_directory_made_for_the_run_is_removed_when_it_stops_and_a_configured_one_kept(amqp_url, tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    # No PROMETHEUS_MULTIPROC_DIR: `exsync webhook` makes one in the temporary directory.
    with running_webhook(amqp_url, tmp_path, PROMETHEUS_MULTIPROC_DIR="", TMPDIR=str(temporary)) as base_url:
        assert requests.get(f"{base_url}/healthz", timeout=10).status_code == 200
        made = list(temporary.glob("exsync-metrics-*"))
        assert len(made) == 1 and made[0].is_dir()
    assert not made[0].exists()
    # A configured one (running_webhook's) is the operator's, even with a stale marker inherited.
    with running_webhook(amqp_url, tmp_path, TMPDIR=str(temporary),
                         EXSYNC_TEMPORARY_METRICS_DIR=str(tmp_path / "metrics")) as base_url:
        assert requests.get(f"{base_url}/healthz", timeout=10).status_code == 200
    assert (tmp_path / "metrics").is_dir()

