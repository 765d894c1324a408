"""The sandbox's webhook deliveries, received by a real HTTP endpoint and checked as exsync checks them."""

import json
import re

from exsync.sandbox import (
    USER_AGENT,
    SandboxServer,
    SandboxShop,
    place_order,
    seed_catalogue,
    seed_customers,
)
from exsync.webhooks.signature import verify_signature

SECRET = "s3cret-&-more"


def _hook(client, receiver, topic, secret=SECRET):
    return client.create_webhook({"name": f"test {topic}", "topic": topic, "delivery_url": receiver.url,
                                  "secret": secret})


def _by_topic(receiver):
    found = {}
    for headers, body in receiver.deliveries:
        found.setdefault(headers["X-WC-Webhook-Topic"], []).append((headers, body))
    return found


def test_a_paid_order_delivers_created_updated_stock_and_customer(client, shop, receiver, sandbox):
    for topic in ("order.created", "order.updated", "product.updated", "customer.updated"):
        _hook(client, receiver, topic)
    seed_catalogue(shop, count=2)
    customer = seed_customers(shop, count=1)[0]
    assert shop.wait_for_deliveries(timeout_seconds=10)
    receiver.requests.clear()
    order = place_order(shop, customer_id=customer["id"], lines=[("SKU-0001", 2), ("SKU-0002", 1)])
    assert shop.wait_for_deliveries(timeout_seconds=10)
    topics = _by_topic(receiver)
    assert {t: len(d) for t, d in topics.items()} == {"order.created": 1, "order.updated": 1,
                                                       "product.updated": 2, "customer.updated": 1}
    created_headers, created_body = topics["order.created"][0]
    assert created_body == topics["order.updated"][0][1]
    assert json.loads(created_body) == client.get_order(order["id"])
    assert created_headers["User-Agent"] == USER_AGENT
    assert created_headers["X-WC-Webhook-Source"] == sandbox.url + "/"
    assert (created_headers["X-WC-Webhook-Resource"], created_headers["X-WC-Webhook-Event"]) == ("order", "created")
    assert re.fullmatch(r"[0-9a-f]{32}", created_headers["X-WC-Webhook-Delivery-ID"])
    assert b"\\/" in created_body and not created_body.endswith(b"\n")
    stock = sorted(json.loads(body)["stock_quantity"] for _, body in topics["product.updated"])
    assert stock == [98, 99]


def test_deliveries_verify_and_tampered_ones_do_not(client, shop, receiver):
    _hook(client, receiver, "order.created")
    seed_catalogue(shop, count=1)
    place_order(shop, lines=[("SKU-0001", 1)])
    assert shop.wait_for_deliveries(timeout_seconds=10)
    [(headers, body)] = receiver.deliveries
    signature = headers["X-WC-Webhook-Signature"]
    assert verify_signature(body, signature, [SECRET])
    assert not verify_signature(body.replace(b'"status":"processing"', b'"status":"completed"'), signature, [SECRET])
    assert not verify_signature(body, signature, ["another secret"])


def test_the_secret_is_html_entity_decoded_before_signing(client, shop, receiver):
    _hook(client, receiver, "customer.created", secret="a&amp;b")
    seed_customers(shop, count=1)
    assert shop.wait_for_deliveries(timeout_seconds=10)
    [(headers, body)] = receiver.deliveries
    assert verify_signature(body, headers["X-WC-Webhook-Signature"], ["a&b"])


def test_creating_a_webhook_pings_with_a_form_body_and_no_signature(client, receiver):
    webhook = _hook(client, receiver, "order.updated")
    [(headers, body)] = receiver.requests
    assert body == f"webhook_id={webhook['id']}".encode()
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers.get("X-WC-Webhook-Signature") is None and headers.get("X-WC-Webhook-Topic") is None


def test_a_new_customer_delivers_created_then_updated(client, shop, receiver):
    _hook(client, receiver, "customer.created")
    _hook(client, receiver, "customer.updated")
    customer = client.create_customer({"email": "new@example.test", "first_name": "New"})
    assert shop.wait_for_deliveries(timeout_seconds=10)
    assert [h["X-WC-Webhook-Topic"] for h, _ in receiver.deliveries] == ["customer.created", "customer.updated"]
    assert {json.loads(body)["id"] for _, body in receiver.deliveries} == {customer["id"]}


def test_quick_changes_collapse_into_one_delivery_of_the_last_state(credentials, receiver):
    shop = SandboxShop(delivery_delay_seconds=0.3)
    shop.add_credentials(consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret)
    with SandboxServer(shop=shop):
        shop.create_webhook({"name": "t", "topic": "order.updated", "delivery_url": receiver.url, "secret": SECRET})
        order = shop.create_order({"status": "pending"})
        for status in ("on-hold", "processing", "completed"):
            shop.update_order(order["id"], {"status": status})
        assert shop.wait_for_deliveries(timeout_seconds=10)
    [(_, body)] = receiver.deliveries
    assert json.loads(body)["status"] == "completed"


def _fail_once(shop, customer_id):
    shop.update_customer(customer_id, {"first_name": "Changed"})
    assert shop.wait_for_deliveries(timeout_seconds=10)


def test_the_seventh_failure_disables_and_only_success_resets(client, shop, receiver):
    webhook = _hook(client, receiver, "customer.updated")
    customer = seed_customers(shop, count=1)[0]
    assert shop.wait_for_deliveries(timeout_seconds=10)
    receiver.status = 500
    for _ in range(6):
        _fail_once(shop, customer["id"])
    assert client.get_webhook(webhook["id"])["status"] == "active"
    assert shop.webhook_failure_count(webhook["id"]) == 6
    _fail_once(shop, customer["id"])
    assert client.get_webhook(webhook["id"])["status"] == "disabled"
    sent = len(receiver.deliveries)
    _fail_once(shop, customer["id"])
    assert len(receiver.deliveries) == sent

    # Re-activation does not reset the count: the next failure disables it again at once.
    client.update_webhook(webhook["id"], {"status": "active"})
    _fail_once(shop, customer["id"])
    assert client.get_webhook(webhook["id"])["status"] == "disabled"

    receiver.status = 200
    client.update_webhook(webhook["id"], {"status": "active"})
    _fail_once(shop, customer["id"])
    assert shop.webhook_failure_count(webhook["id"]) == 0
    statuses = [r.status_code for r in shop.deliverer.records if r.kind == "delivery"]
    assert statuses == [200] + [500] * 7 + [500] + [200]


def test_any_status_up_to_302_is_success(client, shop, receiver):
    webhook = _hook(client, receiver, "customer.updated")
    customer = seed_customers(shop, count=1)[0]
    receiver.status = 302
    for _ in range(8):
        _fail_once(shop, customer["id"])
    assert client.get_webhook(webhook["id"])["status"] == "active"
    assert shop.webhook_failure_count(webhook["id"]) == 0


def test_deliveries_leave_after_the_request_and_collapse_into_the_last_state(client, shop, receiver):
    _hook(client, receiver, "order.updated")
    seed_catalogue(shop, count=1)
    assert shop.wait_for_deliveries(timeout_seconds=10)
    receiver.requests.clear()
    order = client.create_order({"line_items": [{"sku": "SKU-0001", "quantity": 1}]})
    client.update_order(order["id"], {"status": "on-hold"})
    client.update_order(order["id"], {"status": "cancelled"})
    # The requests have returned; Action Scheduler has not run yet.
    assert receiver.deliveries == []
    assert shop.deliverer.delay_seconds >= 1.0
    assert shop.wait_for_deliveries(timeout_seconds=10)
    [(_, body)] = receiver.deliveries
    assert json.loads(body)["status"] == "cancelled"


def test_stock_is_reduced_when_paid_and_put_back_on_cancel_or_pending(client, shop):
    seed_catalogue(shop, count=1, stock_quantity=10)
    order = client.create_order({"line_items": [{"sku": "SKU-0001", "quantity": 3}]})
    product_id = order["line_items"][0]["product_id"]
    assert order["line_items"][0]["meta_data"] == [] and client.get_product(product_id)["stock_quantity"] == 10
    paid = client.update_order(order["id"], {"status": "processing"})
    [meta] = paid["line_items"][0]["meta_data"]
    assert (meta["key"], meta["value"]) == ("_reduced_stock", "3")
    assert client.get_product(product_id)["stock_quantity"] == 7
    # Completing a paid order takes nothing more.
    assert client.update_order(order["id"], {"status": "completed"})["line_items"][0]["meta_data"] == [meta]
    assert client.get_product(product_id)["stock_quantity"] == 7
    cancelled = client.update_order(order["id"], {"status": "cancelled"})
    assert cancelled["line_items"][0]["meta_data"] == []
    assert client.get_product(product_id)["stock_quantity"] == 10
    held = client.create_order({"status": "on-hold", "line_items": [{"sku": "SKU-0001", "quantity": 2}]})
    assert client.get_product(product_id)["stock_quantity"] == 8
    client.update_order(held["id"], {"status": "pending"})
    assert client.get_product(product_id)["stock_quantity"] == 10
