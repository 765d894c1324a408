"""Signed but hostile deliveries: the receiver never answers 500, and each answer means what it says."""

import json
import threading
import time

import pytest

from exsync.bus import INVALID_QUEUE
from exsync.webhooks.app import DeliverySlots
from exsync.webhooks.receiver import MAX_TOPIC_CHARS, json_depth_exceeds
from tests.support.rabbit import queue_depth, read_messages
from tests.support.woo import delivery_headers, fixture, woo_json
from tests.webhooks.test_app import SECRET, URL_PATH, make_client, post, sample


def deliver(client, body, topic="order.created"):
    return post(client, body, delivery_headers(body, secret=SECRET, topic=topic))


@pytest.mark.parametrize("body", [
    b"[" * 30_000 + b"]" * 30_000,  # Python's json gives up at about 1,000 levels: a 500 once
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
])
def test_a_body_nested_too_deeply_is_refused_400_before_parsing(bus, body):
    url, topology, probe = bus
    client, registry, _ = make_client(url, topology)
    response = deliver(client, body)
    assert response.status_code == 400 and b"nests deeper than 64" in response.data
    assert read_messages(url, probe, timeout_seconds=0.5) == []
    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="refused") == 1


def test_one_deep_field_in_a_valid_order_is_refused_400(bus):
    url, topology, probe = bus
    client, _, _ = make_client(url, topology)
    order = fixture("order_727.json")
    order["meta_data"] = [{"id": 1, "key": "plugin", "value": "DEEP"}]
    # 2,000 levels in one field: more than Python's json can parse (a RecursionError, a 500 once).
    body = woo_json(order).replace(b'"DEEP"', b"[" * 2_000 + b'"x"' + b"]" * 2_000)
    response = deliver(client, body)
    assert response.status_code == 400
    assert read_messages(url, probe, timeout_seconds=0.5) == []


def test_depth_is_counted_outside_strings_only():
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[[[{{{{{{\\"]]]]"}', 2)
    assert json_depth_exceeds(b'{"a": [[1]]}', 2)
    assert not json_depth_exceeds(b'{"a": [[1]]}', 3)


def test_a_lone_surrogate_is_parked_escaped_never_500(bus):
    url, topology, probe = bus
    client, registry, _ = make_client(url, topology)
    order = fixture("order_727.json")
    order["billing"]["first_name"] = "\ud800"
    body = json.dumps(order).encode("ascii")  # valid JSON: the surrogate travels as the escape \ud800
    response = deliver(client, body)
    assert response.status_code == 200 and b"stored for review" in response.data
    [(event, _)] = read_messages(url, INVALID_QUEUE, count=1)
    assert event["data"]["body"]["billing"]["first_name"] == "\\ud800"  # escaped: storable as UTF-8
    assert any("lone surrogate" in message for message in event["data"]["errors"]["_text"])
    assert queue_depth(url, "orders.import") == 0
    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="parked") == 1


def test_a_lone_surrogate_in_a_body_failing_its_schema_is_parked_too(bus):
    url, topology, _ = bus
    client, _, _ = make_client(url, topology)
    body = json.dumps({"id": "\udfff", "status": "processing"}).encode("ascii")
    assert deliver(client, body).status_code == 200
    [(event, _)] = read_messages(url, INVALID_QUEUE, count=1)
    assert event["data"]["body"]["id"] == "\\udfff" and "id" in event["data"]["errors"]


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json_and_are_parked(bus, constant):
    url, topology, _ = bus
    client, _, _ = make_client(url, topology)
    body = woo_json(fixture("order_727.json")).replace(b'"total":"29.35"', b'"total":' + constant)
    assert deliver(client, body).status_code == 200
    [(event, _)] = read_messages(url, INVALID_QUEUE, count=1)
    assert constant.decode() in event["data"]["raw"] and "not JSON" in event["data"]["errors"]["body"][0]
    assert queue_depth(url, "orders.import") == 0


def test_a_body_that_is_json_but_no_object_is_parked(bus):
    url, topology, _ = bus
    client, _, _ = make_client(url, topology)
    assert deliver(client, b"[1, 2]").status_code == 200
    [(event, _)] = read_messages(url, INVALID_QUEUE, count=1)
    assert event["data"]["raw"] == "[1, 2]"


@pytest.mark.parametrize("topic", ["order." + "x" * 300, "x" * (MAX_TOPIC_CHARS + 1)])
def test_a_topic_too_long_to_route_is_refused_400_not_503(bus, topic):
    url, topology, probe = bus
    client, registry, _ = make_client(url, topology)
    response = deliver(client, woo_json(fixture("order_727.json")), topic=topic)
    assert response.status_code == 400 and b"longer than" in response.data
    assert read_messages(url, probe, timeout_seconds=0.5) == []
    assert sample(registry, "exsync_webhook_requests_total", topic="other", outcome="refused") == 1


@pytest.mark.parametrize("topic", ["invalid.order", "invalid.order.created", "Invalid.x"])
def test_a_topic_in_exsyncs_own_namespace_is_refused_and_parks_nothing(bus, topic):
    url, topology, probe = bus
    client, _, _ = make_client(url, topology)
    response = deliver(client, woo_json(fixture("order_727.json")), topic=topic)
    assert response.status_code == 400 and b"own namespace" in response.data
    assert read_messages(url, probe, timeout_seconds=0.5) == []
    assert queue_depth(url, INVALID_QUEUE) == 0


@pytest.mark.parametrize("path", [URL_PATH, "/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "DELETE", "PATCH"])
def test_methods_other_than_the_routes_own_are_405(bus, path, method):
    url, topology, _ = bus
    client, _, _ = make_client(url, topology)
    assert client.open(path, method=method).status_code == 405


def test_hostile_money_is_parked_by_the_receiver_and_not_routed_to_the_orders_queue(bus):
    url, topology, _ = bus
    client, _, _ = make_client(url, topology)
    for total, order_id in (("NaN", 1), ("Infinity", 2), ("1e30", 3), ("-10.00", 4)):
        order = {**fixture("order_727.json"), "id": order_id, "total": total}
        assert deliver(client, woo_json(order)).status_code == 200
    order = {**fixture("order_727.json"), "id": 800006.7}
    assert deliver(client, woo_json(order)).status_code == 200
    parked = read_messages(url, INVALID_QUEUE, count=5)
    assert len(parked) == 5 and all("total" in e["data"]["errors"] or "id" in e["data"]["errors"] for e, _ in parked)
    assert queue_depth(url, "orders.import") == 0


def test_delivery_slots_let_a_few_wait_briefly_and_refuse_the_rest_at_once():
    slots = DeliverySlots(slots=1, waiters=1, wait_seconds=5.0)
    assert slots.acquire()
    waited = []
    waiter = threading.Thread(target=lambda: waited.append(slots.acquire()))
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert slots.acquire() is False and time.monotonic() - started < 0.5  # refused at once, not queued
    slots.release()
    waiter.join(timeout=5)
    assert waited == [True]
    slots.release()
    impatient = DeliverySlots(slots=1, waiters=1, wait_seconds=0.1)
    assert impatient.acquire() and impatient.acquire() is False  # waited 0.1 s, then refused
