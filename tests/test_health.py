"""Liveness and readiness: the probes that restart a stuck pod and hold back an unconnected one."""

import os
import threading
import time

import pytest
import requests

from exsync import wiring
from exsync.bus import WOO_EXCHANGE, Publisher, declare_topology, new_event
from exsync.demo import exsync_process
from exsync.health import HeldCheck, Liveness, Readiness, serve_health
from tests.support.net import free_port
from tests.support.waiting import wait_for, wait_until
from tests.support.woo import fixture


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_liveness_fails_when_the_loop_stops_or_a_handler_hangs():
    clock = Clock()
    liveness = Liveness(stall_seconds=10, clock=clock)
    assert liveness.problem() is None
    # a loop about to wait its 30 s interval normally is alive for the wait plus the stall time
    liveness.beat(waiting_seconds=30)
    clock.now += 39
    assert liveness.problem() is None
    clock.now += 2
    assert "has not come back" in liveness.problem()
    # a loop that turns while one handler runs on: alive until that handler has run for the stall time
    started = clock.now
    liveness.beat(waiting_seconds=0.5, busy_since=started)
    clock.now += 9
    liveness.beat(waiting_seconds=0.5, busy_since=started)
    assert liveness.problem() is None
    clock.now += 2
    liveness.beat(waiting_seconds=0.5, busy_since=started)
    assert "the work in hand has run 11 s" in liveness.problem()
    liveness.beat(waiting_seconds=0.5)
    assert liveness.problem() is None


def test_readiness_names_the_failed_check_and_not_its_error():
    def broken_broker():
        raise ConnectionError("cannot connect to RabbitMQ at broker.internal:5672/production")

    server = serve_health(0, host="127.0.0.1", liveness=Liveness(stall_seconds=60),
                          readiness=Readiness({"broker": broken_broker, "database": lambda: None}))
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{base}/healthz", timeout=5).text == "ok\n"
        response = requests.get(f"{base}/readyz", timeout=5)
        assert (response.status_code, response.text) == (503, "not ready: broker\n")
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 200
    finally:
        server.stop()


def test_a_held_check_keeps_its_connection_and_replaces_a_broken_one():
    opened, probed, closed = iter(["first", "second"]), [], []
    failing = {"now": False}

    def probe(connection):
        probed.append(connection)
        if failing["now"]:
            failing["now"] = False
            raise RuntimeError("the connection broke")

    held = HeldCheck(open=lambda: next(opened), probe=probe, close=closed.append)
    held()
    held()
    failing["now"] = True
    with pytest.raises(RuntimeError):
        held()
    held()
    assert (probed, closed) == (["first", "first", "first", "second"], ["first"])


def test_a_check_still_waiting_makes_the_next_one_fail_at_once():
    started, release = threading.Event(), threading.Event()

    def probe(connection):
        started.set()
        release.wait(10)

    held = HeldCheck(open=lambda: "connection", probe=probe, close=lambda connection: None, wait_seconds=0.2)
    waiting = threading.Thread(target=held)
    waiting.start()
    try:
        assert started.wait(5)
        with pytest.raises(TimeoutError):
            held()
    finally:
        release.set()
        waiting.join(5)
    held()  # the earlier check answered: the next one goes through


@pytest.mark.slow
def test_a_consumer_whose_handler_hangs_fails_healthz_then_recovers(amqp_url, pg_odbc_dsn, tmp_path):
    """`exsync consume orders` as a real process; its handler blocks on a table the test locks."""
    import pyodbc

    declare_topology(amqp_url, wiring.topology())
    stall_seconds = 3
    config = tmp_path / "exsync.yaml"
    config.write_text(f"health:\n  stall_seconds: {stall_seconds}\n", encoding="utf-8")
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EXSYNC_AMQP_URL": amqp_url,
           "EXSYNC_EXCHEQUER_DSN": pg_odbc_dsn, "EXSYNC_STATE_DSN": pg_odbc_dsn, "EXSYNC_CONFIG": str(config)}
    base = f"http://127.0.0.1:{port}"

    def probe(path):
        try:
            return requests.get(f"{base}{path}", timeout=5)
        except requests.ConnectionError:
            return None

    with exsync_process(["consume", "orders", "--metrics-port", str(port)], env=env,
                        log_path=tmp_path / "consumer.log"):
        wait_for(lambda: (r := probe("/readyz")) is not None and r.status_code == 200, "the consumer to be ready")
        assert probe("/healthz").status_code == 200
        # The consumer is idle: its loop turns every poll, so it stays alive past the stall time.
        time.sleep(stall_seconds + 0.5)
        assert probe("/healthz").status_code == 200

        lock = pyodbc.connect(pg_odbc_dsn, autocommit=False)
        try:
            lock.execute("LOCK TABLE exsync.order_tracking IN ACCESS EXCLUSIVE MODE")
            order = fixture("order_727.json")
            with Publisher(url=amqp_url) as publisher:
                publisher.publish(exchange=WOO_EXCHANGE, routing_key="order.created", event=new_event(
                    type="woo.order.created", source="tests", subject=str(order["id"]), data=order))
            # (a Response is false when its status is an error, so the text is what is waited for)
            stuck = wait_for(lambda: (r := probe("/healthz")).status_code == 503 and r.text,
                             "/healthz to fail", timeout_seconds=stall_seconds + 15)
            assert "the work in hand has run" in stuck
            assert probe("/readyz").status_code == 200  # connected all along: stuck is not unready
        finally:
            lock.rollback()
            lock.close()
        # Released, the handler finishes and the loop is healthy again (no restart was needed here).
        assert wait_until(lambda: probe("/healthz").status_code == 200, timeout_seconds=20)
    log = (tmp_path / "consumer.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log


@pytest.mark.slow
def test_capture_is_ready_only_while_the_broker_answers_and_stays_alive(amqp_url, tmp_path):
    """`exsync capture` as a real process: a broker outage makes it unready (out of a rollout's count),
    not dead (a restart would not bring the broker back)."""
    from exsync.exchequer import connect, init_schema, seed
    from tests.support.proxy import proxy_in_front_of

    declare_topology(amqp_url, wiring.topology())
    dsn = f"sqlite:///{tmp_path / 'company.db'}"
    with connect(dsn) as database:
        init_schema(database)
        seed(database, items=5, locations=1, boms=0, accounts=2)
    proxy, proxied = proxy_in_front_of(amqp_url)
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "EXSYNC_AMQP_URL": proxied, "EXSYNC_EXCHEQUER_DSN": dsn}
    base = f"http://127.0.0.1:{port}"

    def probe(path):
        try:
            response = requests.get(f"{base}{path}", timeout=10)
        except requests.ConnectionError:
            return None
        return response.status_code, response.text

    try:
        with exsync_process(["capture", "--interval-seconds", "1", "--metrics-port", str(port)], env=env,
                            log_path=tmp_path / "capture.log"):
            wait_for(lambda: probe("/readyz") == (200, "ready\n"), "capture to be ready")
            assert probe("/healthz") == (200, "ok\n")
            assert "exsync_capture_cycle_duration_seconds" in requests.get(f"{base}/metrics", timeout=10).text
            proxy.cut()
            wait_for(lambda: probe("/readyz") == (503, "not ready: broker\n"), "the outage to show on /readyz")
            assert probe("/healthz") == (200, "ok\n")
            proxy.restore()
            wait_for(lambda: probe("/readyz") == (200, "ready\n"), "capture to be ready again")
    finally:
        proxy.cut()
