import pathlib
import subprocess
import sys
import time
import urllib.parse

import prometheus_client
import pytest

from exsync import wiring
from exsync.bus import (
    BrokerUnavailable,
    BusError,
    MessageUnroutable,
    Publisher,
    SharedPublisher,
    declare_topology,
    new_event,
)
from exsync.metrics import PrometheusMetrics
from tests.support.proxy import proxy_in_front_of
from tests.support.rabbit import queue_depth, read_messages

PUBLISHERS = pytest.mark.parametrize("publisher_class", [Publisher, SharedPublisher])


def event(subject=1):
    return new_event(type="woo.order.created", source="test", subject=subject, data={"id": subject})


@PUBLISHERS
def test_a_confirmed_message_is_persistent_and_routed_by_topic(amqp_url, publisher_class):
    with publisher_class(url=amqp_url, topology=wiring.topology()) as publisher:
        publisher.publish(exchange="woo", routing_key="order.created", event=event(7))
    [(body, properties)] = read_messages(amqp_url, "orders.import", count=1)
    assert body["subject"] == "7"
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"


@PUBLISHERS
def test_a_message_no_queue_takes_raises_instead_of_vanishing(amqp_url, publisher_class):
    declare_topology(amqp_url, wiring.topology())
    with publisher_class(url=amqp_url) as publisher:
        with pytest.raises(MessageUnroutable):
            publisher.publish(exchange="", routing_key="no-such-queue", event=event())


def test_a_topic_nobody_consumes_is_kept_on_the_unrouted_queue(amqp_url):
    with Publisher(url=amqp_url, topology=wiring.topology()) as publisher:
        publisher.publish(exchange="woo", routing_key="coupon.created", event=event())
    assert queue_depth(amqp_url, "woo.unrouted") == 1


def test_declaring_the_topology_twice_changes_nothing(amqp_url):
    topology = wiring.topology()
    declare_topology(amqp_url, topology)
    with Publisher(url=amqp_url) as publisher:
        publisher.publish(exchange="woo", routing_key="order.updated", event=event())
    declare_topology(amqp_url, topology)
    assert queue_depth(amqp_url, "orders.import") == 1


@PUBLISHERS
def test_the_publisher_reconnects_after_a_dropped_connection(amqp_url, publisher_class):
    declare_topology(amqp_url, wiring.topology())
    proxy, proxied = proxy_in_front_of(amqp_url)
    publisher = publisher_class(url=proxied)
    try:
        publisher.publish(exchange="woo", routing_key="order.created", event=event(1))
        proxy.cut()
        proxy.restore()
        publisher.publish(exchange="woo", routing_key="order.created", event=event(2))
        proxy.cut()
        with pytest.raises(BrokerUnavailable):
            publisher.publish(exchange="woo", routing_key="order.created", event=event(3))
    finally:
        proxy.cut()
        publisher.close()
    assert [m["subject"] for m, _ in read_messages(amqp_url, "orders.import", count=2)] == ["1", "2"]


@PUBLISHERS
def test_an_unreachable_broker_raises_broker_unavailable(publisher_class):
    with pytest.raises(BrokerUnavailable):
        publisher_class(url="amqp://guest:guest@127.0.0.1:1/").publish(exchange="woo", routing_key="x.y", event=event())


def test_retry_queues_deadletter_back_to_their_queue(amqp_url):
    topology = wiring.topology(retry_delays_seconds=(1,))
    declare_topology(amqp_url, topology)
    with Publisher(url=amqp_url) as publisher:
        publisher.publish(exchange="", routing_key="orders.import.retry.1s", event=event(5))
    assert queue_depth(amqp_url, "orders.import.retry.1s") == 1
    [(body, _)] = read_messages(amqp_url, "orders.import", count=1, timeout_seconds=10)
    assert body["subject"] == "5"


def test_threads_sharing_one_publisher_each_get_their_own_confirm(amqp_url):
    import threading

    errors = []
    with SharedPublisher(url=amqp_url, topology=wiring.topology()) as publisher:
        def send(start):
            try:
                for subject in range(start, start + 50):
                    publisher.publish(exchange="woo", routing_key="order.created", event=event(subject))
            except Exception as error:  # collected for the assertion below
                errors.append(error)

        threads = [threading.Thread(target=send, args=(n * 50,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with pytest.raises(MessageUnroutable):
            publisher.publish(exchange="", routing_key="no-such-queue", event=event())
    assert errors == []
    subjects = sorted(int(m["subject"]) for m, _ in read_messages(amqp_url, "orders.import", count=400))
    assert subjects == list(range(400))


def test_a_message_handed_to_a_lost_connection_goes_again_on_a_new_one(amqp_url):
    declare_topology(amqp_url, wiring.topology())
    registry = prometheus_client.CollectorRegistry()
    with SharedPublisher(url=amqp_url, metrics=PrometheusMetrics(registry=registry)) as publisher:
        publisher.publish(exchange="woo", routing_key="order.created", event=event(1))
        lost = publisher._link
        lost.close()
        # The race made certain: the connection is gone, but this publish is handed the old link,
        # as a publish is when the loss has not been noticed yet.
        current = publisher._current
        handed = iter([lost])
        publisher._current = lambda *args: next(handed, None) or current(*args)
        publisher.publish(exchange="woo", routing_key="order.created", event=event(2))
    assert [m["subject"] for m, _ in read_messages(amqp_url, "orders.import", count=2)] == ["1", "2"]
    assert registry.get_sample_value("exsync_bus_publish_retries_total", {"exchange": "woo"}) == 1


def test_a_broker_refusal_is_an_error_not_an_outage_and_is_not_sent_again(amqp_url):
    declare_topology(amqp_url, wiring.topology())
    registry = prometheus_client.CollectorRegistry()
    with SharedPublisher(url=amqp_url, metrics=PrometheusMetrics(registry=registry)) as publisher:
        with pytest.raises(BusError) as raised:
            publisher.publish(exchange="no-such-exchange", routing_key="order.created", event=event(1))
        assert not isinstance(raised.value, BrokerUnavailable)
        assert "404" in str(raised.value)
        publisher.publish(exchange="woo", routing_key="order.created", event=event(2))
    assert registry.get_sample_value("exsync_bus_publish_retries_total", {"exchange": "no-such-exchange"}) is None
    assert [m["subject"] for m, _ in read_messages(amqp_url, "orders.import", count=1)] == ["2"]


def test_while_the_broker_is_down_callers_fail_at_once_until_the_pause_has_passed(amqp_url):
    proxy, proxied = proxy_in_front_of(amqp_url)
    proxy.cut()
    try:
        with SharedPublisher(url=proxied, reconnect_pause_seconds=1.0) as publisher:
            with pytest.raises(BrokerUnavailable, match="cannot connect"):
                publisher.check()
            with pytest.raises(BrokerUnavailable, match="not trying again yet"):
                publisher.publish(exchange="woo", routing_key="order.created", event=event(1))
            proxy.restore()
            time.sleep(1.1)
            publisher.check()
    finally:
        proxy.cut()


def test_a_message_pika_cannot_encode_fails_alone_and_the_connection_stays(amqp_url):
    declare_topology(amqp_url, wiring.topology())
    with SharedPublisher(url=amqp_url) as publisher:
        publisher.publish(exchange="woo", routing_key="order.created", event=event(1))
        link = publisher._link
        with pytest.raises(BusError, match="cannot be sent"):
            publisher.publish(exchange="woo", routing_key="order." + "x" * 300, event=event(2))
        publisher.publish(exchange="woo", routing_key="order.created", event=event(3))
        assert publisher._link is link
    assert [m["subject"] for m, _ in read_messages(amqp_url, "orders.import", count=2)] == ["1", "3"]


def test_after_close_a_shared_publisher_refuses_to_publish(amqp_url):
    publisher = SharedPublisher(url=amqp_url, topology=wiring.topology())
    publisher.publish(exchange="woo", routing_key="order.created", event=event(1))
    publisher.close()
    with pytest.raises(BrokerUnavailable, match="closed"):
        publisher.publish(exchange="woo", routing_key="order.created", event=event(2))
    assert queue_depth(amqp_url, "orders.import") == 1


@pytest.mark.parametrize(("sent", "exchange", "told"), [
    (True, "no-such-exchange", BusError),  # the message the broker refused: not sent again
    (True, "woo", BrokerUnavailable),  # another on the same channel: sent again on a new link
    (False, "no-such-exchange", BrokerUnavailable),  # never sent: sent on a new link
])
def test_after_a_refusal_only_the_refused_message_is_not_sent_again(sent, exchange, told):
    import pika.exceptions

    from exsync.bus.shared_publisher import _lost

    refusal = pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no exchange 'no-such-exchange' in vhost 'v'")
    failure = _lost(refusal, sent=sent, exchange=exchange)
    assert type(failure) is told
    assert failure.__cause__ is refusal


@PUBLISHERS
def test_a_url_naming_several_nodes_reaches_a_node_that_answers(amqp_url, publisher_class):
    """EXSYNC_AMQP_URL may name a cluster's nodes separated by commas: a node that is down is skipped."""
    from tests.support.net import free_port
    from tests.support.rabbit import with_vhost

    dead = with_vhost(f"amqp://guest:guest@127.0.0.1:{free_port()}/", urllib.parse.urlsplit(amqp_url).path[1:])
    nodes = f"{dead},{amqp_url}"
    deadline = time.monotonic() + 10
    with publisher_class(url=nodes, topology=wiring.topology()) as publisher:
        while True:
            try:
                publisher.publish(exchange="woo", routing_key="order.created", event=event(9))
                break
            except BrokerUnavailable:
                # The shared publisher's link tries one node; after its reconnect pause, the next.
                assert time.monotonic() < deadline, "no node was reached"
                time.sleep(0.2)
    [(body, _)] = read_messages(amqp_url, "orders.import", count=1)
    assert body["subject"] == "9"


def test_a_shared_publisher_writes_a_message_whole_in_one_write_however_many_frames_it_takes(amqp_url, monkeypatch):
    # pika writes each frame with a send() of its own; the shared publisher joins them (one TCP
    # segment and one wake-up of the broker a message). pika's hook is private: this fails if a
    # pika release stops calling it.
    import pika.adapters.base_connection

    writes = []
    emit = pika.adapters.base_connection.BaseConnection._adapter_emit_data
    monkeypatch.setattr(pika.adapters.base_connection.BaseConnection, "_adapter_emit_data",
                        lambda connection, data: (writes.append(len(data)), emit(connection, data))[1])
    text = "é" * 200_000  # 400,000 bytes: a method frame, a header frame and four body frames
    with SharedPublisher(url=amqp_url, topology=wiring.topology()) as publisher:
        publisher.publish(exchange="woo", routing_key="order.created", event=event(1))
        writes.clear()
        publisher.publish(exchange="woo", routing_key="order.created",
                          event=new_event(type="woo.order.created", source="test", subject=2, data={"text": text}))
        assert len(writes) == 1 and writes[0] > 400_000  # before close() writes its own frames
    [_, (body, _)] = read_messages(amqp_url, "orders.import", count=2)
    assert body["data"]["text"] == text


_GEVENT_PUBLISHER = """
from gevent import monkey; monkey.patch_all()
import os, sys
from exsync import wiring
from exsync.bus import SharedPublisher, new_event
publisher = SharedPublisher(url=sys.argv[1], topology=wiring.topology(), reconnect_pause_seconds=0)
for _ in sys.stdin:
    publisher.publish(exchange="woo", routing_key="order.created",
                      event=new_event(type="woo.order.created", source="test", subject=1, data={"id": 1}))
    print(len(os.listdir("/proc/self/fd")), flush=True)
"""


def test_under_gevent_a_shared_publisher_reconnects_without_spending_descriptors(amqp_url):
    # pika's gevent loop opens a pipe that nothing closes: one loop serves every link of a process,
    # or a receiver reconnecting through a long outage would run out of descriptors.
    declare_topology(amqp_url, wiring.topology())
    proxy, proxied = proxy_in_front_of(amqp_url)
    process = subprocess.Popen([sys.executable, "-c", _GEVENT_PUBLISHER, proxied], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=pathlib.Path(__file__).resolve().parents[2])
    try:
        def publish_and_count():
            process.stdin.write("publish\n")
            process.stdin.flush()
            return int(process.stdout.readline())

        first = publish_and_count()
        counts = []
        for _ in range(5):
            proxy.cut()
            proxy.restore()
            counts.append(publish_and_count())
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        proxy.cut()
    assert max(counts) <= first + 1, (first, counts)
    assert queue_depth(amqp_url, "orders.import") == 6
