"""`exsync customers sync|conflicts|resolve` as processes, against the sandbox shop over HTTP."""

import os
import subprocess
import sys

from exsync.consumers.customer_accounts import customer_key
from exsync.exchequer import ExchequerReader, SqlWriteBackend, connect, edit_account
from exsync.exchequer.writer import KIND_ACCOUNT
from tests.consumers.conftest import company
from tests.consumers.test_customers import register


def _exsync(*args, dsn, server, credentials, config):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXSYNC_")}
    env.update(EXSYNC_EXCHEQUER_DSN=dsn, EXSYNC_WOO_URL=server, EXSYNC_WOO_CONSUMER_KEY=credentials.consumer_key,
               EXSYNC_WOO_CONSUMER_SECRET=credentials.consumer_secret, EXSYNC_CONFIG=config)
    return subprocess.run([sys.executable, "-m", "exsync.cli", "customers", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_sync_then_a_manual_conflict_listed_and_resolved(tmp_path, sandbox_shop):
    from exsync.sandbox import SandboxServer

    shop, _, credentials = sandbox_shop
    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    company(dsn)
    config = tmp_path / "exsync.yaml"
    config.write_text("customers:\n  conflicts: {default: manual}\n", encoding="utf-8")
    customer = register(shop)
    with SandboxServer(shop=shop) as server:
        run = lambda *args: _exsync(*args, dsn=dsn, server=server.url, credentials=credentials,  # noqa: E731
                                    config=str(config))
        synced = run("sync", str(customer["id"]))
        assert synced.returncode == 0, synced.stderr
        assert synced.stdout.strip() == f"shop customer {customer['id']}: created"
        with connect(dsn) as database:
            code = SqlWriteBackend(database=database).existing_reference(KIND_ACCOUNT, customer_key(customer["id"]))
            edit_account(database, code, phone="0100 EXCHEQUER")
        shop.update_customer(customer["id"], {"billing": {"phone": "0100 SHOP"}})

        assert run("sync", "--account", code.lower()).stdout.strip() == f"account {code}: conflict"
        listed = run("conflicts")
        assert f"shop customer {customer['id']} / account {code}: phone is '0100 SHOP' in the shop, " \
               "'0100 EXCHEQUER' in Exchequer (was '01904 111111')" in listed.stdout
        assert "1 conflict(s) waiting" in listed.stdout

        refused = run("resolve", str(customer["id"]), "email", "--take", "woo")
        assert refused.returncode == 1 and "no conflict on email" in refused.stderr
        resolved = run("resolve", str(customer["id"]), "phone", "--take", "woo")
        assert resolved.returncode == 0, resolved.stderr
        assert "phone taken from woo (updated)" in resolved.stdout
        with connect(dsn) as database:
            assert ExchequerReader(database=database).account(code).phone == "0100 SHOP"
        assert "0 conflict(s) waiting" in run("conflicts").stdout

        history = run("conflicts", "--all")
        assert history.returncode == 0, history.stderr
        assert f"shop customer {customer['id']} / account {code}: phone '0100 SHOP' in the shop, '0100 EXCHEQUER' " \
               "in Exchequer (was '01904 111111'); policy person: woo kept '0100 SHOP', overriding " \
               "'0100 EXCHEQUER'" in history.stdout
        assert "policy manual: left for a person" in history.stdout  # the sync that found the conflict
        assert "2 decision(s) recorded" in history.stdout
