"""Order-progress capture: SDNs and SINs raised against imported orders, published once, recorded after confirm."""

import pytest

from exsync.bus import PublishNotConfirmed
from exsync.exchequer import (
    ExchequerReader,
    SqlWriteBackend,
    dispatch_order,
    insert_order_line,
    invoice_order,
    seed,
)
from exsync.exchequer.progress import OrderProgressCapture
from tests.exchequer.factories import order


class Publisher:
    def __init__(self):
        self.published = []
        self.fail = False

    def publish(self, *, exchange, routing_key, event, headers=None):
        if self.fail:
            raise PublishNotConfirmed("nacked")
        self.published.append((exchange, routing_key, event["data"]))


@pytest.fixture
def imported(database):
    seed(database, items=20, locations=1, boms=0, accounts=3)
    with database.transaction(write=False) as cursor:
        code = cursor.scalar("SELECT {stock.code} FROM {stock} WHERE {stock.type} = 'P' ORDER BY {stock.code}")
        account = cursor.scalar("SELECT {accounts.code} FROM {accounts} ORDER BY {accounts.code}")
    backend = SqlWriteBackend(database=database)
    ours = backend.create_sales_document(order("woo-order:501", account, [(code, 3, 10.0, "MAI")])).reference
    other = backend.create_sales_document(order("manual:1", account, [(code, 1, 10.0, "MAI")])).reference
    return ours, other


def test_deliveries_and_invoices_are_published_once_each_with_user_fields(database, imported):
    ours, other = imported
    publisher = Publisher()
    capture = OrderProgressCapture(database=database, publisher=publisher)
    assert capture.run_once() == 0

    delivery = dispatch_order(database, ours, {1: 1})
    dispatch_order(database, other)  # not an imported order: never published
    with database.transaction() as cursor:
        cursor.run("UPDATE {documents} SET {documents.user_field_1} = 'DPD', {documents.user_field_2} = '1550' "
                   "WHERE {documents.our_ref} = ?", (delivery,))
    assert capture.run_once() == 1
    assert capture.run_once() == 0
    [(exchange, key, data)] = publisher.published
    assert (exchange, key) == ("exchequer", "order.progressed")
    lines = data.pop("lines")
    assert data == {"woo_order_id": 501, "reference": ours, "fully_delivered": False, "fully_invoiced": False,
                    "deliveries": [{"reference": delivery, "user_fields": {"1": "DPD", "2": "1550"}}],
                    "invoices": []}
    assert [(line["abs_line_no"], line["qty"], line["qty_delivered"]) for line in lines] == [(1, 3, 1)]

    second = dispatch_order(database, ours)
    invoice = invoice_order(database, ours)
    publisher.fail = True
    with pytest.raises(PublishNotConfirmed):
        capture.run_once()
    publisher.fail = False
    assert capture.run_once() == 1  # not recorded while unconfirmed, so sent again
    data = publisher.published[-1][2]
    assert [entry["reference"] for entry in data["deliveries"]] == [second]
    assert [entry["reference"] for entry in data["invoices"]] == [invoice]
    assert data["fully_delivered"] is True
    assert capture.run_once() == 0


def test_progress_stays_on_the_right_line_after_a_line_is_inserted_in_exchequer(database):
    """A user inserts a line at the top of an imported order: the order's lines move down (tlLineNo),
    but deliveries name the line by its tlABSLineNo, so progress stays on the line it belongs to."""
    seed(database, items=20, locations=1, boms=0, accounts=3)
    with database.transaction(write=False) as cursor:
        codes = [row[0] for row in cursor.run("SELECT {stock.code} FROM {stock} WHERE {stock.type} = 'P' "
                                              "ORDER BY {stock.code}").fetchall()][:3]
        account = cursor.scalar("SELECT {accounts.code} FROM {accounts} ORDER BY {accounts.code}")
    reference = SqlWriteBackend(database=database).create_sales_document(order(
        "woo-order:777", account, [(codes[0], 2, 10.0, "MAI"), (codes[1], 5, 4.0, "MAI")])).reference
    inserted = insert_order_line(database, reference, position=1, stock_code=codes[2], qty=7, unit_net_price=1.0)
    assert inserted == 3
    dispatch_order(database, reference, {2: 5})  # the shop's second line, now shown third
    publisher = Publisher()
    assert OrderProgressCapture(database=database, publisher=publisher).run_once() == 1
    lines = {line["sku"]: line for line in publisher.published[-1][2]["lines"]}
    assert (lines[codes[1]]["abs_line_no"], lines[codes[1]]["line_no"], lines[codes[1]]["qty_delivered"]) == (2, 3, 5)
    assert (lines[codes[0]]["abs_line_no"], lines[codes[0]]["qty_delivered"]) == (1, 0)
    assert (lines[codes[2]]["abs_line_no"], lines[codes[2]]["line_no"], lines[codes[2]]["qty_delivered"]) == (3, 1, 0)
    progress = ExchequerReader(database=database).order_progress(reference)
    assert [(line.abs_line_no, line.qty_delivered) for line in progress.lines] == [(3, 0), (1, 0), (2, 5)]
    assert not progress.fully_delivered
