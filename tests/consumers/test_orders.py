"""The orders consumer against a real company: SQLite for the cases, PostgreSQL (pyodbc) for the key ones."""

import decimal
import threading
import types

import pytest

from exsync.bus import PermanentError
from exsync.consumers.order_mapping import vat_code_for_rate
from exsync.consumers.orders import order_key
from exsync.exchequer import DatabaseError, ExchequerReader, connect
from exsync.exchequer.writer import KIND_ACCOUNT, KIND_SALES_DOCUMENT, SqlWriteBackend
from exsync.sandbox import SandboxShop, place_order, seed_taxes
from tests.consumers.conftest import company, event, order_body
from tests.support.woo import fixture


def reader_for(dsn):
    return ExchequerReader(database=connect(dsn))


def documents_of(dsn, order_id):
    backend = SqlWriteBackend(database=connect(dsn))
    refs = [backend.existing_reference(KIND_SALES_DOCUMENT, order_key(order_id)),
            backend.existing_reference(KIND_SALES_DOCUMENT, order_key(order_id) + ":quote")]
    return [ref for ref in refs if ref]


def document_total(document):
    return decimal.Decimal(str(document.header.net_value)) + decimal.Decimal(str(document.header.total_vat))


def count_documents(dsn):
    """Documents beyond the seed's open orders (which carry the seeded allocations)."""
    with connect(dsn) as database, database.transaction(write=False) as cursor:
        return cursor.scalar("SELECT COUNT(*) FROM {documents} WHERE {documents.your_ref} NOT LIKE 'BACKLOG%'")


def test_guest_order_with_lines_shipping_fees_coupon_and_tax_becomes_one_sor_to_the_penny(sqlite_company,
                                                                                          make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    # Line one had a coupon (subtotal 20.00, total 18.00); tax is the shop's own per-line figure.
    body = order_body(lines=[(codes[0], 2, "20.00", "18.00", "3.60"), (codes[1], 3, "10.00", "10.00", "2.00")],
                      fees=[("Gift wrap", "1.50", "0.30")])
    assert consumer.handle_event(event(body, "order.created")) == "imported"

    [reference] = documents_of(dsn, body["id"])
    document = reader_for(dsn).document(reference)
    assert document.header.doc_type == "SOR"
    assert document.header.account_code == "WEBSAL"
    assert document.header.your_ref == "101"
    assert document_total(document) == decimal.Decimal(body["total"])
    stock_lines = [line for line in document.lines if line.stock_code]
    assert [(line.stock_code, line.qty, round(line.qty * line.net_value, 2)) for line in stock_lines] == [
        (codes[0], 2.0, 18.00), (codes[1], 3.0, 10.00)]
    descriptions = [line.description for line in document.lines if not line.stock_code]
    assert descriptions == ["Carriage: Standard delivery", "Gift wrap"]
    [(exchange, key, sent)] = publisher.published
    assert (exchange, key) == ("exchequer", "order.imported")
    assert sent["data"] == {"woo_order_id": 101, "number": "101", "references": [reference]}
    assert consumer._connections().orders.get(101).import_state == "imported"


def test_shop_tax_that_exchequer_computes_differently_is_parked_with_both_figures(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    body = fixture("order_727.json")  # WooCommerce's documented order: 7.5% state tax, a guest
    body["line_items"][0]["sku"] = codes[0]
    body["line_items"][1]["sku"] = codes[1]
    assert consumer.handle_event(event(body)) == "parked"
    assert documents_of(dsn, 727) == []
    reason = consumer._connections().orders.get(727).reason
    assert "29.35" in reason and "31.60" in reason and "max_difference 0.05" in reason


def test_a_rounding_line_covers_up_to_the_configured_difference(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn, rounding={"max_difference": 2.5})
    body = fixture("order_727.json")
    body["line_items"][0]["sku"] = codes[0]
    body["line_items"][1]["sku"] = codes[1]
    assert consumer.handle_event(event(body)) == "imported"

    [reference] = documents_of(dsn, 727)
    document = reader_for(dsn).document(reference)
    assert document_total(document) == decimal.Decimal("29.35")
    rounding = [line for line in document.lines if line.description == "Rounding"]
    assert len(rounding) == 1 and rounding[0].vat_code == "Z"
    # Exchequer charges its own 20% on the taxed lines (3.60 on 18.00): the rounding line takes the rest.
    assert rounding[0].net_value == pytest.approx(1.35 - 3.60)


def test_prices_including_tax_are_net_of_their_tax(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    body = order_body(lines=[(codes[0], 1, "12.00", "12.00", "2.00")], shipping=None, prices_include_tax=True)
    assert body["total"] == "12.00"
    consumer.handle_event(event(body))
    [reference] = documents_of(dsn, 101)
    document = reader_for(dsn).document(reference)
    assert [(line.net_value, line.vat_amount) for line in document.lines] == [(10.0, 2.0)]
    assert document_total(document) == decimal.Decimal("12.00")


def test_registered_customer_gets_a_linked_account_reused_by_the_next_order(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    first = order_body(201, lines=[(codes[0], 1, "5.00", "5.00", "1.00")], customer_id=42, email="new@x.test")
    second = order_body(202, lines=[(codes[1], 1, "5.00", "5.00", "1.00")], customer_id=42, email="new@x.test")
    consumer.handle_event(event(first))
    consumer.handle_event(event(second))

    account = SqlWriteBackend(database=connect(dsn)).existing_reference(KIND_ACCOUNT, "woo-customer:42")
    assert account
    reader = reader_for(dsn)
    assert reader.account(account).email == "new@x.test"
    assert reader.account(account).contact == "Jo Buyer"
    assert {reader.document(ref).header.account_code for ref in documents_of(dsn, 201) + documents_of(dsn, 202)} == {
        account}


def test_a_registered_customer_not_yet_linked_is_linked_to_the_account_with_their_email(sqlite_company,
                                                                                         make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    existing = next(reader_for(dsn).iter_accounts())
    body = order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")], customer_id=77, email=existing.email.upper())
    consumer.handle_event(event(body))

    # The same rule as the customer sync's, so the first order and the first sync give one account.
    assert SqlWriteBackend(database=connect(dsn)).existing_reference(KIND_ACCOUNT, "woo-customer:77") == existing.code
    [reference] = documents_of(dsn, 101)
    assert reader_for(dsn).document(reference).header.account_code == existing.code


def test_a_wholesale_customer_s_new_account_is_in_the_wholesale_band(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    body = order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")], customer_id=78, email="trade@x.test",
                      meta=[("wwp_wholesale_role", "wholesale_customer")])
    consumer.handle_event(event(body))

    code = SqlWriteBackend(database=connect(dsn)).existing_reference(KIND_ACCOUNT, "woo-customer:78")
    assert reader_for(dsn).account(code).price_band == "B"


def test_guest_is_matched_to_an_existing_account_by_email(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    existing = next(reader_for(dsn).iter_accounts())
    body = order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")], email=existing.email.upper())
    consumer.handle_event(event(body))
    [reference] = documents_of(dsn, 101)
    assert reader_for(dsn).document(reference).header.account_code == existing.code


def test_status_outside_the_import_set_is_tracked_then_imported_when_paid(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    pending = order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")], status="pending",
                         modified="2026-11-27T10:00:00")
    assert consumer.handle_event(event(pending, "order.created")) == "waiting"
    assert documents_of(dsn, 101) == []
    assert consumer._connections().orders.get(101).reason == "status 'pending' is not paid yet; not imported"
    paid = dict(pending, status="processing", date_modified_gmt="2026-11-27T10:05:00")
    assert consumer.handle_event(event(paid)) == "imported"
    assert len(documents_of(dsn, 101)) == 1


def test_updated_before_created_and_a_stale_update_give_one_document(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    body = order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")], modified="2026-11-27T10:00:00")
    newer = dict(body, status="completed", date_modified_gmt="2026-11-27T11:00:00")
    stale = dict(body, status="cancelled", date_modified_gmt="2026-11-27T09:00:00")

    assert consumer.handle_event(event(body, "order.updated")) == "imported"
    assert consumer.handle_event(event(body, "order.created")) == "already_imported"
    assert consumer.handle_event(event(newer)) == "already_imported"
    assert consumer.handle_event(event(stale)) == "stale"

    tracked = consumer._connections().orders.get(101)
    assert (tracked.status, tracked.date_modified_gmt) == ("completed", "2026-11-27T11:00:00")
    assert count_documents(dsn) == 1
    assert publisher.keys() == ["order.imported"]


def test_cancellation_and_refunds_after_import_are_published_once(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn, credit_note_on_refund=True)
    body = order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")], modified="2026-11-27T10:00:00")
    consumer.handle_event(event(body))
    refunded = dict(body, date_modified_gmt="2026-11-27T10:10:00",
                    refunds=[{"id": 900, "reason": "damaged", "total": "-2.50"}])
    consumer.handle_event(event(refunded))
    consumer.handle_event(event(refunded))
    cancelled = dict(refunded, status="cancelled", date_modified_gmt="2026-11-27T10:20:00")
    consumer.handle_event(event(cancelled))
    consumer.handle_event(event(cancelled))

    assert publisher.keys() == ["order.imported", "order.refunded", "order.cancelled"]
    refund_event = publisher.published[1][2]["data"]
    assert refund_event["refunds"] == [{"id": 900, "reason": "damaged", "amount": "2.50"}]
    assert refund_event["credit_note"] is False  # asked for, but the Exchequer layer has no SCR
    assert count_documents(dsn) == 1  # documents are never deleted


def test_orders_cancelled_or_trashed_before_import_are_recorded_not_imported(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    for order_id, status in ((111, "cancelled"), (112, "trash"), (113, "failed")):
        body = order_body(order_id, lines=[(codes[0], 1, "5.00", "5.00", "1.00")], status=status)
        assert consumer.handle_event(event(body)) == "not_imported"
        tracked = consumer._connections().orders.get(order_id)
        assert (tracked.import_state, tracked.reason) == ("cancelled", f"{status} in the shop before payment; not imported")
    assert count_documents(dsn) == 0
    assert publisher.published == []


def test_deleted_order_is_recorded_and_its_documents_kept(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    consumer.handle_event(event(order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")])))
    assert consumer.handle_event(event({"id": 101}, "order.deleted")) == "deleted"
    tracked = consumer._connections().orders.get(101)
    assert tracked.import_state == "deleted"
    assert len(tracked.refs) == 1
    assert count_documents(dsn) == 1


def test_an_event_without_an_order_id_is_refused_permanently(sqlite_company, make_consumer):
    consumer, _ = make_consumer(sqlite_company[0])
    with pytest.raises(PermanentError):
        consumer.handle_event({"type": "woo.order.updated", "data": {"status": "processing"}})


def test_unknown_sku_parks_the_order_until_the_item_exists(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    body = order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00"), ("NEW-ITEM-1", 2, "8.00", "8.00", "1.60")])
    assert consumer.handle_event(event(body)) == "parked"
    tracked = consumer._connections().orders.get(101)
    assert (tracked.import_state, tracked.reason) == ("parked", "unknown SKU NEW-ITEM-1")
    assert consumer.release_parked() == 0
    assert publisher.published == []

    with connect(dsn) as database, database.transaction() as cursor:
        cursor.run("INSERT INTO {stock} ({stock.code}, {stock.folio}, {stock.desc_1}, {stock.type}) "
                   "VALUES (?, ?, ?, 'P')", ("NEW-ITEM-1", 99999, "A new item"))
    assert consumer.release_parked() == 1
    [reference] = documents_of(dsn, 101)
    assert {line.stock_code for line in reader_for(dsn).document(reference).lines} >= {codes[0], "NEW-ITEM-1"}
    assert consumer._connections().orders.get(101).import_state == "imported"
    assert publisher.keys() == ["order.imported"]


def test_on_idle_retries_parked_orders_once_the_interval_has_passed(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn, parked_retry_seconds=30)
    now = [1000.0]
    consumer.clock = lambda: now[0]
    consumer._last_release = now[0]
    consumer.handle_event(event(order_body(lines=[("LATER-1", 1, "5.00", "5.00", "1.00")])))
    with connect(dsn) as database, database.transaction() as cursor:
        cursor.run("INSERT INTO {stock} ({stock.code}, {stock.folio}, {stock.desc_1}, {stock.type}) "
                   "VALUES ('LATER-1', 99998, 'Later', 'P')")
    now[0] += 10
    consumer.on_idle()
    assert consumer._connections().orders.get(101).import_state == "parked"
    now[0] += 30
    consumer.on_idle()
    assert consumer._connections().orders.get(101).import_state == "imported"


def concurrent_deliveries(consumer, body, threads=5):
    barrier = threading.Barrier(threads)
    outcomes, errors = [], []

    def deliver():
        barrier.wait()
        try:
            outcomes.append(consumer.handle_event(event(body)))
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    workers = [threading.Thread(target=deliver) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes, errors


def test_five_concurrent_deliveries_of_one_order_give_one_document_on_sqlite(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, publisher = make_consumer(dsn)
    body = order_body(lines=[(codes[0], 2, "20.00", "20.00", "4.00")], customer_id=7, email="seven@x.test")
    outcomes, errors = concurrent_deliveries(consumer, body)
    assert errors == []
    assert sorted(outcomes).count("imported") >= 1
    assert count_documents(dsn) == 1
    assert "order.imported" in publisher.keys()


@pytest.mark.slow
def test_postgresql_import_rules_split_and_concurrent_deliveries(pg_odbc_dsn, make_consumer):
    codes = company(pg_odbc_dsn)
    consumer, publisher = make_consumer(pg_odbc_dsn, rules=[{"when": {"payment_method": ["cheque"]},
                                                             "action": "split"}])
    body = order_body(301, lines=[(codes[0], 2, "20.00", "20.00", "4.00")], customer_id=9, email="nine@x.test")
    outcomes, errors = concurrent_deliveries(consumer, body)
    assert errors == []
    assert count_documents(pg_odbc_dsn) == 1
    [reference] = documents_of(pg_odbc_dsn, 301)
    document = reader_for(pg_odbc_dsn).document(reference)
    assert document_total(document) == decimal.Decimal(body["total"])

    # codes[0] has 500 more in stock; the last product code is unlikely to cover 100000.
    split = order_body(302, payment_method="cheque", lines=[(codes[0], 1, "5.00", "5.00", "1.00"),
                                                            (codes[-1], 100000, "10.00", "10.00", "2.00")])
    consumer.handle_event(event(split))
    references = documents_of(pg_odbc_dsn, 302)
    assert [ref[:3] for ref in references] == ["SOR", "SQU"]
    reader = reader_for(pg_odbc_dsn)
    sor, squ = (reader.document(ref) for ref in references)
    assert [line.stock_code for line in sor.lines if line.stock_code] == [codes[0]]
    assert [line.stock_code for line in squ.lines] == [codes[-1]]
    assert document_total(sor) + document_total(squ) == decimal.Decimal(split["total"])
    assert publisher.published[-1][2]["data"]["references"] == references


def test_a_broken_connection_is_replaced_for_the_retry(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    message = types.SimpleNamespace(event=event(order_body(lines=[(codes[0], 1, "5.00", "5.00", "1.00")])))
    consumer._connections().exchequer.raw.close()  # as a server restart leaves it
    with pytest.raises(DatabaseError):
        consumer.handle(message)
    consumer.handle(message)
    assert len(documents_of(dsn, 101)) == 1


def test_vat_codes_come_from_the_rate_charged_then_the_tax_class(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    # Exempt lines leave the documented order's 1.35 of state tax to the rounding line.
    consumer, _ = make_consumer(dsn, vat={"tax_rates": {"US-CA-STATE TAX": "E"},
                                          "tax_classes": {"reduced-rate": "5"}}, rounding={"max_difference": 1.5})
    documented = fixture("order_727.json")  # its lines charge rate 75, US-CA-STATE TAX
    documented["line_items"][0]["sku"] = codes[0]
    documented["line_items"][1]["sku"] = codes[1]
    consumer.handle_event(event(documented))
    reduced = order_body(102, lines=[(codes[2], 1, "10.00", "10.00", "0.50")], tax_class="reduced-rate",
                         shipping=None)
    consumer.handle_event(event(reduced))
    reader = reader_for(dsn)
    [first] = documents_of(dsn, 727)
    assert [(line.stock_code, line.vat_code) for line in reader.document(first).lines if line.stock_code] == [
        (codes[0], "E"), (codes[1], "E")]
    [second] = documents_of(dsn, 102)
    assert [(line.vat_code, line.vat_amount) for line in reader.document(second).lines] == [("5", 0.5)]


def test_an_idle_retry_outlives_a_broken_connection(sqlite_company, make_consumer):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn, parked_retry_seconds=1)
    consumer.handle_event(event(order_body(lines=[("LATER-2", 1, "5.00", "5.00", "1.00")])))
    consumer._connections().state.raw.close()
    consumer._last_release -= 5
    consumer.on_idle()  # logs and drops the connections rather than ending the consume loop
    assert consumer._connections().orders.get(101).import_state == "parked"


def _taxed_shop(codes, *, prices_include_tax=False):
    """A sandbox shop with taxes on as the real one had them: GB VAT 20 % (also on shipping), and a
    5 % reduced rate that shares its rate code GB-VAT-1."""
    shop = SandboxShop()
    seed_taxes(shop, prices_include_tax=prices_include_tax)
    shop.create_tax_rate({"country": "GB", "rate": "5", "name": "VAT", "class": "reduced-rate"})
    for code, price, tax_class in ((codes[0], "52.17", ""), (codes[1], "9.99", ""), (codes[2], "3.33", "reduced-rate")):
        shop.create_product({"name": f"Product {code}", "sku": code, "regular_price": price, "tax_class": tax_class,
                             "manage_stock": True, "stock_quantity": 100})
    return shop


@pytest.mark.parametrize("prices_include_tax", [False, True])
def test_a_taxed_shop_order_is_imported_to_the_penny_with_vat_codes_by_rate(sqlite_company, make_consumer,
                                                                             prices_include_tax):
    dsn, codes = sqlite_company
    consumer, _ = make_consumer(dsn)
    shop = _taxed_shop(codes, prices_include_tax=prices_include_tax)
    order = place_order(shop, lines=[(codes[0], 1), (codes[1], 3), (codes[2], 7)], shipping_line={
        "method_id": "flat_rate", "instance_id": "1", "method_title": "Standard delivery", "total": "4.95"})
    assert {line["rate_code"] for line in order["tax_lines"]} == {"GB-VAT-1"} and len(order["tax_lines"]) == 2
    assert decimal.Decimal(order["total_tax"]) > 0
    assert consumer.handle_event(event(order)) == "imported"

    [reference] = documents_of(dsn, order["id"])
    document = reader_for(dsn).document(reference)
    assert document_total(document) == decimal.Decimal(order["total"])
    by_code = {line.stock_code: line for line in document.lines if line.stock_code}
    assert [by_code[code].vat_code for code in codes[:3]] == ["S", "S", "5"]
    carriage = next(line for line in document.lines if line.description.startswith("Carriage"))
    assert (carriage.vat_code, carriage.vat_amount) == ("S", float(order["shipping_lines"][0]["total_tax"]))
    # Each line's VAT is the shop's own penny figure; a rounding line only where the shop's
    # checkout took the tax out of a price that included it (9.99 a unit).
    for item in order["line_items"]:
        assert decimal.Decimal(str(by_code[item["sku"]].vat_amount)) == decimal.Decimal(item["total_tax"]) \
            or prices_include_tax


def test_vat_code_for_rate_prefers_the_configured_codes():
    rates = {"S": 20.0, "Z": 0.0, "E": 0.0, "5": 5.0}
    assert vat_code_for_rate(20, rates) == "S"
    assert vat_code_for_rate("5.0000", rates) == "5"
    assert vat_code_for_rate(0, rates) == "E" and vat_code_for_rate(0, rates, preferred=("Z",)) == "Z"
    assert vat_code_for_rate(17.5, rates) is None
