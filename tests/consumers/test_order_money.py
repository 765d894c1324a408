"""An Exchequer document is never wrong money: signed but hostile order bodies, refused twice.

Each hostile body is refused by the receiver's schema, and again by the orders consumer (whatever
reached it: the reconciler, a replayed message): the order ends parked with its reason, no document
is written, and nothing is retried.
"""

import decimal
import threading

import pytest

from exsync import wiring
from exsync.bus import PermanentError, Publisher, Worker, new_event
from exsync.bus.consumer import ATTEMPT_HEADER, ERROR_HEADER
from exsync.consumers.order_mapping import money, tax_amount
from exsync.consumers.orders import OrdersConsumer
from exsync.schemas.woo import validate_body
from tests.consumers.conftest import RecordingPublisher, company, config, event, order_body
from tests.consumers.test_orders import documents_of
from tests.support.rabbit import queue_depth, read_messages
from tests.support.waiting import wait_until


def _order(codes, order_id=800001, **changes):
    """£180 of lines plus £4.95 carriage (net of VAT 0.99) and a £2.50 gift wrap fee."""
    body = order_body(order_id, lines=[(codes[0], 2, "100.00", "100.00", "20.00"),
                                       (codes[1], 1, "80.00", "80.00", "16.00")],
                      fees=[("Gift wrap", "2.50", "0.50")])
    body.update(changes)
    return body


def _set(path, value):
    """A change to a nested field: ("line_items", 0, "quantity")."""
    def change(body):
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return body
    return change


# (case, how to make the body hostile, a field the schema names, words the parked reason holds)
HOSTILE = [
    ("total NaN", _set(("total",), "NaN"), "total", "NaN"),
    ("total Infinity", _set(("total",), "Infinity"), "total", "Infinity"),
    ("total 1e30", _set(("total",), "1e30"), "total", "1E+30"),
    ("total negative", _set(("total",), "-10.00"), "total", "-10.00"),
    ("total of three places", _set(("total",), "222.955"), "total", "decimal places"),
    ("shipping NaN", _set(("shipping_lines", 0, "total"), "NaN"), "shipping_lines", "NaN"),
    ("line total 1e400", _set(("line_items", 0, "total"), "1e400"), "line_items", "1E+400"),
    ("line total a list", _set(("line_items", 0, "total"), ["1"]), "line_items", "Not a money amount"),
    ("quantity -3", _set(("line_items", 1, "quantity"), -3), "line_items", "-3"),
    ("quantity 0", _set(("line_items", 1, "quantity"), 0), "line_items", "quantity"),
    ("quantity 1e9", _set(("line_items", 0, "quantity"), 10**9), "line_items", "1000000000"),
    ("quantity 2.5", _set(("line_items", 0, "quantity"), 2.5), "line_items", "2.5"),
    ("tax detail NaN", _set(("line_items", 0, "taxes"), [{"id": 1, "total": "NaN", "subtotal": "1"}]),
     "line_items", "NaN"),
]


@pytest.mark.parametrize("case,spoil,field,words", HOSTILE, ids=[case for case, *_ in HOSTILE])
def test_the_schema_refuses_hostile_money(case, spoil, field, words):
    body = spoil(_order(["A", "B"]))
    errors = validate_body("order.updated", body)
    assert field in errors, errors


@pytest.mark.parametrize("case,spoil,field,words", HOSTILE, ids=[case for case, *_ in HOSTILE])
def test_the_consumer_parks_hostile_money_with_its_reason_and_writes_nothing(
        case, spoil, field, words, sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    body = spoil(_order(codes))
    assert consumer.handle_event(event(body)) == "parked"  # returns: the message is acked, not retried
    row = consumer._connections().orders.get(800001)
    assert row.import_state == "parked" and words in row.reason, row.reason
    assert documents_of(dsn, 800001) == [] and publisher.published == []
    # Retrying parked orders finds the same problem: it stays parked, still with no document.
    assert consumer.release_parked() == 0
    assert consumer._connections().orders.get(800001).import_state == "parked"
    assert documents_of(dsn, 800001) == []


def test_a_sound_order_still_imports_to_the_penny(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    body = _order(codes)
    body["line_items"][0]["taxes"] = [{"id": 1, "total": "20.0004", "subtotal": "20.0004"}]  # unrounded detail
    assert validate_body("order.updated", body) == {}
    assert consumer.handle_event(event(body)) == "imported"
    assert len(documents_of(dsn, 800001)) == 1


def test_the_rounding_line_never_absorbs_more_than_the_configured_difference(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    # A total that is sane money but not what the lines make: £10.00 against £224.94.
    assert validate_body("order.updated", _order(codes, total="10.00")) == {}
    assert consumer.handle_event(event(_order(codes, total="10.00"))) == "parked"
    reason = consumer._connections().orders.get(800001).reason
    assert "10.00" in reason and "224.94" in reason and "max_difference 0.05" in reason
    # Within the bound a rounding line still takes the pennies.
    assert consumer.handle_event(event(_order(codes, 800002, total="224.97"))) == "imported"
    assert len(documents_of(dsn, 800002)) == 1


def test_an_order_without_line_items_is_not_made_up_from_carriage_and_rounding(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    body = _order(codes, line_items=[])
    assert consumer.handle_event(event(body)) == "parked"
    assert "224.94" in consumer._connections().orders.get(800001).reason
    assert documents_of(dsn, 800001) == []


@pytest.mark.parametrize("order_id", [800006.7, 800006.0, 2**63, 2**70, "800006", True, -5])
def test_an_id_that_is_no_whole_64_bit_number_is_refused_permanently(order_id, sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    body = _order(codes, id=order_id)
    assert "id" in validate_body("order.updated", body)
    with pytest.raises(PermanentError):
        consumer.handle_event(event(body))
    # Nothing was tracked under a truncated id, and no document was written for one.
    assert consumer._connections().orders.get(800006) is None
    assert documents_of(dsn, 800006) == []


@pytest.mark.parametrize("dsn_kind", ["sqlite", "postgresql"])
def test_an_id_past_32_bits_is_imported_under_its_own_id(dsn_kind, tmp_path, request, make_consumer):
    dsn = f"sqlite:///{tmp_path}/exchequer.db" if dsn_kind == "sqlite" else request.getfixturevalue("pg_odbc_dsn")
    codes = company(dsn)
    consumer, _ = make_consumer(dsn)
    for order_id in (2**31, 2**63 - 1):
        assert consumer.handle_event(event(_order(codes, order_id))) == "imported"
        assert consumer._connections().orders.get(order_id).import_state == "imported"
        assert len(documents_of(dsn, order_id)) == 1


def test_money_in_the_mapping_refuses_what_is_not_money_and_never_rounds_it():
    assert money("12.50") == decimal.Decimal("12.50") and money("") == 0 and money(None) == 0
    for value in ("NaN", "-Infinity", "1e400", "1e30", "10.434", True, [1], "twelve"):
        with pytest.raises(PermanentError):
            money(value)
    assert tax_amount("10.434") == decimal.Decimal("10.434")
    for value in ("NaN", "1e30"):
        with pytest.raises(PermanentError):
            tax_amount(value)


def test_through_the_bus_a_hostile_order_is_parked_once_and_never_retried(amqp_url, tmp_path):
    """The real consume loop: a hostile total is acked and parked in tracking; an unusable id goes
    to the dead queue on its first attempt; no retry queue ever holds either."""
    topology = wiring.topology(retry_delays_seconds=(1, 2), max_attempts=3)
    dsn = f"sqlite:///{tmp_path}/exchequer.db"
    codes = company(dsn)
    consumer = OrdersConsumer(exchequer_dsn=dsn, config=config(), publisher=RecordingPublisher())
    with Publisher(url=amqp_url, topology=topology) as publisher:
        for body in (_order(codes, total="NaN"), _order(codes, 800002, id=2**70)):
            publisher.publish(exchange="woo", routing_key="order.updated",
                              event=new_event(type="woo.order.updated", source="test", subject="x", data=body))
    worker = Worker(url=amqp_url, queue="orders.import", handler=consumer.handle, topology=topology,
                    poll_seconds=0.1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: queue_depth(amqp_url, "orders.import.dead") == 1)
        assert wait_until(lambda: consumer._connections().orders.get(800001) is not None
                          and consumer._connections().orders.get(800001).import_state == "parked")
        assert all(queue_depth(amqp_url, f"orders.import.retry.{delay}s") == 0 for delay in (1, 2))
        assert queue_depth(amqp_url, "orders.import") == 0
    finally:
        worker.stop()
        thread.join(timeout=10)
        consumer.close()
    [(_, properties)] = read_messages(amqp_url, "orders.import.dead", count=1)
    assert properties.headers[ATTEMPT_HEADER] == 1
    assert "OrderDataError: order id" in properties.headers[ERROR_HEADER]
    assert documents_of(dsn, 800001) == []
