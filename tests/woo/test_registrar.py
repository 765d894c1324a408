"""The webhook registrar against the sandbox shop: create, repair, re-activate, leave others alone."""

from exsync.schemas.config import DEFAULT_WEBHOOK_TOPICS
from exsync.woo import WebhookRegistrar

SECRET = "registrar-secret"


def _registrar(client, receiver, metrics=None, **options):
    return WebhookRegistrar(client=client, delivery_url=receiver.url, secret=SECRET, metrics=metrics, **options)


def test_creates_every_configured_webhook_once(client, receiver, metrics):
    registrar = _registrar(client, receiver, metrics)
    first = registrar.sync()
    assert [a.action for a in first] == ["created"] * len(DEFAULT_WEBHOOK_TOPICS)
    hooks = list(client.iter_webhooks())
    assert sorted(h["topic"] for h in hooks) == sorted(DEFAULT_WEBHOOK_TOPICS)
    assert {(h["delivery_url"], h["secret"], h["status"], h["api_version"]) for h in hooks} == {
        (receiver.url, SECRET, "active", "wp_api_v3")}
    assert all(h["name"].startswith("exsync:") for h in hooks)
    assert [a.action for a in registrar.sync()] == ["unchanged"] * len(DEFAULT_WEBHOOK_TOPICS)
    assert metrics.gauges[("woo_webhooks", (("status", "active"),))] == len(DEFAULT_WEBHOOK_TOPICS)


def test_repairs_reactivates_and_removes_only_its_own(client, shop, receiver, metrics):
    def hook(name, topic, **fields):
        return client.create_webhook(dict({"name": name, "topic": topic, "delivery_url": receiver.url,
                                           "secret": SECRET}, **fields))

    wrong_url = hook("exsync: order.created", "order.created", delivery_url=receiver.url + "/old")
    wrong_secret = hook("exsync: order.updated", "order.updated", secret="stale")
    disabled = hook("exsync: customer.updated", "customer.updated")
    shop.set_webhook_status(disabled["id"], "disabled")
    duplicate = hook("exsync: customer.updated (copy)", "customer.updated", delivery_url=receiver.url + "/x")
    unwanted = hook("exsync: product.updated", "product.updated")
    foreign = hook("Zapier: order.created", "order.created", delivery_url="http://127.0.0.1:9/zap", secret="theirs")
    shop.set_webhook_status(foreign["id"], "disabled")

    registrar = _registrar(client, receiver, metrics, topics=("order.created", "order.updated", "customer.updated"))
    actions = {(a.action, a.webhook_id): a for a in registrar.sync()}

    assert actions[("repaired", wrong_url["id"])].changes == ("delivery_url",)
    assert actions[("repaired", wrong_secret["id"])].changes == ("secret",)
    assert ("reactivated", disabled["id"]) in actions
    assert {("deleted", duplicate["id"]), ("deleted", unwanted["id"])} <= set(actions)
    remaining = {h["id"]: h for h in client.iter_webhooks()}
    assert set(remaining) == {wrong_url["id"], wrong_secret["id"], disabled["id"], foreign["id"]}
    assert remaining[foreign["id"]]["status"] == "disabled"
    assert remaining[foreign["id"]]["delivery_url"] == "http://127.0.0.1:9/zap"
    mine = [h for h in remaining.values() if h["id"] != foreign["id"]]
    assert {(h["delivery_url"], h["secret"], h["status"]) for h in mine} == {(receiver.url, SECRET, "active")}
    assert metrics.gauges[("woo_webhooks", (("status", "disabled"),))] == 0


def test_a_reactivated_webhook_delivers_again(client, shop, receiver):
    registrar = _registrar(client, receiver, topics=("customer.created",))
    [created] = registrar.sync()
    shop.set_webhook_status(created.webhook_id, "disabled")
    client.create_customer({"email": "while-disabled@example.test"})
    assert shop.wait_for_deliveries(timeout_seconds=10)
    assert receiver.deliveries == []
    assert [a.action for a in registrar.sync()] == ["reactivated"]
    customer = client.create_customer({"email": "after@example.test"})
    assert shop.wait_for_deliveries(timeout_seconds=10)
    [(headers, body)] = receiver.deliveries
    assert headers["X-WC-Webhook-ID"] == str(created.webhook_id) and str(customer["id"]).encode() in body
