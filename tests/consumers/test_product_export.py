"""`exsync export products` and `exsync capture --once` as processes, against a sandbox shop over HTTP."""

import os
import subprocess
import sys

from exsync.exchequer import adjust_stock, connect
from exsync.exchequer.capture import CaptureState
from tests.support.products import demo_company, sandbox_shop, web_products


def _exsync(env, *args):
    return subprocess.run([sys.executable, "-m", "exsync.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_export_writes_every_web_product_once_with_a_summary_and_capture_then_finds_nothing(tmp_path, amqp_url):
    dsn = demo_company(tmp_path / "exchequer.db")
    with connect(dsn) as database:
        web = web_products(database)
    with sandbox_shop() as (shop, server, _, credentials):
        env = {"EXSYNC_EXCHEQUER_DSN": dsn, "EXSYNC_STATE_DSN": f"sqlite:///{tmp_path}/state.db",
               "EXSYNC_WOO_URL": server.url, "EXSYNC_WOO_CONSUMER_KEY": credentials.consumer_key,
               "EXSYNC_WOO_CONSUMER_SECRET": credentials.consumer_secret, "EXSYNC_AMQP_URL": amqp_url}
        first = _exsync(env, "export", "products")
        assert first.returncode == 0, first.stderr
        assert f"{len(web)} created, 0 updated, 0 unchanged, 0 failed" in first.stdout
        assert f"{len(web)}/{len(web)} products" in first.stderr
        assert {p["sku"] for p in shop.products.values()} == set(web)

        again = _exsync(env, "export", "products")
        assert again.returncode == 0, again.stderr
        assert f"0 created, 0 updated, {len(web)} unchanged, 0 failed, 0 left for later (0 batch requests)" \
            in again.stdout
        assert f"{len(web)}/{len(web)} products" in again.stderr

        captured = _exsync(env, "capture", "--once")
        assert captured.returncode == 0, captured.stderr
        assert "0 product and 0 stock change(s)" in captured.stdout

        code = next(iter(web))
        with connect(dsn) as database:
            adjust_stock(database, stock_code=code, location="MAI", qty=4)
        captured = _exsync(env, "capture", "--once")
        assert "0 product and 1 stock change(s)" in captured.stdout
        # The one-shot capture gives its lease back, so a long-running one can start at once.
        with connect(f"sqlite:///{tmp_path}/state.db") as state_database:
            assert CaptureState(database=state_database, company="ZZZZ01").acquire() is True
