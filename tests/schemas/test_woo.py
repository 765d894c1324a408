import pytest

from exsync.schemas.envelope import EnvelopeSchema, new_event
from exsync.schemas.woo import schema_for_topic, validate_body
from tests.support.woo import fixture


def test_the_documented_order_is_valid():
    assert validate_body("order.created", fixture("order_727.json")) == {}


@pytest.mark.parametrize("change, path", [
    (lambda o: o.pop("id"), "id"),
    (lambda o: o.update(status=""), "status"),
    (lambda o: o.update(total="twenty"), "total"),
    (lambda o: o["line_items"][1].update(quantity="two"), "line_items"),
    (lambda o: o["shipping_lines"][0].pop("total"), "shipping_lines"),
])
def test_an_order_missing_what_exsync_relies_on_is_invalid(change, path):
    order = fixture("order_727.json")
    change(order)
    assert path in validate_body("order.updated", order)


def test_deleted_bodies_carry_only_an_id_and_other_topics_are_unchecked():
    assert validate_body("order.deleted", {"id": 727}) == {}
    assert "id" in validate_body("customer.deleted", {})
    assert schema_for_topic("coupon.created") is None
    assert schema_for_topic("action.woocommerce_order_refunded") is None


def test_a_new_event_is_a_valid_cloudevents_envelope():
    event = new_event(type="woo.order.created", source="https://shop.example/", subject=727, data={"id": 727})
    loaded = EnvelopeSchema().load(event)
    assert loaded["subject"] == "727"
    assert loaded["specversion"] == "1.0"
    assert EnvelopeSchema().validate({**event, "specversion": "0.3"}) == {"specversion": ["Must be equal to 1.0."]}
