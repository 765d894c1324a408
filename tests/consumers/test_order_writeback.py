"""The write-back consumer against the sandbox shop over HTTP: notes once, statuses, the crash window."""

import pytest

from exsync.bus import PermanentError
from exsync.consumers.errors import NoteInFlightError
from exsync.consumers.order_writeback import OrderWritebackConsumer
from exsync.exchequer import connect
from exsync.sandbox import place_order
from exsync.state.orders import NoteStore
from tests.consumers.conftest import config


def writeback_event(kind, data):
    return {"specversion": "1.0", "id": f"w-{kind}", "source": "exsync/orders", "type": f"exchequer.order.{kind}",
            "time": "2026-11-27T10:00:00Z", "subject": str(data["woo_order_id"]), "data": data}


@pytest.fixture
def writeback(tmp_path, sandbox_shop):
    shop, client, _ = sandbox_shop
    made = []

    def make(**orders):
        consumer = OrderWritebackConsumer(state_dsn=f"sqlite:///{tmp_path}/state.db", config=config(**orders),
                                          client=client)
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer._notes().database.close()


def notes(shop, order_id):
    return [(note["note"], note["customer_note"]) for note in sorted(shop.notes[order_id], key=lambda n: n["id"])]


def test_imported_order_gets_one_private_note_and_the_configured_status(sandbox_shop, writeback):
    shop, _, _ = sandbox_shop
    order = place_order(shop, lines=[("SKU-0001", 1)], status="on-hold")
    consumer = writeback(imported_status="processing")
    message = writeback_event("imported", {"woo_order_id": order["id"], "references": ["SOR000123"]})

    assert consumer.handle_event(message) == ["imported", "status:processing"]
    assert consumer.handle_event(message) == []
    assert consumer.handle_event(message) == []
    assert notes(shop, order["id"]) == [("Imported into Exchequer as SOR000123.", False)]
    assert shop.get_order(order["id"])["status"] == "processing"


def test_progress_notes_dispatch_to_the_customer_invoices_privately_and_completes(sandbox_shop, writeback):
    shop, _, _ = sandbox_shop
    order = place_order(shop, lines=[("SKU-0001", 2)])
    consumer = writeback(dispatch={"carrier_field": 3, "tracking_field": 4})
    partial = writeback_event("progressed", {
        "woo_order_id": order["id"], "reference": "SOR000001", "fully_delivered": False,
        "deliveries": [{"reference": "SDN000001", "user_fields": {"3": "DPD", "4": "15501234"}}], "invoices": []})
    rest = writeback_event("progressed", {
        "woo_order_id": order["id"], "reference": "SOR000001", "fully_delivered": True,
        "deliveries": [{"reference": "SDN000002", "user_fields": {}}],
        "invoices": [{"reference": "SIN000001", "user_fields": {}}]})

    consumer.handle_event(partial)
    assert shop.get_order(order["id"])["status"] == "processing"
    consumer.handle_event(rest)
    consumer.handle_event(partial)
    consumer.handle_event(rest)
    assert notes(shop, order["id"]) == [
        ("Your order has been dispatched (delivery note SDN000001). Carrier: DPD. Tracking number: 15501234.", True),
        ("Your order has been dispatched (delivery note SDN000002).", True),
        ("Invoiced in Exchequer as SIN000001 (order SOR000001).", False),
    ]
    assert shop.get_order(order["id"])["status"] == "completed"


def test_cancellation_and_refund_notes_say_the_documents_stay(sandbox_shop, writeback):
    shop, _, _ = sandbox_shop
    order = place_order(shop, lines=[("SKU-0001", 1)])
    consumer = writeback()
    consumer.handle_event(writeback_event("refunded", {
        "woo_order_id": order["id"], "references": ["SOR000007"], "credit_note": False,
        "refunds": [{"id": 55, "reason": "damaged", "amount": "2.50"}]}))
    consumer.handle_event(writeback_event("cancelled", {"woo_order_id": order["id"], "status": "cancelled",
                                                        "references": ["SOR000007"]}))
    texts = [text for text, _ in notes(shop, order["id"])]
    assert texts[0].startswith("Refund of 2.50 recorded (damaged); Exchequer SOR000007 unchanged. No credit note")
    assert texts[1] == ("Order cancelled in the shop after it was paid. Exchequer SOR000007 left in place for review: "
                        "Exchequer documents are never deleted.")


def test_a_claim_left_by_a_crash_is_finished_without_a_duplicate(sandbox_shop, writeback, tmp_path):
    shop, client, _ = sandbox_shop
    written = place_order(shop, lines=[("SKU-0001", 1)])
    lost = place_order(shop, lines=[("SKU-0002", 1)])
    consumer = writeback()
    store = consumer._notes()
    # A crash after the shop accepted the note, before it was marked done; and one before the call.
    store.claim(written["id"], "imported")
    client.add_order_note(written["id"], "Imported into Exchequer as SOR000001.")
    store.claim(lost["id"], "imported")

    with pytest.raises(NoteInFlightError):
        consumer.handle_event(writeback_event("imported", {"woo_order_id": written["id"],
                                                           "references": ["SOR000001"]}))
    consumer.clock = lambda: 10 ** 12  # long after the claims
    for order, reference in ((written, "SOR000001"), (lost, "SOR000002")):
        consumer.handle_event(writeback_event("imported", {"woo_order_id": order["id"], "references": [reference]}))
    assert notes(shop, written["id"]) == [("Imported into Exchequer as SOR000001.", False)]
    assert notes(shop, lost["id"]) == [("Imported into Exchequer as SOR000002.", False)]
    assert NoteStore(database=connect(f"sqlite:///{tmp_path}/state.db")).keys(lost["id"]) == {"imported": "done"}


def test_a_note_the_shop_refuses_is_not_left_claimed(sandbox_shop, writeback):
    consumer = writeback()
    message = writeback_event("imported", {"woo_order_id": 999999, "references": ["SOR000009"]})
    with pytest.raises(PermanentError):
        consumer.handle_event(message)  # 404: no such order in the shop
    assert consumer._notes().keys(999999) == {}
