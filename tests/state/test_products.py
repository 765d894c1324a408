"""The woo-writer's store on SQLite and PostgreSQL: pending changes keep the newest sequence,
settling clears only the version written, products, categories, stock marks and the audit."""

import pytest

from exsync.state.products import (
    Failure,
    IncomingChange,
    KnownProduct,
    PendingChange,
    Refusal,
    Settled,
    WriterStore,
)

WIDGET = {"name": "Widget", "regular_price": "10.00", "wholesale_price": "8.00", "category": "Widgets"}


@pytest.fixture
def store(state_database):
    return WriterStore(database=state_database).ensure().ensure()  # ensure is idempotent


def test_a_change_is_stored_once_and_an_older_sequence_never_overwrites_it(store):
    assert store.accept([IncomingChange(sku="A", product_sequence=5, product=WIDGET, stock_sequence=5, quantity=9),
                         IncomingChange(sku="B", stock_sequence=2, quantity=1)]) == (2, 0)
    assert store.accept([IncomingChange(sku="A", stock_sequence=4, quantity=1),
                         IncomingChange(sku="A", product_sequence=3, product={})]) == (0, 2)
    assert store.pending_count() == 2
    [a, b] = store.pending_page(after="", limit=10)
    assert a == PendingChange(sku="A", product_sequence=5, product=WIDGET, stock_sequence=5, quantity=9, attempts=0)
    assert b == PendingChange(sku="B", product_sequence=0, product=None, stock_sequence=2, quantity=1, attempts=0)
    assert [p.sku for p in store.pending_page(after="A", limit=10)] == ["B"]
    assert [p.sku for p in store.pending_page(after="", limit=1)] == ["A"]


def test_settling_clears_only_the_version_written_and_records_what_the_shop_has(store):
    store.accept([IncomingChange(sku="A", stock_sequence=1, quantity=3)])
    [written] = store.pending_page(after="", limit=10)
    store.accept([IncomingChange(sku="A", stock_sequence=2, quantity=4)])  # newer, while the first was in flight
    store.settle(settled=[Settled(pending=written, product_id=101, values={"quantity": 3})], refused=[])
    assert store.known(["A"]) == {"A": KnownProduct(sku="A", product_id=101, written={"quantity": 3})}
    [still] = store.pending_page(after="", limit=10)
    assert (still.stock_sequence, still.quantity) == (2, 4)
    # What was applied is never overwritten by an older sequence, pending or not.
    store.settle(settled=[Settled(pending=still, product_id=101, values={"quantity": 4})], refused=[])
    assert store.pending_count() == 0
    assert store.accept([IncomingChange(sku="A", stock_sequence=2, quantity=9)]) == (0, 1)


def test_refusals_count_attempts_give_up_and_forget_a_deleted_product(store):
    store.store_known([KnownProduct(sku="A", product_id=7, written={"quantity": 1})])
    store.accept([IncomingChange(sku="A", stock_sequence=1, quantity=2),
                  IncomingChange(sku="B", stock_sequence=1, quantity=2)])
    store.settle(settled=[], refused=[
        Refusal(sku="A", attempts=1, give_up=False, error="gone", retry_at=0.0, forget_product=True),
        Refusal(sku="B", attempts=2, give_up=True, error="x" * 2000, retry_at=0.0)])
    assert store.known(["A"]) == {}  # forgotten: the next attempt finds or creates it
    assert store.failures() == [Failure("B", 2, "x" * 1000)] and store.failures() == [("B", 2, "x" * 1000)]
    assert store.pending_count() == 1
    store.accept([IncomingChange(sku="B", stock_sequence=2, quantity=5)])  # a new change: a fresh start
    assert store.failures() == [] and store.pending_count() == 2
    store.settle(settled=[], refused=[Refusal(sku="A", attempts=1, give_up=False, error="later", retry_at=2e12)])
    assert [p.sku for p in store.pending_page(after="", limit=10)] == ["B"]  # A waits for its retry time


def test_products_known_in_the_shop_are_cached_once_and_get_an_id_back(store):
    assert not store.has_products()
    store.store_known([KnownProduct(sku="A", product_id=5, written={"name": "A"}),
                       KnownProduct(sku="B", product_id=6, written={})])
    store.store_known([KnownProduct(sku="A", product_id=99, written={})])  # cached with an id: left alone
    assert store.has_products()
    assert store.known(["A", "B", "C"]) == {"A": KnownProduct(sku="A", product_id=5, written={"name": "A"}),
                                            "B": KnownProduct(sku="B", product_id=6, written={})}
    store.record_written([KnownProduct(sku="B", product_id=6, written={"quantity": 3})])
    assert store.known(["B"])["B"].written == {"quantity": 3}
    assert len(store.known([f"N{n}" for n in range(1200)] + ["A"])) == 1  # more SKUs than one IN list holds


def test_a_category_stored_by_another_process_first_is_the_one(state_database, store):
    other = WriterStore(database=state_database)
    assert other.add_category("Bearings", 21) == 21
    assert store.add_category("Bearings", 22) == 21
    assert store.categories() == {"Bearings": 21}


def test_order_sides_and_stock_marks(store):
    def moved(previous):
        return previous is None, True

    assert store.note_order(7, moved, skus=["A", "B"], due_at=10.0, reason="order processing")
    assert not store.note_order(7, moved, skus=["A", "B"], due_at=20.0, reason="order processing")
    assert not store.note_order(8, lambda previous: (False, None), skus=["C"], due_at=5.0, reason="order draft")
    store.mark(["B", "C"], due_at=30.0, reason="r" * 60)  # a later mark pushes the check back
    assert store.marked() == {"A": 10.0, "B": 30.0, "C": 30.0}
    assert store.due_marks(now=10.0, limit=10) == {"A": 10.0}
    due = store.due_marks(now=30.0, limit=2)
    assert due == {"A": 10.0, "B": 30.0}
    store.mark(["A"], due_at=40.0, reason="again")  # set again meanwhile: stays for its own check
    store.settle_marks(due, failed=["B"], retry_at=90.0)
    assert store.marked() == {"A": 40.0, "B": 90.0, "C": 30.0}


def test_the_last_audit_is_kept(store):
    assert store.last_audit() is None
    store.record_audit(finished_at=100.0, checked=3, drifted=1, corrected=1)
    store.record_audit(finished_at=200.0, checked=4, drifted=0, corrected=0)
    assert store.last_audit() == 200.0


def test_long_values_after_short_ones_are_stored(store):
    """psqlODBC describes text parameters as 255 wide: a longer product document after a short one."""
    store.accept([IncomingChange(sku="A", product_sequence=1, product={"name": "a"}),
                  IncomingChange(sku="B", product_sequence=1, product={"name": "b" * 600})])
    assert [p.product["name"] for p in store.pending_page(after="", limit=5)] == ["a", "b" * 600]
