"""`exsync status` from exsync's state tables: parked orders, conflicts, job ages, and what is unreachable."""

import time

from exsync.config import load_settings
from exsync.exchequer import connect
from exsync.exchequer.mapping import Mapping
from exsync.exchequer.runs import CAPTURE, RECONCILE, RunLog
from exsync.state.links import LinkStore
from exsync.state.orders import OrderStore, ensure_order_tables
from exsync.status import collect_status, render_status
from tests.support.net import free_port

NOW = 1_800_000_000.0


def test_status_reads_the_state_tables_and_says_what_needs_a_person(tmp_path):
    dsn = f"sqlite:///{tmp_path / 'state.db'}"
    with connect(dsn, mapping=Mapping()) as database:
        ensure_order_tables(database)
        orders = OrderStore(database=database)
        orders.record_version({"id": 42, "number": "1042", "status": "processing", "total": "9.99",
                               "date_modified_gmt": "2026-01-01T00:00:00", "currency": "GBP"})
        orders.mark(42, "parked", "unknown SKU NOPE-1")
        LinkStore(database=database).record_conflicts(7, "SMIT01", [("phone", "1", "2", "0")], now=NOW)
        runs = RunLog(database=database, clock=lambda: NOW - 3600).ensure()
        runs.record(CAPTURE, ok=True)  # an hour ago: stalled
        RunLog(database=database, clock=lambda: NOW - 60).record(CAPTURE, ok=False, detail="ConnectError: no ODBC")
        RunLog(database=database, clock=lambda: NOW - 30).record(RECONCILE, ok=True)
    # No broker listens on this port: that part says so and the rest is still shown.
    settings = load_settings({"EXSYNC_STATE_DSN": dsn, "EXSYNC_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})

    report = collect_status(settings, now=NOW)

    assert report.parked_orders_total == 1
    assert report.parked_orders == [{"order_id": 42, "number": "1042", "status": "processing",
                                     "reason": "unknown SKU NOPE-1"}]
    assert report.conflicts_waiting == 1
    jobs = {job.job: job for job in report.jobs}
    assert jobs["capture"].age_seconds == 3600 and jobs["capture"].outcome == "error"
    assert jobs["reconcile"].age_seconds == 30
    assert jobs["stock_audit"].last_run_at is None  # not run here: shown as never, not a problem
    assert "broker" in report.errors and report.webhooks is None
    needs = report.needs_attention
    assert needs[0].startswith("broker: cannot be read")
    assert "1 order(s) parked" in needs and "1 customer conflict(s) wait for a person" in needs
    assert "capture has not succeeded for 60 min (last: error ConnectError: no ODBC)" in needs
    assert not any("reconcile" in item for item in needs)

    text = render_status(report)
    assert "order 42 (#1042, processing): unknown SKU NOPE-1" in text
    assert "capture      last success 60 min ago; last run error: ConnectError: no ODBC" in text
    assert "stock_audit  never ran" in text
    assert text.rstrip().endswith("- capture has not succeeded for 60 min (last: error ConnectError: no ODBC)")


def test_a_stock_audit_row_is_shown_with_its_age(tmp_path):
    dsn = f"sqlite:///{tmp_path / 'state.db'}"
    with connect(dsn, mapping=Mapping()) as database:
        RunLog(database=database, clock=lambda: time.time() - 7200).ensure().record("stock_audit", ok=True)
    settings = load_settings({"EXSYNC_STATE_DSN": dsn, "EXSYNC_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
    report = collect_status(settings)
    [audit] = [job for job in report.jobs if job.job == "stock_audit"]
    assert 7190 < audit.age_seconds < 7300
    assert "stock_audit  last success 2.0 h ago; last run ok" in render_status(report)
