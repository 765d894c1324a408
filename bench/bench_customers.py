"""Customer sync: account capture over 20,000 accounts beside a raw fetch, and shop requests per customer.

Account capture runs every capture interval, so its cost with nothing changed is what matters:
`account_capture_ratio_to_raw_fetch` is that rerun over a plain fetch of the same CUSTSUPP columns
(best of three each, side by side). The sync figures count the requests the customers consumer
sends the sandbox shop over HTTP: per account exported as a new shop customer, per changed
account, and per event with nothing changed (an event only names a customer: both sides are
read, so one GET and no write is the floor).
"""

import os
import time

from bench.results import record
from bench.support import remove_sqlite
from exsync.consumers.customers import CustomersConsumer
from exsync.exchequer import connect, edit_account, init_schema, seed
from exsync.exchequer.account_capture import AccountCapture
from exsync.metrics import Metrics
from exsync.sandbox import SandboxServer, SandboxShop
from exsync.schemas.config import validate_config
from exsync.woo import WooClient

BENCH_DIR = os.path.join("var", "bench")
ACCOUNTS = 20_000
SYNCED = 300
ROUNDS = 3
FETCH_ROWS = 1000


class Counting(Metrics):
    """Counts shop requests by method and the consumer's outcomes."""

    def __init__(self):
        self.requests = {}
        self.outcomes = {}

    def inc(self, name, amount=1, **labels):
        if name == "woo_requests":
            self.requests[labels["method"]] = self.requests.get(labels["method"], 0) + amount
        elif name == "customer_syncs":
            self.outcomes[labels["outcome"]] = self.outcomes.get(labels["outcome"], 0) + amount

    def reset(self):
        self.requests, self.outcomes = {}, {}

    def total(self):
        return sum(self.requests.values())

    def writes(self):
        return sum(n for method, n in self.requests.items() if method != "GET")


class NoBroker:
    """Account capture's publisher, confirming at once: the bus is measured by its own benchmarks."""

    def __init__(self):
        self.accounts = 0

    def publish(self, *, exchange, routing_key, event, headers=None):
        self.accounts += len(event["data"]["accounts"])


def _add_accounts(database, count):
    """Bulk accounts C00001...: the seed's name pool is too small for a company this size."""
    with database.transaction() as cursor:
        sql = cursor.names.sql(
            "INSERT INTO {accounts} ({accounts.code}, {accounts.cust_supp}, {accounts.company}, {accounts.contact}, "
            "{accounts.address_1}, {accounts.address_3}, {accounts.post_code}, {accounts.email}, {accounts.phone}, "
            "{accounts.price_band}) VALUES (?, 'C', ?, ?, ?, ?, ?, ?, ?, ?)")
        cursor.executemany(sql, [(f"C{n:05d}", f"Company {n} Ltd" if n % 3 else "", f"Contact {n}", f"{n} High Street",
                                  "Leeds", "LS1 1AA", f"buyer{n}@bench.example", f"0113 {n:06d}",
                                  "B" if n % 5 == 0 else "A") for n in range(1, count + 1)])


def _raw_fetch(database):
    columns = ("{accounts.code}, {accounts.cust_supp}, {accounts.company}, {accounts.contact}, "
               + ", ".join(f"{{accounts.address_{n}}}" for n in range(1, 6))
               + ", {accounts.post_code}, {accounts.email}, {accounts.phone}, {accounts.price_band}")
    rows = 0
    with database.transaction(write=False) as cursor:
        cursor.run(f"SELECT {columns} FROM {{accounts}}")
        while batch := cursor.fetchmany(FETCH_ROWS):
            rows += len(batch)
    return rows


def _capture(database, path):
    raw_seconds = capture_seconds = None
    with connect(f"sqlite:///{path}") as state:
        publisher = NoBroker()
        capture = AccountCapture(database=database, state_database=state, publisher=publisher, company="BENCH1")
        started = time.perf_counter()
        first = capture.run_once()
        first_seconds = time.perf_counter() - started
        rerun_changes = 0
        for _ in range(ROUNDS):
            started = time.perf_counter()
            rerun_changes += capture.run_once()
            capture_seconds = min(capture_seconds or 1e9, time.perf_counter() - started)
            started = time.perf_counter()
            rows = _raw_fetch(database)
            raw_seconds = min(raw_seconds or 1e9, time.perf_counter() - started)
    return {"first": first, "first_seconds": first_seconds, "rerun_seconds": capture_seconds,
            "rerun_changes": rerun_changes, "raw_seconds": raw_seconds, "rows": rows}


def _sync(dsn, database):
    shop = SandboxShop()
    credentials = shop.add_credentials()
    shop.environment_type = "local"
    password = shop.add_application_password()
    config, _ = validate_config({"customers": {"export_accounts": "all"}})
    metrics = Counting()
    codes = [f"C{n:05d}" for n in range(1, SYNCED + 1)]
    with SandboxServer(shop=shop) as server, WooClient(
            url=server.url, consumer_key=credentials.consumer_key, consumer_secret=credentials.consumer_secret,
            requests_per_second=10_000, metrics=metrics) as client:
        sync = CustomersConsumer(exchequer_dsn=dsn, config=config, client=client, metrics=metrics,
                                 wp_username="admin", wp_application_password=password)
        try:
            figures = {}
            for phase, prepare in (("new", None), ("unchanged", None),
                                   ("changed", lambda: [edit_account(database, code, phone="0113 999999")
                                                        for code in codes])):
                if prepare:
                    prepare()
                metrics.reset()
                started = time.perf_counter()
                for code in codes:
                    sync.sync_account(code)
                seconds = time.perf_counter() - started
                figures[phase] = {"requests": metrics.total(), "writes": metrics.writes(),
                                  "outcomes": dict(metrics.outcomes), "seconds": seconds,
                                  "by_method": dict(metrics.requests)}
        finally:
            sync.close()
    return figures



def run():
    os.makedirs(BENCH_DIR, exist_ok=True)
    path, state_path = os.path.join(BENCH_DIR, "customers.db"), os.path.join(BENCH_DIR, "customers-state.db")
    remove_sqlite(path)
    remove_sqlite(state_path)
    dsn = f"sqlite:///{path}"
    with connect(dsn) as database:
        init_schema(database)
        seed(database, items=2, locations=1, boms=0, accounts=0)
        _add_accounts(database, ACCOUNTS)
        capture = _capture(database, state_path)
        sync = _sync(dsn, database)
    conditions = {"backend": "sqlite", "accounts": ACCOUNTS, "raw_fetch_seconds": round(capture["raw_seconds"], 4),
                  "first_cycle_seconds": round(capture["first_seconds"], 3),
                  "first_cycle_published": capture["first"], "rerun_changes": capture["rerun_changes"],
                  "publisher": "in-process (no broker)"}
    record("account_capture_seconds_20k", value=round(capture["rerun_seconds"], 3), unit="s",
           goal="<= 1 (a cycle with nothing changed)", conditions=conditions)
    record("account_capture_ratio_to_raw_fetch", value=round(capture["rerun_seconds"] / capture["raw_seconds"], 2),
           unit="ratio", goal="<= 2", conditions=conditions)
    record("account_capture_rerun_changes", value=capture["rerun_changes"], unit="accounts", goal="0",
           conditions=conditions)
    shop_conditions = {"shop": "sandbox over HTTP", "customers": SYNCED, "phases": {
        phase: {key: (round(value, 3) if isinstance(value, float) else value) for key, value in figures.items()}
        for phase, figures in sync.items()}}
    record("customer_sync_requests_per_new_customer", value=round(sync["new"]["requests"] / SYNCED, 2),
           unit="requests", goal="<= 4 (look up by e-mail, create, read back under the claim, the role when wholesale)",
           conditions=shop_conditions)
    record("customer_sync_requests_per_changed_customer", value=round(sync["changed"]["requests"] / SYNCED, 2),
           unit="requests", goal="<= 2 (read, one update)", conditions=shop_conditions)
    record("customer_sync_shop_writes_when_unchanged", value=sync["unchanged"]["writes"], unit="requests",
           goal="0", conditions=shop_conditions)
