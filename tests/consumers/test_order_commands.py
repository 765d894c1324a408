"""The order pipeline's commands: shipping-methods, orders status, retry-parked and progress."""

from exsync.bus import Topology, declare_topology
from exsync.cli import main
from exsync.exchequer import connect, dispatch_order
from exsync.state.orders import ShippingMethodStore
from tests.consumers.conftest import event, order_body
from tests.support.rabbit import bind_probe, read_messages


def test_shipping_methods_command_imports_the_shops_methods(sandbox_shop, tmp_path, monkeypatch, capsys):
    _, client, credentials = sandbox_shop
    dsn = f"sqlite:///{tmp_path}/state.db"
    monkeypatch.setenv("EXSYNC_WOO_URL", client.url)
    monkeypatch.setenv("EXSYNC_WOO_CONSUMER_KEY", credentials.consumer_key)
    monkeypatch.setenv("EXSYNC_WOO_CONSUMER_SECRET", credentials.consumer_secret)
    monkeypatch.setenv("EXSYNC_STATE_DSN", dsn)
    monkeypatch.setenv("EXSYNC_EXCHEQUER_DSN", dsn)
    assert main(["shipping-methods"]) == 0
    output = capsys.readouterr().out
    assert "'UK': instance" in output and "flat_rate 'Standard delivery' (enabled)" in output
    assert len(ShippingMethodStore(database=connect(dsn)).all()) == 3


def test_status_and_retry_parked_commands(sqlite_company, make_consumer, monkeypatch, capsys):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    consumer.handle_event(event(order_body(lines=[("MISSING-1", 1, "5.00", "5.00", "1.00")])))
    consumer.handle_event(event(order_body(102, lines=[(codes[0], 1, "5.00", "5.00", "1.00")])))
    monkeypatch.setenv("EXSYNC_EXCHEQUER_DSN", dsn)
    monkeypatch.setenv("EXSYNC_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")  # nothing to publish here
    assert main(["orders", "status"]) == 0
    output = capsys.readouterr().out
    assert "imported: 1" in output and "parked: 1" in output
    assert "parked order 101 (#101, processing): unknown SKU MISSING-1" in output
    assert main(["orders", "retry-parked"]) == 0
    assert "0 parked order(s) imported" in capsys.readouterr().out


def test_progress_command_publishes_dispatches_of_imported_orders(sqlite_company, make_consumer, amqp_url,
                                                                 monkeypatch, capsys):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    consumer.handle_event(event(order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")])))
    [reference] = publisher.published[0][2]["data"]["references"]
    with connect(dsn) as database:
        delivery = dispatch_order(database, reference)
    declare_topology(amqp_url, Topology())
    probe = bind_probe(amqp_url, exchange="exchequer", routing_key="order.progressed")
    monkeypatch.setenv("EXSYNC_EXCHEQUER_DSN", dsn)
    monkeypatch.setenv("EXSYNC_AMQP_URL", amqp_url)
    assert main(["orders", "progress"]) == 0
    assert main(["orders", "progress"]) == 0
    assert capsys.readouterr().out.splitlines() == ["1 order progress event(s) published",
                                                    "0 order progress event(s) published"]
    [(sent, _)] = read_messages(amqp_url, probe, count=1)
    assert sent["data"]["deliveries"] == [{"reference": delivery, "user_fields": {}}]
