"""The receiver through Flask's test client, publishing to a real RabbitMQ vhost of the test's own."""


import prometheus_client
import pytest

from exsync import wiring
from exsync.bus import INVALID_QUEUE, Publisher, declare_topology
from exsync.metrics import PrometheusMetrics
from exsync.webhooks import Receiver, create_app
from tests.support.proxy import proxy_in_front_of
from tests.support.rabbit import bind_probe, queue_depth, read_messages
from tests.support.woo import delivery_headers, fixture, woo_json

SECRET = "wh-secret"
URL_PATH = "/webhooks/woocommerce"
MAX_BODY_BYTES = 64 * 1024


@pytest.fixture
def bus(amqp_url):
    topology = wiring.topology()
    declare_topology(amqp_url, topology)
    probe = bind_probe(amqp_url, exchange="woo", routing_key="#")
    return amqp_url, topology, probe


def make_client(url, topology, *, secrets=(SECRET,)):
    registry = prometheus_client.CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry)
    publisher = Publisher(url=url, topology=topology, metrics=metrics)
    receiver = Receiver(secrets=secrets, publisher=publisher, metrics=metrics)
    app = create_app(receiver=receiver, publisher=publisher, max_body_bytes=MAX_BODY_BYTES, metrics=metrics)
    return app.test_client(), registry, publisher


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0


def post(client, body, headers):
    return client.post(URL_PATH, data=body, headers=headers)


def test_a_signed_order_is_published_with_its_envelope(bus):
    url, topology, probe = bus
    client, registry, _ = make_client(url, topology)
    order = fixture("order_727.json")
    body = woo_json(order)
    response = post(client, body, delivery_headers(body, secret=SECRET, topic="order.created"))
    assert response.status_code == 200
    [(event, properties)] = read_messages(url, probe, count=1)
    assert event["type"] == "woo.order.created"
    assert event["specversion"] == "1.0"
    assert event["subject"] == "727"
    assert event["source"] == "https://shop.example/"
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == order
    assert event["wcwebhookid"] == "3"
    assert properties.delivery_mode == 2
    assert properties.message_id == event["id"]
    assert queue_depth(url, "orders.import") == 1
    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="accepted") == 1


def test_header_names_are_matched_case_insensitively(bus):
    url, topology, probe = bus
    client, _, _ = make_client(url, topology)
    body = woo_json(fixture("order_727.json"))
    signed = delivery_headers(body, secret=SECRET, topic="order.updated")
    headers = {name.lower(): value for name, value in signed.items()}
    assert post(client, body, headers).status_code == 200
    [(event, _)] = read_messages(url, probe, count=1)
    assert event["type"] == "woo.order.updated"


@pytest.mark.parametrize("signature, reason", [(None, "missing_signature"), ("bm9wZQ==", "bad_signature")])
def test_a_missing_or_wrong_signature_is_refused_and_nothing_published(bus, signature, reason):
    url, topology, probe = bus
    client, registry, _ = make_client(url, topology)
    body = woo_json(fixture("order_727.json"))
    headers = delivery_headers(body, secret=SECRET, topic="order.created")
    if signature is None:
        del headers["X-WC-Webhook-Signature"]
    else:
        headers["X-WC-Webhook-Signature"] = signature
    assert post(client, body, headers).status_code == 401
    assert read_messages(url, probe, timeout_seconds=0.5) == []
    assert sample(registry, "exsync_webhook_unauthorized_total", reason=reason) == 1


def test_rotation_accepts_both_secrets(bus):
    url, topology, probe = bus
    client, _, _ = make_client(url, topology, secrets=("new", "old"))
    body = woo_json(fixture("order_727.json"))
    for secret in ("old", "new"):
        assert post(client, body, delivery_headers(body, secret=secret, topic="order.updated")).status_code == 200
    assert len(read_messages(url, probe, count=2)) == 2


def test_a_ping_is_answered_200_and_nothing_published(bus):
    url, topology, probe = bus
    client, registry, _ = make_client(url, topology)
    response = client.post(URL_PATH, data="webhook_id=12",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert read_messages(url, probe, timeout_seconds=0.5) == []
    assert sample(registry, "exsync_webhook_requests_total", topic="unknown", outcome="ping") == 1


def test_a_body_over_the_limit_gets_413(bus):
    url, topology, probe = bus
    client, _, _ = make_client(url, topology)
    body = b'{"id":1,"pad":"' + b"x" * MAX_BODY_BYTES + b'"}'
    response = post(client, body, delivery_headers(body, secret=SECRET, topic="order.created"))
    assert response.status_code == 413
    assert read_messages(url, probe, timeout_seconds=0.5) == []


def test_an_authentic_body_that_is_not_json_is_parked_as_received(bus):
    url, topology, _ = bus
    client, registry, _ = make_client(url, topology)
    body = b'{"id": 727, "status": \xff'
    response = post(client, body, delivery_headers(body, secret=SECRET, topic="order.created"))
    assert response.status_code == 200
    [(event, _)] = read_messages(url, INVALID_QUEUE, count=1)
    assert event["data"]["raw"] == '{"id": 727, "status": \\xff'
    assert event["data"]["errors"]["body"][0].startswith("not JSON")
    assert queue_depth(url, "orders.import") == 0
    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="parked") == 1


def test_an_authentic_body_failing_its_schema_is_parked_with_the_errors(bus):
    url, topology, _ = bus
    client, registry, _ = make_client(url, topology)
    order = fixture("order_727.json")
    del order["status"]
    order["line_items"][0]["total"] = "six pounds"
    body = woo_json(order)
    assert post(client, body, delivery_headers(body, secret=SECRET, topic="order.created")).status_code == 200
    [(event, _)] = read_messages(url, INVALID_QUEUE, count=1)
    assert event["type"] == "woo.invalid"
    assert event["data"]["topic"] == "order.created"
    assert event["data"]["errors"]["status"] == ["Missing data for required field."]
    assert event["data"]["errors"]["line_items"]["0"]["total"] == ["Not a money amount."]
    assert event["data"]["body"] == order
    assert queue_depth(url, "orders.import") == 0
    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="parked") == 1


def test_a_deleted_resource_carries_only_its_id(bus):
    url, topology, probe = bus
    client, _, _ = make_client(url, topology)
    body = woo_json({"id": 727})
    assert post(client, body, delivery_headers(body, secret=SECRET, topic="order.deleted")).status_code == 200
    [(event, _)] = read_messages(url, probe, count=1)
    assert (event["type"], event["subject"]) == ("woo.order.deleted", "727")


@pytest.mark.parametrize("topic, payload", [
    ("action.woocommerce_order_refunded", {"action": "woocommerce_order_refunded", "arg": 727}),
    ("coupon.created", {"id": 9, "code": "SPRING"}),
])
def test_other_topics_are_published_under_their_topic(bus, topic, payload):
    url, topology, probe = bus
    client, _, _ = make_client(url, topology)
    body = woo_json(payload)
    assert post(client, body, delivery_headers(body, secret=SECRET, topic=topic)).status_code == 200
    [(event, _)] = read_messages(url, probe, count=1)
    assert event["type"] == f"woo.{topic}"
    assert event["data"] == payload


def test_broker_unreachable_gives_503_and_readyz_says_so(amqp_url):
    proxy, proxied = proxy_in_front_of(amqp_url)
    client, registry, publisher = make_client(proxied, wiring.topology())
    body = woo_json(fixture("order_727.json"))
    headers = delivery_headers(body, secret=SECRET, topic="order.created")
    try:
        assert client.get("/readyz").status_code == 200
        assert post(client, body, headers).status_code == 200
        proxy.cut()
        assert post(client, body, headers).status_code == 503
        assert client.get("/readyz").status_code == 503
        proxy.restore()
        assert post(client, body, headers).status_code == 200
    finally:
        proxy.cut()
        publisher.close()
    assert sample(registry, "exsync_webhook_requests_total", topic="order.created", outcome="unavailable") == 1
    assert queue_depth(amqp_url, "orders.import") == 2


def test_healthz_answers_without_the_broker():
    client, _, _ = make_client("amqp://guest:guest@127.0.0.1:1/", wiring.topology())
    assert client.get("/healthz").status_code == 200
