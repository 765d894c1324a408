"""Order-progress capture: SDNs and SINs raised against imported orders, published once, recorded after confirm."""

import pytest

from exsync.bus import PublishNotConfirmed
from exsync.exchequer import SqlWriteBackend, dispatch_order, invoice_order, seed
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
    assert data == {"woo_order_id": 501, "reference": ours, "fully_delivered": False, "fully_invoiced": False,
                    "deliveries": [{"reference": delivery, "user_fields": {"1": "DPD", "2": "1550"}}],
                    "invoices": []}

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
