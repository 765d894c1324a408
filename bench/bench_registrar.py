"""The webhook registrar's writes to a shop that already matches its configuration.

WooCommerce never shows a webhook's secret or API version, so a registrar comparing them re-wrote
every webhook on every pass. `registrar_writes_when_unchanged` counts the writes (any request but
GET, from the sandbox's request log) of a pass made by a fresh registrar process over a shop whose
six webhooks it set earlier, with its record in a SQLite state database; goal 0. The passes before
it are recorded beside it: the first creates them, a registrar with no record pushes the secret once.
"""

import os

from bench.results import record
from bench.support import free_port, remove_sqlite
from exsync.exchequer import connect
from exsync.sandbox import SandboxServer, SandboxShop
from exsync.schemas.config import DEFAULT_WEBHOOK_TOPICS
from exsync.woo import WebhookRegistrar, WooClient
from exsync.woo.registrar import MemorySecretRecord
from exsync.woo.secret_store import WebhookSecretStore

BENCH_DIR = os.path.join("var", "bench")
SECRET = "bench-registrar-secret"


def _pass(shop, client, delivery_url, record_for):
    """One registrar pass as a new process makes it; returns (writes by method, actions)."""
    before = len(shop.request_log)
    registrar = WebhookRegistrar(client=client, delivery_url=delivery_url, secret=SECRET, record=record_for())
    try:
        actions = sorted({a.action for a in registrar.sync()})
    finally:
        registrar.record.close()
    writes = {}
    for method, _, _ in shop.request_log[before:]:
        if method != "GET":
            writes[method] = writes.get(method, 0) + 1
    return writes, actions


def run():
    os.makedirs(BENCH_DIR, exist_ok=True)
    path = os.path.join(BENCH_DIR, "registrar-state.db")
    remove_sqlite(path)
    shop = SandboxShop()
    credentials = shop.add_credentials()
    # Nobody listens there: pings fail, which WooCommerce answers with 201 all the same.
    delivery_url = f"http://127.0.0.1:{free_port()}/webhooks/woocommerce"
    phases = {}
    with SandboxServer(shop=shop) as server, WooClient(url=server.url, consumer_key=credentials.consumer_key,
                                                       consumer_secret=credentials.consumer_secret,
                                                       requests_per_second=500) as client:
        def stored():
            return WebhookSecretStore(connect=lambda: connect(f"sqlite:///{path}"), shop_url=client.url)

        for name, record_for in (("first", stored), ("without_a_record", MemorySecretRecord),
                                 ("unchanged", stored)):
            writes, actions = _pass(shop, client, delivery_url, record_for)
            phases[name] = {"writes": writes, "actions": actions}
    print(f"registrar passes: {phases}")
    record("registrar_writes_when_unchanged", value=sum(phases["unchanged"]["writes"].values()), unit="requests",
           goal="0", conditions={"webhooks": len(DEFAULT_WEBHOOK_TOPICS), "state": "sqlite", "phases": phases})
