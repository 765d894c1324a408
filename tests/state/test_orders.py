"""The order pipeline's stores on SQLite and PostgreSQL: order tracking, notes, shipping methods."""

import time

from exsync.exchequer import connect
from exsync.state.orders import (
    IN_PROGRESS,
    NOTE_CLAIMED,
    NOTE_DONE,
    NoteStore,
    OrderStore,
    ShippingMethod,
    ShippingMethodStore,
    ensure_order_tables,
)
from tests.consumers.conftest import order_body

BIG = 2**40  # shop ids are 64-bit


def body(order_id, *, status="pending", modified="2026-11-27T10:00:00"):
    return order_body(order_id, lines=[("A-1", 1, "5.00", "5.00", "1.00")], status=status, modified=modified)


def test_a_version_is_held_unless_older_and_payment_is_kept_whichever_wins(state_database):
    ensure_order_tables(state_database)
    ensure_order_tables(state_database)  # idempotent
    store = OrderStore(database=state_database)
    row, accepted = store.record_version(body(BIG, modified="2026-11-27T10:05:00"))
    assert accepted and row.order_id == BIG and row.paid_at == 0.0
    row, accepted = store.record_version(body(BIG, status="processing", modified="2026-11-27T10:01:00"), paid=True)
    assert not accepted and row.status == "pending" and row.paid_at > 0
    assert store.record_version(body(BIG, modified="2026-11-27T10:05:00"))[1]  # a repeat is accepted
    assert store.get(BIG).body["id"] == BIG
    assert store.counts() == {IN_PROGRESS: 1}
    assert [tracked.order_id for tracked in store.overdue(paid_before=time.time() + 1)] == [BIG]


def test_states_plans_and_refunds_of_one_order(state_database):
    ensure_order_tables(state_database)
    store = OrderStore(database=state_database)
    store.record_version(body(7))
    store.mark(7, "parked", "unknown SKU A-1")
    assert [tracked.reason for tracked in store.parked()] == ["unknown SKU A-1"]
    assert store.claim_plan(7, "SOR") == "SOR" and store.claim_plan(7, "SQU") == "SOR"  # first wins
    store.mark_imported(7, ["SOR000007"])
    store.add_refund_ids(7, [3, 4])
    store.add_refund_ids(7, [4])
    tracked = store.get(7)
    assert (tracked.import_state, tracked.refs, tracked.refund_ids) == ("imported", ("SOR000007",), ("3", "4"))
    store.record_version(body(7, status="cancelled", modified="2026-11-28T10:00:00"))
    assert store.ended_after_import_count(statuses=["cancelled"]) == 1
    assert store.mark_cancel_published(7) and not store.mark_cancel_published(7)
    store.record_deleted(8)
    assert store.counts() == {"imported": 1, "deleted": 1}


def test_a_note_is_claimed_once_released_after_a_refusal_and_done_once_written(state_database):
    ensure_order_tables(state_database)
    notes = NoteStore(database=state_database)
    assert notes.claim(BIG, "imported") is None
    state, claimed_at = notes.claim(BIG, "imported")
    assert state == NOTE_CLAIMED and claimed_at <= time.time()
    notes.release(BIG, "imported")
    assert notes.claim(BIG, "imported") is None
    notes.reclaim(BIG, "imported")
    notes.done(BIG, "imported", BIG + 1)
    assert notes.claim(BIG, "imported")[0] == NOTE_DONE
    notes.release(BIG, "imported")  # a note written stays written
    assert notes.keys(BIG) == {"imported": NOTE_DONE}


def test_shipping_methods_are_replaced_as_a_whole(state_database):
    ensure_order_tables(state_database)
    store = ShippingMethodStore(database=state_database)
    first = ShippingMethod(instance_id="1", zone_id=2, zone_name="UK", method_id="flat_rate", title="Standard",
                           enabled=True)
    store.replace_all([first, ShippingMethod(instance_id="2", zone_id=1, zone_name="EU", method_id="free_shipping",
                                             title="Free", enabled=False)])
    assert [(method.instance_id, method.enabled) for method in store.all()] == [("2", False), ("1", True)]
    store.replace_all([first])
    assert store.all() == [first]


def test_an_older_tracking_table_on_sqlite_gains_its_new_column(tmp_path):
    with connect(f"sqlite:///{tmp_path}/state.db") as database:
        table = database.names.state_table("order_tracking")
        with database.transaction() as cursor:
            cursor.execute(f'CREATE TABLE {table} ("order_id" INTEGER NOT NULL DEFAULT 0, "status" VARCHAR(32) '
                           'NOT NULL DEFAULT \'\', "import_state" VARCHAR(16) NOT NULL DEFAULT \'\')')
            cursor.execute(f'INSERT INTO {table} ("order_id", "status", "import_state") VALUES (8, \'pending\', '
                           '\'received\')')
        ensure_order_tables(database)
        ensure_order_tables(database)
        tracked = OrderStore(database=database).get(8)
        assert (tracked.import_state, tracked.paid_at, tracked.refs) == ("received", 0.0, ())


def test_a_late_decision_never_overwrites_an_import_another_worker_finished(tmp_path):
    with connect(f"sqlite:///{tmp_path}/state.db") as database:
        ensure_order_tables(database)
        store = OrderStore(database=database)
        # Worker A held a newer unpaid version; worker B imported on a stale paid copy meanwhile.
        store.record_version(order_body(9, lines=[("A-1", 1, "5.00", "5.00", "1.00")], status="pending"))
        store.mark_imported(9, ["SOR000009"])
        store.mark(9, "received", "status 'pending' is not paid yet; not imported")
        assert (store.get(9).import_state, store.get(9).reason) == ("imported", "")
        assert store.counts() == {"imported": 1}
