"""Change capture over a small SQLite demo company: what changes is sent, once, with sequences."""

import sys
import time
import types

import pytest

from exsync import wiring
from exsync.bus import PublishNotConfirmed, declare_topology
from exsync.config import Settings
from exsync.exchequer import ExchequerReader, adjust_stock, change_price, connect, init_schema, seed
from exsync.exchequer.capture import (
    CaptureState,
    ChangeCapture,
    iter_exports,
)
from exsync.schemas.config import validate_config
from exsync.wiring import build_capture
from tests.support.products import ListSink, demo_company, empty_component_stock, set_category, web_products
from tests.support.rabbit import bind_probe, queue_depth, read_messages


@pytest.fixture
def company(tmp_path):
    dsn = demo_company(tmp_path / "exchequer.db")
    with connect(dsn) as database, connect(dsn) as state_database:
        yield database, state_database


def _capture(database, state_database, sink, **kwargs):
    state = CaptureState(database=state_database, company="ZZZZ01", **kwargs).ensure()
    return ChangeCapture(reader=ExchequerReader(database=database), state=state, sink=sink)


def test_first_cycle_sends_every_web_product_and_a_rerun_sends_nothing(company):
    database, state_database = company
    sink = ListSink()
    capture = _capture(database, state_database, sink)
    first = capture.run_once()
    web = web_products(database)
    assert first.exported == len(web) and set(sink.products()) == set(web) == set(sink.stock())
    item = next(code for code, stock in web.items() if stock.type == "P")
    product = sink.products()[item]
    assert product["regular_price"] == f"{web[item].band_a_price:.2f}"
    assert product["wholesale_price"] == f"{web[item].band_b_price:.2f}"
    assert product["category"] == web[item].category
    sequences = [item["sequence"] for item in sink.stock().values()]
    assert sorted(sequences) == list(range(1, len(web) + 1))

    sink.chunks.clear()
    again = capture.run_once()
    assert (again.products_changed, again.stock_changed, sink.chunks) == (0, 0, [])
    assert again.rows_scanned == first.rows_scanned > len(web)


def test_stock_price_category_and_bom_shortage_each_send_only_what_changed(company):
    database, state_database = company
    sink = ListSink()
    capture = _capture(database, state_database, sink)
    capture.run_once()
    before = sink.stock()
    last_sequence = max(item["sequence"] for item in before.values())
    web = web_products(database)
    boms = ExchequerReader(database=database).bom_components()
    kit, components = next((code, parts) for code, parts in boms.items()
                           if code in web and all(part.component_code not in boms for part in parts))
    component = next(part.component_code for part in components if part.component_type == "P")
    simple = [code for code, item in web.items() if item.type == "P" and code != component
              and all(code != part.component_code for parts in boms.values() for part in parts)]
    moved, repriced, recategorised = simple[:3]

    adjust_stock(database, stock_code=moved, location="MAI", qty=7)
    change_price(database, stock_code=repriced, band="A", price=12.34)
    set_category(database, recategorised, "Clearance")
    empty_component_stock(database, component)
    sink.chunks.clear()
    report = capture.run_once()

    stock, products = sink.stock(), sink.products()
    assert stock[moved]["quantity"] == before[moved]["quantity"] + 7
    assert products[repriced]["regular_price"] == "12.34"
    assert products[recategorised]["category"] == "Clearance"
    assert stock[kit]["quantity"] == 0 < before[kit]["quantity"]
    assert set(products) == {repriced, recategorised}
    assert moved in stock and repriced not in stock and recategorised not in stock
    assert (report.products_changed, report.stock_changed) == (2, len(stock))
    assert min(item["sequence"] for item in [*stock.values(), *products.values()]) > last_sequence


def test_a_failed_publish_records_nothing_so_the_change_is_sent_again_with_a_new_sequence(company):
    database, state_database = company
    sink = ListSink()
    capture = _capture(database, state_database, sink)
    capture.run_once()
    code = next(iter(sink.stock()))
    adjust_stock(database, stock_code=code, location="MAI", qty=3)
    sink.chunks.clear()
    sink.fail = PublishNotConfirmed("the broker nacked it")
    with pytest.raises(PublishNotConfirmed):
        capture.run_once()
    sink.fail = None
    capture.run_once()
    assert list(sink.stock()) == [code]
    first_sequence = sink.stock()[code]["sequence"]
    # The sequence reserved for the failed publish is never handed out again.
    assert first_sequence == capture.state.sequence()
    assert first_sequence > len(web_products(database)) + 1


def test_only_one_capture_per_company_holds_the_lease(company, tmp_path):
    database, state_database = company
    with connect(f"sqlite:///{tmp_path}/exchequer.db") as other_state:
        first = _capture(database, state_database, ListSink(), lease_seconds=60)
        sink = ListSink()
        second = _capture(database, other_state, sink, lease_seconds=60)
        assert first.run_once().skipped is False
        assert second.run_once().skipped is True and sink.chunks == []
        first.state.release()
        assert second.run_once().skipped is False
        assert first.run_once().skipped is True


def test_an_expired_lease_is_taken_over(company, tmp_path):
    database, state_database = company
    with connect(f"sqlite:///{tmp_path}/exchequer.db") as other_state:
        crashed = _capture(database, state_database, ListSink(), lease_seconds=0.2)
        crashed.run_once()
        standby = _capture(database, other_state, ListSink(), lease_seconds=60)
        assert standby.run_once().skipped is True
        time.sleep(0.3)
        assert standby.run_once().skipped is False
        # The old holder finds out when it next reserves sequences: it stops without sending.
        adjust_stock(database, stock_code=next(iter(web_products(database))), location="MAI", qty=1)
        assert crashed.run_once().skipped is True


def test_free_stock_counts_only_the_configured_locations(company):
    database, _ = company
    reader = ExchequerReader(database=database)
    code = next(code for code, item in web_products(database).items() if item.type == "P")
    item = reader.stock_item(code)
    main = next(location for location in item.locations if location.location == "MAI")
    rules = reader.stock_rules(["MAI"])
    export = next(e for e in iter_exports(reader, locations=["MAI"]) if e.sku == code)
    assert export.quantity == max(0, int(rules.free(item)))
    assert export.quantity == max(0, int(main.in_stock - main.allocated))


def test_with_locations_configured_only_their_stock_changes_a_quantity(company):
    database, state_database = company
    sink = ListSink()
    state = CaptureState(database=state_database, company="ZZZZ01").ensure()
    capture = ChangeCapture(reader=ExchequerReader(database=database), state=state, sink=sink,
                            locations=["MAI", "W03"])
    capture.run_once()
    before = sink.stock()
    boms = ExchequerReader(database=database).bom_components()
    components = {part.component_code for parts in boms.values() for part in parts}
    code = next(code for code, item in web_products(database).items() if item.type == "P" and code not in components)
    reader = ExchequerReader(database=database)
    item = reader.stock_item(code)
    assert before[code]["quantity"] == max(0, int(reader.stock_rules(["MAI", "W03"]).free(item)))

    adjust_stock(database, stock_code=code, location="W02", qty=5)
    sink.chunks.clear()
    assert capture.run_once().stock_changed == 0 and sink.chunks == []
    adjust_stock(database, stock_code=code, location="W03", qty=4)
    capture.run_once()
    assert list(sink.stock()) == [code] and sink.products() == {}
    assert sink.stock()[code]["quantity"] == before[code]["quantity"] + 4


def test_events_go_to_the_exchequer_exchange_and_reach_the_woo_write_queue(company, amqp_url, tmp_path):
    declare_topology(amqp_url, wiring.topology())
    probe = bind_probe(amqp_url, exchange="exchequer", routing_key="#")
    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    settings = Settings(amqp_url=amqp_url, exchequer_dsn=dsn, state_dsn=dsn,
                        config=validate_config({"capture": {"event_items": 25}})[0])
    capture, close = build_capture(settings)
    try:
        report = capture.run_once()
    finally:
        close()
    messages = read_messages(amqp_url, probe, timeout_seconds=5)
    types = [body["type"] for body, _ in messages]
    chunks = -(-report.exported // 25)
    assert types.count("exchequer.product.changed") == types.count("exchequer.stock.changed") == chunks
    stock_items = [item for body, _ in messages if body["type"] == "exchequer.stock.changed"
                   for item in body["data"]["items"]]
    assert len(stock_items) == report.exported
    assert all(isinstance(item["quantity"], int) for item in stock_items)
    assert {body["subject"] for body, _ in messages} == {"ZZZZ01"}
    assert all(properties.delivery_mode == 2 for _, properties in messages)
    woo_write = [body for body, _ in messages if body["type"] != "exchequer.account.changed"]
    assert queue_depth(amqp_url, "woo.write") == len(woo_write) == 2 * chunks



def test_state_and_lease_on_postgresql(pg_odbc_dsn):
    with connect(pg_odbc_dsn) as database:
        init_schema(database)
        seed(database, items=20, locations=2, boms=2, accounts=2)
    with connect(pg_odbc_dsn) as database, connect(pg_odbc_dsn) as state_database, \
            connect(pg_odbc_dsn) as other_state:
        sink = ListSink()
        capture = _capture(database, state_database, sink)
        first = capture.run_once()
        assert first.stock_changed == len(web_products(database)) > 0
        code = next(iter(sink.stock()))
        adjust_stock(database, stock_code=code, location="MAI", qty=2)
        sink.chunks.clear()
        assert capture.run_once().stock_changed == 1 and list(sink.stock()) == [code]
        assert _capture(database, other_state, ListSink()).run_once().skipped is True


def test_each_cycle_also_runs_the_order_progress_capture_when_it_exists(company, tmp_path, monkeypatch):
    calls = []

    class OrderProgressCapture:
        def __init__(self, *, database, publisher, metrics):
            calls.append(("built", publisher))

        def run_once(self):
            calls.append(("ran", None))

    class Publisher:
        def __init__(self):
            self.keys = []

        def publish(self, *, exchange, routing_key, event):
            self.keys.append((exchange, routing_key))

    module = types.ModuleType("exsync.exchequer.progress")
    module.OrderProgressCapture = OrderProgressCapture
    monkeypatch.setitem(sys.modules, "exsync.exchequer.progress", module)
    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    publisher = Publisher()
    capture, close = build_capture(Settings(exchequer_dsn=dsn, state_dsn=dsn), publisher=publisher)
    try:
        capture.run_once()
        capture.run_once()
    finally:
        close()
    assert calls == [("built", publisher), ("ran", None), ("ran", None)]
    assert set(publisher.keys) == {("exchequer", "product.changed"), ("exchequer", "stock.changed"),
                                   ("exchequer", "account.changed")}


def test_each_cycle_is_recorded_for_exsync_status_and_a_good_one_stamps_the_stall_clock(company):
    import prometheus_client

    from exsync.exchequer.runs import CAPTURE, RunLog
    from exsync.metrics import PrometheusMetrics

    database, state_database = company
    registry = prometheus_client.CollectorRegistry()
    runs = RunLog(database=state_database).ensure()
    state = CaptureState(database=state_database, company="ZZZZ01").ensure()

    class RefusingSink(ListSink):
        def send(self, **_):
            raise PublishNotConfirmed("the broker nacked the batch")

    failing = ChangeCapture(reader=ExchequerReader(database=database), state=state, sink=RefusingSink(),
                            metrics=PrometheusMetrics(registry=registry), runs=runs)
    with pytest.raises(PublishNotConfirmed):
        failing.run_once()
    run = runs.all()[CAPTURE]
    assert (run.outcome, run.last_success_at) == ("error", None)
    assert run.detail == "PublishNotConfirmed: the broker nacked the batch"
    assert registry.get_sample_value("exsync_capture_last_success_timestamp_seconds") is None

    before = time.time()
    ChangeCapture(reader=ExchequerReader(database=database), state=state, sink=ListSink(), runs=runs,
                  metrics=PrometheusMetrics(registry=(good := prometheus_client.CollectorRegistry()))).run_once()
    run = runs.all()[CAPTURE]
    assert run.outcome == "ok" and run.last_success_at >= before
    assert good.get_sample_value("exsync_capture_last_success_timestamp_seconds") >= before


def test_a_capture_reads_the_record_again_after_another_replica_recorded_changes(company, tmp_path):
    # A keeps what it recorded in memory; B (another replica) records a change meanwhile, and the
    # item then changes back to what A last sent: A must send it, not trust its own memory.
    database, state_database = company
    with connect(f"sqlite:///{tmp_path}/exchequer.db") as other_state:
        first_sink, second_sink = ListSink(), ListSink()
        first = _capture(database, state_database, first_sink, lease_seconds=60)
        second = _capture(database, other_state, second_sink, lease_seconds=60)
        first.run_once()
        first.state.release()
        code = next(code for code, item in web_products(database).items() if item.type == "P")
        before = first_sink.stock()[code]["quantity"]
        adjust_stock(database, stock_code=code, location="MAI", qty=3)
        assert second.run_once().stock_changed == 1 and second_sink.stock()[code]["quantity"] == before + 3
        second.state.release()
        adjust_stock(database, stock_code=code, location="MAI", qty=-3)
        first_sink.chunks.clear()
        report = first.run_once()
        assert (report.stock_changed, report.products_changed) == (1, 0)
        assert first_sink.stock()[code]["quantity"] == before
        first_sink.chunks.clear()
        assert first.run_once().stock_changed == 0 and first_sink.chunks == []
