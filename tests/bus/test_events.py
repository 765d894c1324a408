"""One way to build, route and publish events (exsync.bus.events); the bytes the receiver writes."""

import json

import pytest

from exsync.bus.events import Envelope, publish_event, woo_event
from exsync.bus.publisher import encode_event
from tests.support.woo import fixture, woo_json


class Recorder:
    def __init__(self):
        self.published = []

    def publish(self, *, exchange, routing_key, event, headers=None):
        self.published.append((exchange, routing_key, event))


def test_a_valid_body_goes_to_its_topic_with_its_text_as_the_data():
    order = fixture("order_727.json")
    text = woo_json(order).decode("utf-8")
    routed = woo_event(topic="order.created", payload=json.loads(text), source="https://shop.example/", text=text,
                       wcwebhookid="3")
    assert (routed.routing_key, routed.parked, routed.event["type"]) == ("order.created", False, "woo.order.created")
    assert isinstance(routed.event, Envelope)
    # The bytes sent parse to what writing the event out would give.
    assert json.loads(routed.event.encoded) == json.loads(encode_event(dict(routed.event)))
    assert routed.event["subject"] == "727"


def test_a_text_escaping_a_lone_surrogate_is_left_to_fail_when_written():
    text = '{"id": 727, "note": "\\ud800"}'
    routed = woo_event(topic="coupon.created", payload=json.loads(text), source="s", text=text)
    assert not isinstance(routed.event, Envelope)
    with pytest.raises(UnicodeEncodeError):
        encode_event(routed.event)


def test_a_body_failing_its_schema_or_a_topic_of_no_shape_is_parked():
    order = fixture("order_727.json")
    order.pop("id")
    routed = woo_event(topic="order.updated", payload=order, source="s")
    assert (routed.routing_key, routed.parked, routed.event["type"]) == ("invalid.order.updated", True, "woo.invalid")
    assert "id" in routed.event["data"]["errors"] and routed.event["data"]["body"] == order
    odd = woo_event(topic="no topic", payload={"id": 1}, source="s")
    assert odd.routing_key == "invalid.unknown" and "X-WC-Webhook-Topic" in odd.errors


def test_publish_event_builds_the_envelope_and_publishes_it():
    recorder = Recorder()
    event = publish_event(recorder, exchange="exchequer", routing_key="order.progressed", type="exchequer.order.progressed",
                          source="exsync", subject=727, data={"a": 1}, id="fixed")
    assert recorder.published == [("exchequer", "order.progressed", event)]
    assert (event["id"], event["subject"], event["data"]) == ("fixed", "727", {"a": 1})
