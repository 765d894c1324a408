"""The SQL write backend: sales documents and accounts, idempotent by external key, one transaction each."""

import datetime
import threading

import pytest

from exsync.exchequer import (
    AccountDetails,
    DatabaseError,
    DocumentLine,
    ExchequerError,
    ExchequerReader,
    InvalidDocumentError,
    SalesDocument,
    SqlWriteBackend,
    UnknownAccountError,
    UnknownStockItemError,
    connect,
    init_schema,
    seed,
)
from exsync.exchequer.layout import VAT_RATE_SLOTS
from exsync.metrics import Metrics
from tests.exchequer.factories import customer, order


def _products(database, count=3):
    return [i for i in ExchequerReader(database=database).iter_stock_items() if i.type == "P"][:count]


def _figures(database, code, location):
    item = ExchequerReader(database=database).stock_item(code)
    at = {ls.location: ls for ls in item.locations}[location]
    return item.allocated, at.allocated


def _counters(database):
    with database.transaction(write=False) as cursor:
        return dict(cursor.run("SELECT {counters.counter_type}, {counters.next_number} FROM {counters}").fetchall())


def _sor(database, offset=0):
    """The reference the next SOR gets (`offset` more on): the seed's open orders took the first ones."""
    return f"SOR{_counters(database)['SOR'] + offset:06d}"


def _documents(database):
    with database.transaction(write=False) as cursor:
        return cursor.scalar("SELECT COUNT(*) FROM {documents}"), cursor.scalar("SELECT COUNT(*) FROM {lines}")


def test_a_sales_order_is_written_with_its_effects(seeded):
    first, second, _ = _products(seeded)
    account = next(ExchequerReader(database=seeded).iter_accounts()).code
    before = {code: _figures(seeded, code, "W02") for code in (first.code, second.code)}
    expected, counters = _sor(seeded), _counters(seeded)
    backend = SqlWriteBackend(database=seeded, default_location="W02")
    document = SalesDocument(
        external_key="woo-order-501", doc_type="SOR", account_code=account.lower(),
        date=datetime.date(2026, 11, 27), your_ref="501", long_your_ref="WOO-501-WEB", user_fields={3: "web"},
        lines=(DocumentLine(stock_code=first.code, description="First", qty=2, unit_net_price=12.5, vat_code="S"),
               DocumentLine(stock_code=second.code, description="Second", qty=1, unit_net_price=3.99, vat_code="Z"),
               DocumentLine(stock_code=first.code, description="First again", qty=3, unit_net_price=12.5,
                            vat_code="S"),
               DocumentLine(stock_code="", description="Carriage", qty=1, unit_net_price=4.95, vat_code="S")))
    result = backend.create_sales_document(document)
    assert result.created and result.reference == expected
    stored = ExchequerReader(database=seeded).document(expected)
    header = stored.header
    assert (header.doc_type, header.account_code, header.run_no, header.trans_date) == ("SOR", account, -40,
                                                                                         "20261127")
    assert (header.your_ref, header.long_your_ref) == ("501", "WOO-501-WEB")
    assert header.net_value == pytest.approx(25.0 + 3.99 + 37.5 + 4.95)
    assert header.total_vat == pytest.approx(5.0 + 0.0 + 7.5 + 0.99)
    assert [(line.line_no, line.stock_code, line.location, line.vat_code) for line in stored.lines] == [
        (1, first.code, "W02", "S"), (2, second.code, "W02", "Z"), (3, first.code, "W02", "S"), (4, "", "", "S")]
    assert _figures(seeded, first.code, "W02") == (before[first.code][0] + 5, before[first.code][1] + 5)
    assert _figures(seeded, second.code, "W02") == (before[second.code][0] + 1, before[second.code][1] + 1)
    assert _counters(seeded)["SOR"] == counters["SOR"] + 1 and _counters(seeded)["AFL"] == counters["AFL"] + 1
    again = backend.create_sales_document(document)
    assert (again.reference, again.created) == (expected, False)
    assert _figures(seeded, first.code, "W02") == (before[first.code][0] + 5, before[first.code][1] + 5)
    assert _counters(seeded)["SOR"] == counters["SOR"] + 1


def test_a_quotation_allocates_nothing(seeded):
    item = _products(seeded, 1)[0]
    account = next(ExchequerReader(database=seeded).iter_accounts()).code
    before = _figures(seeded, item.code, "MAI")
    result = SqlWriteBackend(database=seeded).create_sales_document(
        order("quote-1", account, [(item.code, 4, 10.0, "MAI")], doc_type="SQU"))
    assert result.reference == "SQU000001"
    assert ExchequerReader(database=seeded).document("SQU000001").header.run_no == 0
    assert _figures(seeded, item.code, "MAI") == before


@pytest.mark.parametrize("change, error", [
    ({"account_code": "NOBODY"}, UnknownAccountError),
    ({"lines": ((("NO-SUCH-ITEM", 1, 1.0, "MAI")),)}, UnknownStockItemError),
    ({"vat": "Q"}, InvalidDocumentError),
    ({"doc_type": "SIN"}, InvalidDocumentError),
    ({"lines": ()}, InvalidDocumentError),
    ({"lines": ((("", 0, 4.95, "")),)}, InvalidDocumentError),
    ({"your_ref": "MUCH-TOO-LONG-REF"}, InvalidDocumentError),
])
def test_a_refused_document_changes_nothing(seeded, change, error):
    item = _products(seeded, 1)[0]
    account = next(ExchequerReader(database=seeded).iter_accounts()).code
    before = (_figures(seeded, item.code, "MAI"), _counters(seeded))
    document = order("refused", change.get("account_code", account),
                     change.get("lines", [(item.code, 1, 1.0, "MAI")]), doc_type=change.get("doc_type", "SOR"),
                     your_ref=change.get("your_ref", "77"))
    if "vat" in change:
        document = SalesDocument(**{**document.__dict__, "lines": tuple(
            DocumentLine(**{**line.__dict__, "vat_code": change["vat"]}) for line in document.lines)})
    backend = SqlWriteBackend(database=seeded)
    with pytest.raises(error):
        backend.create_sales_document(document)
    assert (_figures(seeded, item.code, "MAI"), _counters(seeded)) == before
    assert backend.existing_reference("sales_document", "refused") is None


def test_accounts_are_created_once_with_generated_codes_and_updated(database):
    backend = SqlWriteBackend(database=database)
    first = backend.create_account(external_key="woo-customer-1", details=customer())
    assert (first.reference, first.created) == ("CAST01", True)
    assert backend.create_account(external_key="woo-customer-1", details=customer()).reference == "CAST01"
    second = backend.create_account(external_key="woo-customer-2",
                                    details=customer(company="Castleford Tools", email="x@y.example"))
    person = backend.create_account(external_key="woo-customer-3",
                                    details=customer(company="", contact="Ann O'Brien", email="ann@b.example"))
    chosen = backend.create_account(external_key="woo-customer-4", details=customer(), code="shop99")
    assert [second.reference, person.reference, chosen.reference] == ["CAST02", "OBRI01", "SHOP99"]
    with pytest.raises(InvalidDocumentError, match="taken"):
        backend.create_account(external_key="woo-customer-5", details=customer(), code="SHOP99")
    assert backend.update_account("cast01", {"email": "new@castle.example", "price_band": "B",
                                             "address": ("2 Mill Lane",)}) == "CAST01"
    account = ExchequerReader(database=database).account("CAST01")
    assert (account.email, account.price_band, account.address) == ("new@castle.example", "B",
                                                                      ("2 Mill Lane", "", "", "", ""))
    assert (account.company, account.post_code) == ("Castle Hardware Ltd", "LS1 1AA")
    with pytest.raises(UnknownAccountError):
        backend.update_account("NONE01", {"email": "x"})
    with pytest.raises(InvalidDocumentError):
        backend.update_account("CAST01", {"price_band": "Z"})
    with pytest.raises(InvalidDocumentError):
        backend.create_account(external_key="woo-customer-6", details=AccountDetails(email="x@y"))


def _race(dsn, work, writers=2):
    """Runs work(backend, writer_index) on `writers` threads, each with its own connection."""
    results, errors = [[] for _ in range(writers)], []
    barrier = threading.Barrier(writers)

    def run(index):
        try:
            with connect(dsn) as database:
                backend = SqlWriteBackend(database=database)
                barrier.wait()
                results[index] = work(backend, index)
        except ExchequerError as error:  # reported below, with the thread's error intact
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def _small_company(dsn):
    """Seeds a one-location company; returns a product, an account code and the product's
    (allocated, allocated at MAI) figures."""
    with connect(dsn) as database:
        init_schema(database)
        seed(database, items=10, locations=1, boms=0, accounts=2)
        item = _products(database, 1)[0]
        account = next(ExchequerReader(database=database).iter_accounts()).code
        return item, account, _figures(database, item.code, "MAI")


def test_the_same_order_from_two_connections_makes_one_sor(dsn):
    item, account, before = _small_company(dsn)
    with connect(dsn) as database:
        first, (documents, lines) = _counters(database)["SOR"], _documents(database)
    orders = [order(f"woo-{n}", account, [(item.code, 1, 5.0, "MAI")], your_ref=str(n)) for n in range(40)]
    results = _race(dsn, lambda backend, _: [backend.create_sales_document(o) for o in orders])
    assert [r.reference for r in results[0]] == [r.reference for r in results[1]]
    assert sorted(r.reference for r in results[0]) == [f"SOR{n:06d}" for n in range(first, first + 40)]
    assert all(a.created != b.created for a, b in zip(*results))
    with connect(dsn) as database:
        assert _documents(database) == (documents + 40, lines + 40)
        assert _figures(database, item.code, "MAI") == (before[0] + 40, before[1] + 40)


def test_two_writers_of_200_orders_each_get_unique_references_and_exact_allocations(pg_odbc_dsn):
    with connect(pg_odbc_dsn) as database:
        init_schema(database)
        seed(database, items=12, locations=2, boms=0, accounts=2)
        first, second = _products(database, 2)
        account = next(ExchequerReader(database=database).iter_accounts()).code
        before = {code: _figures(database, code, loc) for code in (first.code, second.code) for loc in ["MAI"]}
        before_w02 = _figures(database, second.code, "W02")
        start, (documents, _) = _counters(database)["SOR"], _documents(database)

    def work(backend, index):
        return [backend.create_sales_document(order(
            f"writer-{index}-order-{n}", account,
            [(first.code, 1, 5.0, "MAI"), (second.code, 2, 7.0, "MAI" if n % 2 else "W02")], your_ref=str(n)))
            for n in range(200)]

    results = _race(pg_odbc_dsn, work)
    references = [r.reference for batch in results for r in batch]
    assert all(r.created for batch in results for r in batch)
    assert sorted(references) == [f"SOR{n:06d}" for n in range(start, start + 400)]
    with connect(pg_odbc_dsn) as database:
        assert _figures(database, first.code, "MAI") == (before[first.code][0] + 400, before[first.code][1] + 400)
        assert _figures(database, second.code, "MAI") == (before[second.code][0] + 800,
                                                          before[second.code][1] + 400)
        assert _figures(database, second.code, "W02")[1] == before_w02[1] + 400
        with database.transaction(write=False) as cursor:
            assert cursor.scalar("SELECT COUNT(DISTINCT {documents.folio}) FROM {documents}") == documents + 400


def test_concurrent_new_customers_with_the_same_name_get_different_codes(pg_odbc_dsn):
    with connect(pg_odbc_dsn) as database:
        init_schema(database)
    results = _race(pg_odbc_dsn, lambda backend, index: [
        backend.create_account(external_key=f"w{index}-c{n}", details=customer(email=f"{index}.{n}@x.example"))
        for n in range(15)])
    codes = [r.reference for batch in results for r in batch]
    assert sorted(codes) == [f"CAST{n:02d}" for n in range(1, 31)]


def test_the_loser_of_a_race_waits_for_the_winner_and_returns_its_reference(dsn):
    item, account, before = _small_company(dsn)
    with connect(dsn) as database:
        expected, counters = _sor(database), _counters(database)
    document = order("woo-race", account, [(item.code, 3, 5.0, "MAI")])
    recorded, release = threading.Event(), threading.Event()

    class PausingBackend(SqlWriteBackend):
        """Stops inside its transaction, after everything is written and before the commit."""

        def _record(self, cursor, kind, external_key, reference):
            super()._record(cursor, kind, external_key, reference)
            recorded.set()
            assert release.wait(30)

    outcomes = {}

    def write(name, backend_class):
        with connect(dsn) as database:
            outcomes[name] = backend_class(database=database).create_sales_document(document)

    winner = threading.Thread(target=write, args=("winner", PausingBackend))
    winner.start()
    assert recorded.wait(30)
    loser = threading.Thread(target=write, args=("loser", SqlWriteBackend))
    loser.start()
    loser.join(0.5)
    assert loser.is_alive(), "the second writer must wait on the first one's uncommitted key"
    release.set()
    winner.join()
    loser.join()
    assert (outcomes["winner"].reference, outcomes["winner"].created) == (expected, True)
    assert (outcomes["loser"].reference, outcomes["loser"].created) == (expected, False)
    with connect(dsn) as database:
        assert _figures(database, item.code, "MAI") == (before[0] + 3, before[1] + 3)
        assert _counters(database)["SOR"] == counters["SOR"] + 1


class RecordingMetrics(Metrics):
    def __init__(self):
        self.counts = {}

    def inc(self, name, amount=1, **labels):
        key = (name, tuple(sorted(labels.items())))
        self.counts[key] = self.counts.get(key, 0) + amount


def test_writes_are_counted_by_outcome(seeded):
    metrics = RecordingMetrics()
    backend = SqlWriteBackend(database=seeded, metrics=metrics)
    item = _products(seeded, 1)[0]
    account = next(ExchequerReader(database=seeded).iter_accounts()).code
    for _ in range(3):
        backend.create_sales_document(order("woo-m", account, [(item.code, 1, 1.0, "MAI")]))
    with pytest.raises(UnknownAccountError):
        backend.create_sales_document(order("woo-n", "NOBODY", [(item.code, 1, 1.0, "MAI")]))

    def count(outcome):
        return metrics.counts.get(("exchequer_writes", (("operation", "create_sales_document"),
                                                        ("outcome", outcome))), 0)

    assert (count("created"), count("existing"), count("failed")) == (1, 2, 1)


def test_a_save_that_fails_after_its_numbers_leaves_a_gap_and_nothing_else(seeded, monkeypatch):
    # The numbers are taken as Exchequer takes them, committed at once where the database locks rows
    # (PostgreSQL): a save that fails later leaves a gap, as in Exchequer. SQLite takes them in the save.
    item = _products(seeded, 1)[0]
    account = next(ExchequerReader(database=seeded).iter_accounts()).code
    before = (_figures(seeded, item.code, "MAI"), _documents(seeded), _counters(seeded))
    backend = SqlWriteBackend(database=seeded)

    def fails(*args, **kwargs):
        raise DatabaseError("the connection was lost")

    monkeypatch.setattr("exsync.exchequer.writer.move_stock", fails)
    with pytest.raises(DatabaseError):
        backend.create_sales_document(order("gap", account, [(item.code, 1, 2.0, "MAI")]))
    taken = 1 if seeded.dialect.locks_rows else 0
    counters = _counters(seeded)
    assert (counters["SOR"], counters["AFL"]) == (before[2]["SOR"] + taken, before[2]["AFL"] + taken)
    assert (_figures(seeded, item.code, "MAI"), _documents(seeded)) == before[:2]
    assert backend.existing_reference("sales_document", "gap") is None
    monkeypatch.undo()
    result = backend.create_sales_document(order("gap", account, [(item.code, 1, 2.0, "MAI")]))
    assert (result.reference, result.created) == (f"SOR{before[2]['SOR'] + taken:06d}", True)


@pytest.mark.parametrize("ttl_seconds, rate_used", [(0.0, 5.0), (3600.0, 20.0)])
def test_the_company_vat_rates_are_read_again_once_old(seeded, ttl_seconds, rate_used):
    item = _products(seeded, 1)[0]
    account = next(ExchequerReader(database=seeded).iter_accounts()).code
    backend = SqlWriteBackend(database=seeded, settings_ttl_seconds=ttl_seconds)
    backend.create_sales_document(order("vat-1", account, [(item.code, 1, 10.0, "MAI")]))
    with seeded.transaction() as cursor:  # evw_VATRate reads the rate slots of EXCHQSS's 'VAT' record
        for n in range(1, VAT_RATE_SLOTS + 1):
            cursor.run(f"UPDATE {{system_setup}} SET {{system_setup.vat_{n}_rate}} = 5 "
                       f"WHERE {{system_setup.vat_{n}_code}} = 'S'")
    second = backend.create_sales_document(order("vat-2", account, [(item.code, 1, 10.0, "MAI")])).reference
    assert ExchequerReader(database=seeded).document(second).header.total_vat == pytest.approx(10.0 * rate_used / 100)
