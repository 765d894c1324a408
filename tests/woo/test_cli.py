"""The shop commands as processes: `exsync sandbox`, `exsync register-webhooks`, `exsync reconcile --once`."""

import os
import signal
import subprocess
import sys
import time

from exsync.bus import Topology, declare_topology
from exsync.exchequer import StateValues, connect
from exsync.sandbox import place_order, seed_catalogue
from exsync.schemas.config import validate_config
from exsync.woo import WooClient
from tests.support.net import free_port, wait_for_port
from tests.support.rabbit import bind_probe, read_messages

EXSYNC = [sys.executable, "-m", "exsync.cli"]


def _env(**values):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXSYNC_")}
    env.update(values)
    return env


def test_sandbox_command_serves_a_seeded_shop():
    port = free_port()
    env = _env(EXSYNC_WOO_CONSUMER_KEY="ck_cli", EXSYNC_WOO_CONSUMER_SECRET="cs_cli")
    process = subprocess.Popen([*EXSYNC, "sandbox", "--port", str(port), "--products", "3", "--customers", "2"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port("127.0.0.1", port)
        client = WooClient(url=f"http://127.0.0.1:{port}", consumer_key="ck_cli", consumer_secret="cs_cli")
        assert sorted(p["sku"] for p in client.iter_products()) == ["SKU-0001", "SKU-0002", "SKU-0003"]
        assert len(list(client.iter_customers(role="customer"))) == 2
        assert [z["name"] for z in client.list_shipping_zones()][1:] == ["UK", "Europe"]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"http://127.0.0.1:{port}/" in stdout and "cs_cli" not in stdout


def _config(tmp_path, receiver, **reconcile):
    path = tmp_path / "exsync.yaml"
    lines = ["shop:", "  webhooks:", f"    delivery_url: {receiver.url}", "    topics: [order.created, order.updated]"]
    if reconcile:
        lines += ["  reconcile:", *(f"    {key}: {value}" for key, value in reconcile.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _writes(shop):
    return sum(1 for method, _, _ in shop.request_log if method != "GET")


def test_register_webhooks_command(sandbox, credentials, shop, receiver, tmp_path):
    env = _env(EXSYNC_WOO_URL=sandbox.url, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
               EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret, EXSYNC_WEBHOOK_SECRETS="first,second",
               EXSYNC_CONFIG=_config(tmp_path, receiver), EXSYNC_STATE_DSN=f"sqlite:///{tmp_path / 'state.db'}")
    first = subprocess.run([*EXSYNC, "register-webhooks"], check=False, env=env, capture_output=True, text=True, timeout=30)
    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()] == ["created", "created"]
    assert {(w["topic"], w["secret"]) for w in shop.list_webhooks({})} == {("order.created", "first"),
                                                                          ("order.updated", "first")}
    writes = _writes(shop)
    # Another process, the same shop: the record in the state database says nothing needs writing.
    again = subprocess.run([*EXSYNC, "register-webhooks"], check=False, env=env, capture_output=True, text=True, timeout=30)
    assert again.returncode == 0, again.stderr
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["unchanged", "unchanged"]
    assert _writes(shop) == writes
    # The first secret rotated away: pushed once.
    rotated = subprocess.run([*EXSYNC, "register-webhooks"], check=False, env=dict(env, EXSYNC_WEBHOOK_SECRETS="second"),
                             capture_output=True, text=True, timeout=30)
    assert [line.split()[0] for line in rotated.stdout.splitlines()] == ["repaired", "repaired"]
    assert {w["secret"] for w in shop.list_webhooks({})} == {"second"}


def test_register_webhooks_without_a_delivery_url_says_so(sandbox, credentials, tmp_path):
    env = _env(EXSYNC_WOO_URL=sandbox.url, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
               EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret,
               EXSYNC_STATE_DSN=f"sqlite:///{tmp_path / 'state.db'}")
    result = subprocess.run([*EXSYNC, "register-webhooks"], check=False, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "shop.webhooks.delivery_url" in result.stderr and "EXSYNC_WEBHOOK_SECRETS" in result.stderr


def test_the_reconcilers_watermark_survives_a_restart(sandbox, credentials, shop, receiver, amqp_url, tmp_path,
                                                    pg_odbc_dsn):
    """Each `reconcile --once` is a new process, as a restarted pod is: the second carries on from the
    watermark the first left in the state database instead of replaying the look-back window."""
    declare_topology(amqp_url, Topology.from_config(validate_config({})[0]))
    probe = bind_probe(amqp_url, exchange="woo", routing_key="order.updated")
    seed_catalogue(shop, count=1)
    orders = [place_order(shop, lines=[("SKU-0001", 1)]) for _ in range(2)]
    env = _env(EXSYNC_WOO_URL=sandbox.url, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
               EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret, EXSYNC_AMQP_URL=amqp_url,
               EXSYNC_WEBHOOK_SECRETS="reconciled", EXSYNC_STATE_DSN=pg_odbc_dsn,
               EXSYNC_CONFIG=_config(tmp_path, receiver, overlap_seconds=0))
    command = [*EXSYNC, "reconcile", "--once"]
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "published 2 order(s)" in result.stdout
    assert sorted(int(m["subject"]) for m, _ in read_messages(amqp_url, probe, count=2)) == \
        sorted(o["id"] for o in orders)
    with connect(pg_odbc_dsn) as database:
        watermark = StateValues(database=database).get(f"woo.reconciler.orders:{sandbox.url}")
    assert watermark == max(o["date_modified_gmt"] for o in orders) + "+00:00"
    assert not (tmp_path / "var").exists()  # nothing kept inside the container
    # --once keeps the webhooks as the loop does (shop.reconcile.register_webhooks).
    assert {(w["topic"], w["secret"]) for w in shop.webhooks.values()} == {("order.created", "reconciled"),
                                                                           ("order.updated", "reconciled")}
    writes = _writes(shop)

    time.sleep(1.1)  # WooCommerce's dates have whole seconds: the next order is newer than the watermark
    later = place_order(shop, lines=[("SKU-0001", 1)])
    again = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "published 1 order(s)" in again.stdout
    assert [int(m["subject"]) for m, _ in read_messages(amqp_url, probe, count=1)] == [later["id"]]
    # A second pass finds nothing to write to the webhooks.
    assert [line.split()[0] for line in again.stdout.splitlines()[1:]] == ["unchanged", "unchanged"]
    assert _writes(shop) == writes  # nothing of the registrar's (the order was placed in the shop directly)


def test_reconcile_without_a_state_database_names_the_variable(sandbox, credentials, amqp_url, tmp_path):
    env = _env(EXSYNC_WOO_URL=sandbox.url, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
               EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret, EXSYNC_AMQP_URL=amqp_url)
    result = subprocess.run([*EXSYNC, "reconcile", "--once"], check=False, env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "EXSYNC_STATE_DSN: is not set" in result.stderr


def test_reconcile_once_leaves_the_webhooks_alone_when_told_to(sandbox, credentials, shop, receiver, amqp_url,
                                                               tmp_path):
    declare_topology(amqp_url, Topology.from_config(validate_config({})[0]))
    env = _env(EXSYNC_WOO_URL=sandbox.url, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
               EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret, EXSYNC_AMQP_URL=amqp_url,
               EXSYNC_STATE_DSN=f"sqlite:///{tmp_path / 'state.db'}",
               EXSYNC_CONFIG=_config(tmp_path, receiver, register_webhooks="false"))
    result = subprocess.run([*EXSYNC, "reconcile", "--once"], check=False, env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert shop.webhooks == {}
