"""The webhook registrar against the sandbox shop: create, repair, re-activate, leave others alone, and
write nothing to a shop that already matches (WooCommerce never shows the secret it was given)."""

import pytest

from exsync.exchequer import connect
from exsync.schemas.config import DEFAULT_WEBHOOK_TOPICS
from exsync.webhooks.signature import verify_signature
from exsync.woo import StateStoreError, WebhookRegistrar
from exsync.woo.secret_store import WEBHOOK_SECRET_TABLES, WebhookSecretStore

SECRET = "registrar-secret"


def _registrar(client, receiver, metrics=None, **options):
    return WebhookRegistrar(client=client, delivery_url=receiver.url, secret=options.pop("secret", SECRET),
                            metrics=metrics, **options)


def _writes(shop):
    """The writes the shop has served so far, from its request log."""
    return [(method, path) for method, path, _ in shop.request_log if method != "GET"]


def test_creates_every_configured_webhook_once(client, shop, receiver, metrics):
    registrar = _registrar(client, receiver, metrics)
    first = registrar.sync()
    assert [a.action for a in first] == ["created"] * len(DEFAULT_WEBHOOK_TOPICS)
    hooks = list(client.iter_webhooks())
    assert sorted(h["topic"] for h in hooks) == sorted(DEFAULT_WEBHOOK_TOPICS)
    assert {(h["delivery_url"], h["status"]) for h in hooks} == {(receiver.url, "active")}
    assert {(w["secret"], w["api_version"]) for w in shop.webhooks.values()} == {(SECRET, "wp_api_v3")}
    assert all(h["name"].startswith("exsync:") for h in hooks)
    writes = len(_writes(shop))
    assert [a.action for a in registrar.sync()] == ["unchanged"] * len(DEFAULT_WEBHOOK_TOPICS)
    assert len(_writes(shop)) == writes
    assert metrics.gauges[("woo_webhooks", (("status", "active"),))] == len(DEFAULT_WEBHOOK_TOPICS)


def test_the_shop_never_shows_the_secret_so_the_record_decides(client, shop, receiver):
    first = _registrar(client, receiver)
    first.sync()
    assert all("secret" not in h and "api_version" not in h for h in client.iter_webhooks())
    before = len(_writes(shop))
    # A second pass with the record: nothing to write.
    assert {a.action for a in first.sync()} == {"unchanged"}
    assert _writes(shop)[before:] == []
    # A registrar that remembers nothing cannot know what the shop holds: it pushes the secret once...
    forgetful = _registrar(client, receiver)
    pushed = forgetful.sync()
    assert {(a.action, a.changes) for a in pushed} == {("repaired", ("api_version", "secret"))}
    assert len(_writes(shop)) - before == len(DEFAULT_WEBHOOK_TOPICS)
    # ...and then never again.
    before = len(_writes(shop))
    assert {a.action for a in forgetful.sync()} == {"unchanged"}
    assert _writes(shop)[before:] == []


def test_a_rotated_secret_is_pushed_once_and_signs_the_next_delivery(client, shop, receiver):
    record = _registrar(client, receiver, topics=("customer.created",)).record
    _registrar(client, receiver, topics=("customer.created",), record=record).sync()
    rotated = _registrar(client, receiver, topics=("customer.created",), record=record, secret="rotated-secret")
    [action] = rotated.sync()
    assert (action.action, action.changes) == ("repaired", ("api_version", "secret"))
    before = len(_writes(shop))
    assert [a.action for a in rotated.sync()] == ["unchanged"]
    assert _writes(shop)[before:] == []
    client.create_customer({"email": "after-rotation@example.test"})
    assert shop.wait_for_deliveries(timeout_seconds=10)
    [(headers, body)] = receiver.deliveries
    assert verify_signature(body, headers["X-WC-Webhook-Signature"], ["rotated-secret"])
    assert not verify_signature(body, headers["X-WC-Webhook-Signature"], [SECRET])


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

    # Webhooks made by someone else's hand: their secret cannot be read, so it is set once.
    assert actions[("repaired", wrong_url["id"])].changes == ("api_version", "delivery_url", "secret")
    assert actions[("repaired", wrong_secret["id"])].changes == ("api_version", "secret")
    assert ("repaired", disabled["id"]) in actions and "status" in actions[("repaired", disabled["id"])].changes
    assert {("deleted", duplicate["id"]), ("deleted", unwanted["id"])} <= set(actions)
    remaining = {h["id"]: h for h in client.iter_webhooks()}
    assert set(remaining) == {wrong_url["id"], wrong_secret["id"], disabled["id"], foreign["id"]}
    assert remaining[foreign["id"]]["status"] == "disabled"
    assert remaining[foreign["id"]]["delivery_url"] == "http://127.0.0.1:9/zap"
    assert shop.webhooks[foreign["id"]]["secret"] == "theirs"
    mine = [h for h in remaining.values() if h["id"] != foreign["id"]]
    assert {(h["delivery_url"], h["status"]) for h in mine} == {(receiver.url, "active")}
    assert {shop.webhooks[h["id"]]["secret"] for h in mine} == {SECRET}
    assert metrics.gauges[("woo_webhooks", (("status", "disabled"),))] == 0
    assert {a.action for a in registrar.sync()} == {"unchanged"}


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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_record_in_the_state_database_outlives_a_restart_and_holds_no_secret(backend, client, shop, receiver,
                                                                                 tmp_path, request):
    dsn = f"sqlite:///{tmp_path / 'state.db'}" if backend == "sqlite" else request.getfixturevalue("pg_odbc_dsn")
    first = WebhookSecretStore(connect=lambda: connect(dsn), shop_url=client.url)
    _registrar(client, receiver, record=first).sync()
    first.close()
    before = len(_writes(shop))
    restarted = WebhookSecretStore(connect=lambda: connect(dsn), shop_url=client.url)
    assert {a.action for a in _registrar(client, receiver, record=restarted).sync()} == {"unchanged"}
    restarted.close()
    assert _writes(shop)[before:] == []
    with connect(dsn) as database, database.transaction(write=False) as cursor:
        rows = cursor.execute(f"SELECT * FROM {WEBHOOK_SECRET_TABLES[0].sql_name(database)}").fetchall()
    assert len(rows) == len(DEFAULT_WEBHOOK_TOPICS)
    assert not any(SECRET in str(value) for row in rows for value in row)


def test_an_unreachable_record_is_a_woo_error_and_the_next_pass_reconnects(client, receiver, tmp_path):
    dsn = f"sqlite:///{tmp_path / 'state.db'}"
    connections = []

    def opened():
        database = connect(dsn)
        connections.append(database)
        return database

    store = WebhookSecretStore(connect=opened, shop_url=client.url)
    registrar = _registrar(client, receiver, topics=("order.created",), record=store)
    registrar.sync()
    connections[-1].raw.close()  # as a database restart leaves it
    with pytest.raises(StateStoreError):
        registrar.sync()
    assert [a.action for a in registrar.sync()] == ["unchanged"] and len(connections) == 2
    store.close()
