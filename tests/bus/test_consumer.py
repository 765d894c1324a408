import os
import signal
import subprocess
import sys
import threading
import time

import prometheus_client
import pytest

from exsync import wiring
from exsync.bus import PermanentError, Publisher, Worker, declare_topology, new_event
from exsync.bus.consumer import ATTEMPT_HEADER, ERROR_HEADER
from exsync.metrics import PrometheusMetrics
from tests.support.proxy import proxy_in_front_of
from tests.support.rabbit import queue_depth, read_messages
from tests.support.waiting import wait_until

TOPOLOGY = wiring.topology(retry_delays_seconds=(1, 2), max_attempts=3)


def publish(url, *subjects, body=None):
    with Publisher(url=url, topology=TOPOLOGY) as publisher:
        for subject in subjects:
            publisher.publish(exchange="woo", routing_key="order.updated",
                              event=new_event(type="woo.order.updated", source="test", subject=subject, data={}))
    if body is not None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(url))
        connection.channel().basic_publish("woo", "order.updated", body)
        connection.close()


class Running:
    """A Worker on a thread, stopped on exit."""

    def __init__(self, **kwargs):
        self.worker = Worker(poll_seconds=0.1, reconnect_min_seconds=0.1, reconnect_max_seconds=0.5, **kwargs)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.worker

    def __exit__(self, *exc):
        self.worker.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def test_a_handled_message_is_acknowledged(amqp_url):
    publish(amqp_url, 1, 2, 3)
    seen = []
    with Running(url=amqp_url, queue="orders.import", handler=lambda m: seen.append(m.event["subject"]),
                 topology=TOPOLOGY):
        assert wait_until(lambda: len(seen) == 3)
    assert seen == ["1", "2", "3"]
    assert queue_depth(amqp_url, "orders.import") == 0


def test_a_failing_message_is_retried_with_delays_then_parked_with_the_reason(amqp_url):
    publish(amqp_url, 42)
    attempts = []
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)

    def handler(message):
        attempts.append((message.attempt, time.monotonic()))
        raise RuntimeError(f"database said no on attempt {message.attempt}")

    with Running(url=amqp_url, queue="orders.import", handler=handler, topology=TOPOLOGY, metrics=metrics):
        assert wait_until(lambda: queue_depth(amqp_url, "orders.import.dead") == 1)
    assert [a for a, _ in attempts] == [1, 2, 3]
    # The delays grow: 1 s before the second attempt, 2 s before the third.
    assert attempts[1][1] - attempts[0][1] >= 0.9
    assert attempts[2][1] - attempts[1][1] >= 1.9
    [(body, properties)] = read_messages(amqp_url, "orders.import.dead", count=1)
    assert body["subject"] == "42"
    assert properties.headers[ATTEMPT_HEADER] == 3
    assert properties.headers[ERROR_HEADER] == "RuntimeError: database said no on attempt 3"
    assert queue_depth(amqp_url, "orders.import") == 0
    get = registry.get_sample_value
    assert get("exsync_bus_messages_retried_total", {"queue": "orders.import"}) == 2
    assert get("exsync_bus_messages_parked_total", {"queue": "orders.import"}) == 1
    assert get("exsync_bus_messages_consumed_total", {"queue": "orders.import", "outcome": "parked"}) == 1


def test_a_permanent_error_or_a_body_that_is_not_json_is_parked_at_once(amqp_url):
    publish(amqp_url, 1, body=b"\xff not json")
    calls = []

    def handler(message):
        calls.append(message.event["subject"])
        raise PermanentError("unknown topic")

    with Running(url=amqp_url, queue="orders.import", handler=handler, topology=TOPOLOGY):
        assert wait_until(lambda: queue_depth(amqp_url, "orders.import.dead") == 2)
    assert calls == ["1"]
    errors = sorted(p.headers[ERROR_HEADER] for _, p in _raw_dead(amqp_url))
    assert errors == ["PermanentError: the body is not a JSON object", "PermanentError: unknown topic"]


def _raw_dead(url):
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    out = []
    while True:
        method, properties, body = channel.basic_get("orders.import.dead", auto_ack=True)
        if method is None:
            break
        out.append((body, properties))
    connection.close()
    return out


def test_the_worker_reconnects_when_the_broker_comes_back(amqp_url):
    declare_topology(amqp_url, TOPOLOGY)
    proxy, proxied = proxy_in_front_of(amqp_url)
    seen = []
    try:
        with Running(url=proxied, queue="orders.import", topology=TOPOLOGY,
                     handler=lambda m: seen.append((m.event["subject"], m.redelivered))):
            publish(amqp_url, 1)
            assert wait_until(lambda: seen == [("1", False)])
            proxy.cut()
            publish(amqp_url, 2)
            time.sleep(0.5)
            assert seen == [("1", False)]
            proxy.restore()
            assert wait_until(lambda: {subject for subject, _ in seen} == {"1", "2"}), seen
    finally:
        proxy.cut()
    # The handler has run when the cut comes, but its ack may not have reached the broker yet: then
    # message 1 comes again, marked redelivered (at least once). Message 2 comes exactly once.
    assert seen[0] == ("1", False)
    assert [subject for subject, _ in seen].count("2") == 1, seen
    assert all(redelivered for subject, redelivered in seen[1:] if subject == "1"), seen


@pytest.mark.slow
def test_sigterm_finishes_the_message_in_hand_and_returns_the_rest(amqp_url, tmp_path):
    publish(amqp_url, 1, 2, 3)
    log_path = tmp_path / "handled.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bus.worker_process", amqp_url, str(log_path)],
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    try:
        assert wait_until(lambda: log_path.exists() and "started 1" in log_path.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert log_path.read_text().splitlines() == ["started 1", "done 1"]
    remaining = [m["subject"] for m, _ in read_messages(amqp_url, "orders.import", count=2)]
    assert remaining == ["2", "3"]


def test_handlers_run_concurrently_up_to_the_limit_and_each_message_is_acked(amqp_url):
    publish(amqp_url, *range(12))
    lock = threading.Lock()
    running, peak, seen = [0], [0], []

    def handler(message):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
            seen.append(message.event["subject"])

    with Running(url=amqp_url, queue="orders.import", handler=handler, topology=TOPOLOGY, concurrency=4):
        assert wait_until(lambda: len(seen) == 12)
    assert peak[0] == 4
    assert sorted(seen, key=int) == [str(n) for n in range(12)]
    assert queue_depth(amqp_url, "orders.import") == 0


def test_on_idle_runs_only_when_no_message_came(amqp_url):
    handled, idle_seen_at = [], []

    def on_idle():
        idle_seen_at.append(len(handled))

    with Running(url=amqp_url, queue="orders.import", handler=lambda m: handled.append(m.event["subject"]),
                 topology=TOPOLOGY, on_idle=on_idle):
        assert wait_until(lambda: idle_seen_at)
        publish(amqp_url, 1, 2, 3)
        assert wait_until(lambda: len(handled) == 3 and idle_seen_at[-1] == 3)
    assert idle_seen_at[0] == 0
