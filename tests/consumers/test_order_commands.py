"""The order pipeline's commands: shipping-methods, orders status, orders retry-parked."""

from exsync.cli import main
from exsync.consumers.state import ShippingMethodStore
from exsync.exchequer import connect
from tests.consumers.conftest import event, order_body


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
